using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Transport;

namespace Supervisor.Tests.Support;

/// <summary>
/// The transport seam with a test probe behind it: frames the actor writes, its FIN and its close
/// arrive at the probe as messages; the test plays the peer by telling the actor transport events.
/// </summary>
internal sealed class ProbeTransport(IActorRef probe) : IConnectionTransport
{
    public sealed record Wrote(Frame Frame);
    public sealed record OutputShut;
    public sealed record Disposed;

    public string Remote => "192.0.2.1:4000";
    public string Protocol => "test";
    public KeepAliveStatus KeepAlive { get; } = KeepAliveStatus.Disabled;
    public long BytesOut { get; private set; }

    public void Start(IActorRef owner) { }

    public bool Write(Frame frame)
    {
        BytesOut += JsonLinesCodec.Encode(frame).Length;
        probe.Tell(new Wrote(frame));
        return true;
    }

    public bool OnWriteFinished(TransportEvents.WriteFinished finished) => finished.Error is null;

    public void ShutdownOutput() => probe.Tell(new OutputShut());

    public void Dispose() => probe.Tell(new Disposed());
}
