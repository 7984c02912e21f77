namespace Supervisor.Messages.Protocol;

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
public sealed record KeepAliveStatus(
    bool Enabled,
    int? IdleSeconds,
    int? IntervalSeconds,
    int? Probes,
    int? UserTimeoutMs,
    IReadOnlyList<string> Problems)
{
    public static KeepAliveStatus Disabled { get; } = new(false, null, null, null, null, []);
}

/// <summary>One connection as the registry and the operator see it.</summary>
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

    /// <summary>While suspect: why the peer is quiet, from the kernel's view of the socket (null while active, or where nobody asked).</summary>
    public SilenceCause? Cause { get; init; }
}

/// <summary>
/// How far the application's connection handler is behind on one connection (<c>handler.max-frames-in-flight</c>):
/// data frames read and not yet handled, the bound past which the connection stops reading its socket, whether it
/// is not reading now, and how often it stopped.
/// </summary>
public readonly record struct HandlerFlow(int FramesInFlight, int MaxFramesInFlight, bool ReadingPaused, long TimesPaused)
{
    public static HandlerFlow None => default;
}

/// <summary>Which connections a query wants; a null part matches everything.</summary>
public sealed record ConnectionFilter(IReadOnlyList<ConnectionState>? States, string? Protocol, string? Listener)
{
    public static ConnectionFilter All { get; } = new(null, null, null);

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
    public static ConnectionOrder Instance { get; } = new();

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
