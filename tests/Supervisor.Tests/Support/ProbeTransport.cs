using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Transport;

namespace Supervisor.Tests.Support;

/// <summary>
/// The transport seam with a test probe behind it: frames the actor writes, its FIN and its close
/// arrive at the probe as messages; the test plays the peer by queueing frames (<see cref="Receive"/>) or
/// telling the actor transport events.
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

    private InboundFrames? _inbound;
    public IInboundFrames Inbound => Started();

    public void Start(IActorRef owner) => Volatile.Write(ref _inbound, new InboundFrames(owner, 64 * 1024));

    /// <summary>
    /// The actor publishes Opened before it starts its transport, so a test that saw Opened may get here first
    /// (one run in a few on a busy machine): wait for the start as a socket's first read would.
    /// </summary>
    private InboundFrames Started()
    {
        InboundFrames? inbound = null;
        if (!SpinWait.SpinUntil(() => (inbound = Volatile.Read(ref _inbound)) is not null, TimeSpan.FromSeconds(10)))
            throw new TimeoutException("the connection actor never started its transport");
        return inbound!;
    }

    /// <summary>The peer's frame arrives, as if read from the socket.</summary>
    public void Receive(Frame frame, int wireBytes) =>
        Started().Enqueue(new InboundFrame(new DecodedFrame(frame.Type, frame.Timestamp, frame.Data, frame.Seq) { Interval = frame.Interval }, wireBytes));

    public void Close(CloseReason reason, string detail)
    {
        Write(Frame.ErrorNotice(1, reason.NoticeText(detail)));
        ShutdownOutput();
    }

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
