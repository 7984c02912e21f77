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
    KeepAliveStatus KeepAlive);
