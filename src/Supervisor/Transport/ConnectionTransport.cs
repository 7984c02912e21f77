using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Transport;

/// <summary>
/// The narrow seam between a connection actor and its socket: frames come in through <see cref="Inbound"/>
/// (announced by <see cref="TransportEvents.FramesReady"/>), frames go out through <see cref="Write"/>, and a close
/// the server decides goes out through <see cref="Close"/>.
/// Every member except the event delivery is called on the owning actor's thread only.
/// </summary>
internal interface IConnectionTransport : IDisposable
{
    string Remote { get; }

    /// <summary>What the peer speaks, as operators see it: <c>tcp</c>, <c>ws</c>.</summary>
    string Protocol { get; }

    /// <summary>Keep-alive as read back from the socket; <see cref="KeepAliveStatus.Disabled"/> where it has none.</summary>
    KeepAliveStatus KeepAlive { get; }

    /// <summary>Bytes handed to the kernel so far.</summary>
    long BytesOut { get; }

    /// <summary>Starts delivering <see cref="TransportEvents"/> to <paramref name="owner"/>.</summary>
    void Start(IActorRef owner);

    /// <summary>Queues one frame for the peer; false when the socket failed or the peer stopped reading (see <see cref="WriteFailure"/>).</summary>
    bool Write(Frame frame);

    /// <summary>
    /// Why the last <see cref="Write"/>, <see cref="WriteHeartbeatResponse"/> or <see cref="OnWriteFinished"/>
    /// returned false: <c>peer-reset</c> for a peer that reset, <c>write-failed</c> only for one that stopped
    /// reading, <c>internal-error</c> for a failure of ours.
    /// </summary>
    TransportFailure WriteFailure => TransportFailure.Unspecified;

    /// <summary>
    /// Queues a heartbeat response (<c>{"type":1,"timestamp":…,"seq":…}</c>); a transport may encode it
    /// without allocating. Same result as <see cref="Write"/> with <see cref="Frame.HeartbeatResponse"/>.
    /// </summary>
    bool WriteHeartbeatResponse(long timestamp, long? seq, int? interval = null) =>
        Write(Frame.HeartbeatResponse(timestamp, seq) with { Interval = interval });

    /// <summary>
    /// The frames the transport has decoded, announced by <see cref="TransportEvents.FramesReady"/> (one shape for
    /// every transport: a heartbeat reaches its owner without a message or a frame allocated for it), and the gate
    /// the owner pauses reading with. Set once <see cref="Start"/> ran.
    /// </summary>
    IInboundFrames Inbound { get; }

    /// <summary>Handles the completion of a write that could not finish at once.</summary>
    bool OnWriteFinished(TransportEvents.WriteFinished finished);

    /// <summary>Sends FIN once queued writes are flushed; input is drained and discarded from then on.</summary>
    void ShutdownOutput();

    /// <summary>
    /// Announces a close the server decided, the transport's own way, then shuts output as <see cref="ShutdownOutput"/>
    /// does: an error-notice line (<c>"&lt;reason&gt;: &lt;detail&gt;"</c>, <see cref="CloseReasons.NoticeText"/>) on TCP
    /// and TLS; the same text as a message, then a close frame whose status follows the reason, on a WebSocket.
    /// </summary>
    void Close(CloseReason reason, string detail);

    /// <summary>The kernel's TCP_INFO for the socket under this transport; null where there is none.</summary>
    TcpInfo? ReadTcpInfo() => null;

    /// <summary>
    /// Has the kernel send keep-alive probes every <paramref name="everySeconds"/> to a suspect peer, at most
    /// <paramref name="probes"/> unanswered (<see cref="SocketKeepAlive.Nudge"/>); false where the transport cannot.
    /// </summary>
    bool NudgeKeepAlive(int everySeconds, int probes) => false;

    /// <summary>Puts the configured keep-alive back after <see cref="NudgeKeepAlive"/>: the peer spoke again.</summary>
    void RestoreKeepAlive() { }

    /// <summary>
    /// How long ago the transport could first carry frames: a TLS transport counts from the end of its
    /// handshake, null while that still runs (it has its own deadline, <c>tcp.tls.handshake-timeout</c>).
    /// Transports ready on connecting answer <see cref="TimeSpan.MaxValue"/>. The first-frame deadline
    /// counts from here: a handshake slowed by a busy server is no idle peer.
    /// </summary>
    TimeSpan? ReadyFor => TimeSpan.MaxValue;
}

/// <summary>What a transport tells its connection actor.</summary>
internal static class TransportEvents
{
    public interface ITransportEvent;

    /// <summary>
    /// Frames are waiting in the transport's <see cref="IConnectionTransport.Inbound"/> queue; the owner takes
    /// them all. One instance, sent again only after the owner has begun taking.
    /// </summary>
    public sealed class FramesReady : ITransportEvent
    {
        public static readonly FramesReady Instance = new();

        private FramesReady() { }
    }

    /// <summary>Input that breaks the protocol; the transport stops decoding and drains.</summary>
    public sealed record FrameRejected(CloseReason Reason, string Error) : ITransportEvent;

    /// <summary>
    /// The input side ended: the peer closed or reset, the kernel gave up on it, or a loop, handshake or timer
    /// of the transport ended (a peer that misses its pong, or a failure of ours, <c>internal-error</c>). The
    /// transport reads no more; the owner closes with this reason, and stops if it was already closing.
    /// </summary>
    public sealed record InputEnded(CloseReason Reason, string Detail) : ITransportEvent;

    /// <summary>A queued write finished (<c>Error</c> null) or failed, and then why (<see cref="TransportFailures.WriteFailed"/>).</summary>
    public sealed record WriteFinished(int Bytes, string? Error) : ITransportEvent
    {
        /// <summary>The close reason of a failed write.</summary>
        public CloseReason Reason { get; init; } = CloseReason.WriteFailed;
    }
}
