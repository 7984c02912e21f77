using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Transport;

namespace Supervisor.Simulation;

/// <summary>
/// A peer's end of the seam in a simulation: frames the connection writes are counted, not encoded,
/// and the simulation plays the peer by telling the connection transport events.
/// </summary>
internal sealed class SimulatedTransport(int peer) : IConnectionTransport
{
    public int Peer { get; } = peer;
    public IActorRef Owner { get; private set; } = ActorRefs.Nobody;
    public string Remote => $"sim-peer-{Peer}";
    public string Protocol => "sim";
    public KeepAliveStatus KeepAlive => KeepAliveStatus.Disabled;
    public long BytesOut { get; private set; }
    public bool Closed { get; private set; }

    public void Start(IActorRef owner) => Owner = owner;

    public bool Write(Frame frame)
    {
        BytesOut += 32;
        return !Closed;
    }

    public bool OnWriteFinished(TransportEvents.WriteFinished finished) => true;

    // A simulated peer answers a FIN at once; the connection then stops without waiting out its linger.
    public void ShutdownOutput() => Owner.Tell(new TransportEvents.InputEnded(CloseReason.PeerClosed, "simulated peer closed"));

    public void Dispose() => Closed = true;
}
