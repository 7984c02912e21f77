namespace Supervisor.Messages.Protocol;

/// <summary>Where a connection is in its life (DESIGN §3); the operator API shows it lower case.</summary>
public enum ConnectionState
{
    /// <summary>The peer has proved it is alive within the heartbeat interval.</summary>
    Active,
    /// <summary>An expected heartbeat is late: idle longer than the heartbeat interval.</summary>
    Suspect,
    /// <summary>A close reason is decided; the socket is being shut.</summary>
    Closing,
}

/// <summary>
/// Kernel keep-alive as read back from the socket after it was configured; a field the platform
/// does not report is null, so an ignored option is visible rather than assumed.
/// </summary>
/// <param name="Enabled">SO_KEEPALIVE is on.</param>
/// <param name="IdleSeconds">Idle time before the first probe (TCP_KEEPIDLE), in seconds.</param>
/// <param name="IntervalSeconds">Time between probes (TCP_KEEPINTVL), in seconds.</param>
/// <param name="Probes">Unanswered probes before the kernel drops the connection (TCP_KEEPCNT).</param>
/// <param name="UserTimeoutMs">How long sent data may stay unacknowledged before the kernel drops the connection (TCP_USER_TIMEOUT), in milliseconds; null when unset (0).</param>
/// <param name="Problems">Options that could not be set or read, or that read back other than configured; empty when all is as configured.</param>
public sealed record KeepAliveStatus(
    bool Enabled,
    int? IdleSeconds,
    int? IntervalSeconds,
    int? Probes,
    int? UserTimeoutMs,
    IReadOnlyList<string> Problems)
{
    /// <summary>No keep-alive: what a transport without a TCP socket of its own reports.</summary>
    public static KeepAliveStatus Disabled { get; } = new(false, null, null, null, null, []);
}

/// <summary>One connection as the registry and the operator see it (a row of <c>GET /api/connections</c>).</summary>
/// <param name="Id">Unique in the process: <c>c123</c> for an accepted connection (<c>c123@host:port</c> in a cluster), <c>CLIENT.N</c> for a heartbeat client's N-th connection.</param>
/// <param name="Remote">The peer's address, <c>address:port</c> (the client named by a PROXY header where a listener reads one).</param>
/// <param name="Listener">The name of the listener that accepted it; for an outbound connection, the client's name.</param>
/// <param name="Protocol"><c>tcp</c>, <c>tls</c>, <c>ws</c>, or <c>tcp-out</c> for a heartbeat client.</param>
/// <param name="State">Active, suspect, or closing once its close is decided.</param>
/// <param name="ConnectedAt">When the connection was adopted (for an outbound one, established).</param>
/// <param name="LastFrameAt">When the last valid frame arrived; null before the first.</param>
/// <param name="LastHeartbeatAt">When the last heartbeat or heartbeat response arrived; null before the first.</param>
/// <param name="MissedHeartbeats">Heartbeat intervals that passed since the peer last proved it is alive; 0 while active.</param>
/// <param name="RttMs">Round-trip time of the last answered ping in milliseconds (the server's pings on a listener with <c>server-ping = on</c>, the heartbeats of a client); null until one is answered.</param>
/// <param name="BytesIn">Bytes received, as on the wire (frame delimiters and length prefixes included).</param>
/// <param name="BytesOut">Bytes sent.</param>
/// <param name="HeartbeatsReceived">Heartbeats (type 0) received from the peer.</param>
/// <param name="KeepAlive">The socket's kernel keep-alive, as read back after it was configured.</param>
public sealed record ConnectionStatus(
    string Id,
    string Remote,
    string Listener,
    string Protocol,
    ConnectionState State,
    DateTimeOffset ConnectedAt,
    DateTimeOffset? LastFrameAt,
    DateTimeOffset? LastHeartbeatAt,
    int MissedHeartbeats,
    double? RttMs,
    long BytesIn,
    long BytesOut,
    long HeartbeatsReceived,
    KeepAliveStatus KeepAlive)
{
    /// <summary>The application handler's backlog and the backpressure it caused; <see cref="HandlerFlow.None"/> where no handler runs.</summary>
    public HandlerFlow Handler { get; init; }

    /// <summary>The phi accrual detector's view of the peer (<c>heartbeat.detector = phi</c>); null with the fixed timeout.</summary>
    public PhiStatus? Phi { get; init; }

    /// <summary>The heartbeat interval the peer announced and what the server accepted and derived from it; null while it announced none.</summary>
    public NegotiatedHeartbeat? Negotiated { get; init; }

    /// <summary>While suspect: why the peer is quiet, from the kernel's view of the socket (null while active, or where nobody asked).</summary>
    public SilenceCause? Cause { get; init; }
}

/// <summary>
/// A heartbeat interval the peer announced on its heartbeats (the optional <c>interval</c> field), and this connection's
/// deadlines derived from the accepted one (<c>heartbeat.negotiation</c>, DESIGN §3).
/// </summary>
/// <param name="RequestedMs">The interval the peer announced, in milliseconds.</param>
/// <param name="AcceptedMs">The interval accepted: the announced one within the listener's bounds, else the nearer bound.</param>
/// <param name="SuspectAfterMs">Silence after which the connection is suspect, in milliseconds.</param>
/// <param name="TimeoutMs">Silence after which it is closed with heartbeat-timeout, in milliseconds.</param>
public sealed record NegotiatedHeartbeat(int RequestedMs, int AcceptedMs, double SuspectAfterMs, double TimeoutMs);

/// <summary>
/// What a connection's phi accrual detector has learned of its peer's heartbeats, and where it stands now
/// (<c>heartbeat.detector = phi</c>).
/// </summary>
/// <param name="Phi">φ now: −log10 of the probability that a heartbeat is still to come after this much silence; the
/// connection is suspect at <c>phi.suspect-threshold</c> and closed at <c>phi.threshold</c>.</param>
/// <param name="MeanMs">The mean time between the peer's heartbeats, learned, in milliseconds.</param>
/// <param name="StdDeviationMs">Their standard deviation, in milliseconds (before <c>phi.min-std-deviation</c> is applied).</param>
/// <param name="Samples">Intervals remembered (at most <c>phi.max-sample-size</c>).</param>
/// <param name="SuspectAfterMs">Silence after which the connection is suspect, in milliseconds.</param>
/// <param name="CloseAfterMs">Silence after which it is closed with heartbeat-timeout, in milliseconds: never more than <c>heartbeat.timeout</c>.</param>
public sealed record PhiStatus(double Phi, double MeanMs, double StdDeviationMs, int Samples, double SuspectAfterMs, double CloseAfterMs);

/// <summary>
/// How far the application's connection handler is behind on one connection (<c>handler.max-frames-in-flight</c>):
/// data frames read and not yet handled, the bound past which the connection stops reading its socket, whether it
/// is not reading now, and how often it stopped.
/// </summary>
/// <param name="FramesInFlight">Data frames read and handed to the handler, not yet handled.</param>
/// <param name="MaxFramesInFlight">The bound (<c>handler.max-frames-in-flight</c>) at which the connection stops reading its socket.</param>
/// <param name="ReadingPaused">True while the connection is not reading its socket because the handler is behind.</param>
/// <param name="TimesPaused">How often reading was paused over the connection's life.</param>
public readonly record struct HandlerFlow(int FramesInFlight, int MaxFramesInFlight, bool ReadingPaused, long TimesPaused)
{
    /// <summary>All zero: no handler runs on the connection.</summary>
    public static HandlerFlow None => default;
}

/// <summary>Which connections a query wants; a null part matches everything.</summary>
/// <param name="States">Any of these states (<c>?state=suspect,active</c>); null for every state.</param>
/// <param name="Protocol">Only this protocol, e.g. <c>ws</c>; null for every protocol.</param>
/// <param name="Listener">Only connections of the listener (or client) with this name; null for all.</param>
public sealed record ConnectionFilter(IReadOnlyList<ConnectionState>? States, string? Protocol, string? Listener)
{
    /// <summary>Matches every connection.</summary>
    public static ConnectionFilter All { get; } = new(null, null, null);

    /// <summary>True when <paramref name="status"/> passes every part of the filter that is set.</summary>
    public bool Matches(ConnectionStatus status) =>
        (States is null || States.Contains(status.State))
        && (Protocol is null || status.Protocol == Protocol)
        && (Listener is null || status.Listener == Listener);
}

/// <summary>
/// The order of every connection list: oldest first, ties broken by id (<c>c9</c> before <c>c10</c>), so that a page
/// keeps its members from one request to the next whatever order shards and nodes answer in.
/// </summary>
public sealed class ConnectionOrder : IComparer<ConnectionStatus>
{
    /// <summary>The comparer's one instance; it holds no state.</summary>
    public static ConnectionOrder Instance { get; } = new();

    /// <summary>Negative when <paramref name="x"/> comes first: the older, or on a tie the lower id; null sorts first.</summary>
    public int Compare(ConnectionStatus? x, ConnectionStatus? y)
    {
        if (ReferenceEquals(x, y)) return 0;
        if (x is null) return -1;
        if (y is null) return 1;
        var byAge = x.ConnectedAt.CompareTo(y.ConnectedAt);
        if (byAge != 0) return byAge;
        var byLength = x.Id.Length.CompareTo(y.Id.Length);
        return byLength != 0 ? byLength : string.CompareOrdinal(x.Id, y.Id);
    }
}
