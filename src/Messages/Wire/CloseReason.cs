namespace Supervisor.Messages.Wire;

/// <summary>Why a connection ended; every close has exactly one (DESIGN §3).</summary>
public enum CloseReason
{
    /// <summary>No valid frame from the peer (no heartbeat traffic, in <c>heartbeat-only</c> mode) for <c>heartbeat.timeout</c>.</summary>
    HeartbeatTimeout,
    /// <summary>The peer closed its side (FIN), or left while its socket still waited in the accept queue.</summary>
    PeerClosed,
    /// <summary>The peer reset the connection (RST: ECONNRESET or EPIPE), during a handshake, a read or a write.</summary>
    PeerReset,
    /// <summary>The peer sent what is not a valid frame, failed the TLS handshake, or sent a bad or untrusted PROXY header.</summary>
    ProtocolError,
    /// <summary>The peer sent a frame longer than the listener's <c>max-frame-length</c>.</summary>
    FrameTooLarge,
    /// <summary>The kernel's keep-alive probes or its TCP user timeout gave up on the connection.</summary>
    KeepaliveFailed,
    /// <summary>The peer stopped reading while more than <c>tcp.max-pending-write</c> bytes were queued for it (a slow consumer).</summary>
    WriteFailed,
    /// <summary>Refused: the listener was at <c>max-connections</c>, or the peer's address at <c>max-connections-per-address</c>.</summary>
    RejectedCapacity,
    /// <summary>An operator or the application closed it (<c>DELETE /api/connections/{id}</c>, <see cref="Protocol.ConnectionCommands.CloseConnection"/>), or a heartbeat client was stopped.</summary>
    AdminClosed,
    /// <summary>The service is shutting down and closes every connection (<see cref="Protocol.ConnectionCommands.CloseAll"/>).</summary>
    ServerShutdown,
    /// <summary>The connection's own code failed (say, the connection handler threw); the supervisor stopped it.</summary>
    InternalError,
    /// <summary>The peer sent frames faster than <c>tcp.limits.max-frames-per-second</c> allows.</summary>
    RateLimited,
    /// <summary>The peer completed no valid frame within <c>tcp.limits.first-frame-timeout</c>.</summary>
    FirstFrameTimeout,
    /// <summary>
    /// The cluster node holding the connection was lost (marked down by the split-brain resolver); decided by
    /// the surviving nodes, which never saw the socket close.
    /// </summary>
    NodeDown,
}

/// <summary>Helpers over <see cref="CloseReason"/>: its wire names and how a close is announced.</summary>
public static class CloseReasons
{
    /// <summary>Every close reason, in declaration order.</summary>
    public static IReadOnlyList<CloseReason> All { get; } = Enum.GetValues<CloseReason>();

    /// <summary>The name operators see in logs, metrics and the HTTP API, e.g. <c>heartbeat-timeout</c>.</summary>
    public static string ToWireName(this CloseReason reason) => reason switch
    {
        CloseReason.HeartbeatTimeout => "heartbeat-timeout",
        CloseReason.PeerClosed => "peer-closed",
        CloseReason.PeerReset => "peer-reset",
        CloseReason.ProtocolError => "protocol-error",
        CloseReason.FrameTooLarge => "frame-too-large",
        CloseReason.KeepaliveFailed => "keepalive-failed",
        CloseReason.WriteFailed => "write-failed",
        CloseReason.RejectedCapacity => "rejected-capacity",
        CloseReason.AdminClosed => "admin-closed",
        CloseReason.ServerShutdown => "server-shutdown",
        CloseReason.InternalError => "internal-error",
        CloseReason.RateLimited => "rate-limited",
        CloseReason.FirstFrameTimeout => "first-frame-timeout",
        CloseReason.NodeDown => "node-down",
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, null),
    };

    /// <summary>
    /// The text that announces a close to the peer, <c>"&lt;reason&gt;: &lt;detail&gt;"</c> (DESIGN §2): the one place it is
    /// formatted. A transport carries it its own way (an error-notice line, a WebSocket text message before the close frame).
    /// </summary>
    public static string NoticeText(this CloseReason reason, string detail) => $"{reason.ToWireName()}: {detail}";

    /// <summary>The key of the reconnect hint in a notice's detail: <c>"…; reconnect-after=1234ms"</c> (DESIGN §2).</summary>
    public const string ReconnectHintKey = "reconnect-after";

    /// <summary>
    /// <paramref name="detail"/> with a reconnect hint appended, <c>"the server is shutting down; reconnect-after=1234ms"</c>:
    /// when the server asks this peer to come back, in whole milliseconds from the notice. Machine-readable inside the
    /// notice text, so a client that knows nothing of it (the source document's) reads the text as before.
    /// </summary>
    public static string WithReconnectHint(string detail, TimeSpan after) =>
        $"{detail}; {ReconnectHintKey}={(long)Math.Max(0, after.TotalMilliseconds)}ms";

    /// <summary>
    /// The reconnect hint in a notice's text (<see cref="WithReconnectHint"/>), wherever it stands in it; false when
    /// there is none or it is not a whole number of milliseconds.
    /// </summary>
    public static bool TryReadReconnectHint(string? notice, out TimeSpan after)
    {
        after = default;
        if (notice is null) return false;
        var marker = notice.LastIndexOf(ReconnectHintKey + "=", StringComparison.Ordinal);
        if (marker < 0) return false;
        var digits = notice.AsSpan(marker + ReconnectHintKey.Length + 1);
        var length = 0;
        while (length < digits.Length && char.IsAsciiDigit(digits[length])) length++;
        if (length is 0 or > 9 || !digits[length..].StartsWith("ms", StringComparison.Ordinal)) return false;
        after = TimeSpan.FromMilliseconds(long.Parse(digits[..length]));
        return true;
    }

    /// <summary>The reason whose wire name (<see cref="ToWireName"/>) is <paramref name="wireName"/>, exactly; false for any other text.</summary>
    public static bool TryParse(string wireName, out CloseReason reason)
    {
        foreach (var candidate in All)
        {
            if (candidate.ToWireName() == wireName)
            {
                reason = candidate;
                return true;
            }
        }
        reason = default;
        return false;
    }

    /// <summary>
    /// Closes the server decides on are announced to the peer with an error notice first;
    /// closes the peer or the network caused are not, since nobody is there to read it.
    /// </summary>
    public static bool IsAnnouncedToPeer(this CloseReason reason) => reason switch
    {
        CloseReason.PeerClosed or CloseReason.PeerReset or CloseReason.KeepaliveFailed or CloseReason.WriteFailed => false,
        _ => true,
    };
}
