using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Transport;

namespace Supervisor.Simulation;

/// <summary>
/// A peer's end of the seam in a simulation: frames the connection writes are counted, not encoded,
/// and the simulation plays the peer by queueing frames as a read loop would (<see cref="Receive"/>).
/// </summary>
internal sealed class SimulatedTransport(int peer) : IConnectionTransport
{
    public int Peer { get; } = peer;
    public IActorRef Owner { get; private set; } = ActorRefs.Nobody;
    // Built once: every status the connection reports (each refresh, each state change) carries it.
    public string Remote { get; } = $"sim-peer-{peer}";
    public string Protocol => "sim";
    public KeepAliveStatus KeepAlive => KeepAliveStatus.Disabled;
    public long BytesOut { get; private set; }
    public bool Closed { get; private set; }
    private InboundFrames? _inbound;
    public IInboundFrames Inbound => _inbound!;

    public void Start(IActorRef owner)
    {
        Owner = owner;
        _inbound = new InboundFrames(owner, 64 * 1024);
    }

    /// <summary>The peer's frame arrives, as if read from its socket.</summary>
    public void Receive(InboundFrame frame) => _inbound?.Enqueue(frame);

    public bool Write(Frame frame)
    {
        BytesOut += 32;
        return !Closed;
    }

    public bool OnWriteFinished(TransportEvents.WriteFinished finished) => true;

    // A simulated peer answers a FIN at once; the connection then stops without waiting out its linger.
    public void ShutdownOutput() => Owner.Tell(new TransportEvents.InputEnded(CloseReason.PeerClosed, "simulated peer closed"));

    public void Close(CloseReason reason, string detail)
    {
        Write(Frame.ErrorNotice(0, reason.NoticeText(detail)));
        ShutdownOutput();
    }

    public void Dispose() => Closed = true;
}
