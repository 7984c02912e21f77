namespace Supervisor.Configuration;

public enum LivenessMode
{
    /// <summary>Every complete valid frame proves the peer alive.</summary>
    AnyFrame,
    /// <summary>Only heartbeat (0) and heartbeat response (1) frames do, as in the source document.</summary>
    HeartbeatOnly,
}

/// <summary>Kernel keep-alive for accepted sockets (<c>tcp.keepalive</c>, <c>tcp.user-timeout</c>).</summary>
/// <param name="Enabled">SO_KEEPALIVE. Default on.</param>
/// <param name="Idle">TCP_KEEPIDLE. Default 600 s (web-service).</param>
/// <param name="Interval">TCP_KEEPINTVL. Default 30 s.</param>
/// <param name="Probes">TCP_KEEPCNT. Default 3.</param>
/// <param name="UserTimeout">TCP_USER_TIMEOUT; null when off. Default off.</param>
public sealed record KeepAliveSettings(bool Enabled, TimeSpan Idle, TimeSpan Interval, int Probes, TimeSpan? UserTimeout);

/// <summary>Application heartbeat (<c>heartbeat</c>).</summary>
/// <param name="Enabled">Default on.</param>
/// <param name="Interval">Idle longer than this is suspect. Default 30 s.</param>
/// <param name="Timeout">Idle this long is closed with heartbeat-timeout. Default 90 s.</param>
/// <param name="Liveness">Default any-frame.</param>
/// <param name="ServerPing">Default off.</param>
/// <param name="StarvationThreshold">A deadline timer this late means the server stalled; the stall is forgiven. Default 1 s.</param>
public sealed record HeartbeatSettings(bool Enabled, TimeSpan Interval, TimeSpan Timeout, LivenessMode Liveness, bool ServerPing, TimeSpan StarvationThreshold);

/// <summary>One TCP listener: <c>supervisor.tcp</c> or an entry of <c>supervisor.listeners</c>.</summary>
public sealed record ListenerSettings(
    string Name,
    string Profile,
    string Host,
    int Port,
    int MaxFrameLength,
    int MaxConnections,
    int MaxPendingWrite,
    TimeSpan CloseLinger,
    KeepAliveSettings KeepAlive,
    HeartbeatSettings Heartbeat);

/// <summary>Everything the service reads from <c>supervisor</c>, validated.</summary>
public sealed record SupervisorSettings(
    string Profile,
    IReadOnlyList<ListenerSettings> Listeners,
    int RegistryShards,
    TimeSpan ShutdownCloseTimeout)
{
    /// <summary>The monitor's rules and sinks (<c>supervisor.monitor</c>).</summary>
    public Monitoring.MonitorSettings Monitor { get; init; } = null!;

    /// <summary>Defaults of outbound heartbeat clients (<c>supervisor.client</c>); the endpoint is usually unset.</summary>
    public Client.ClientSettings Client { get; init; } = null!;

    /// <summary>Defaults of client pools (<c>supervisor.pool</c>), members built from <see cref="Client"/>.</summary>
    public Client.PoolSettings Pool { get; init; } = null!;

    /// <summary>Dependency probes (<c>supervisor.probes</c>), by name.</summary>
    public IReadOnlyList<Probes.ProbeSettings> Probes { get; init; } = [];
}
