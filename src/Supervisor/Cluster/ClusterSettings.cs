using Akka.Configuration;
using Supervisor.Configuration;
using Supervisor.Monitoring;
using static Supervisor.Configuration.HoconReader;

namespace Supervisor.Cluster;

/// <summary>How the split-brain resolver decides which side of a partition survives (<c>cluster.downing.strategy</c>).</summary>
internal enum DowningStrategy
{
    KeepMajority,
    KeepOldest,
}

/// <summary>Everything under <c>supervisor.cluster</c>, validated. <see cref="Enabled"/> false: one process, no remoting.</summary>
/// <param name="Hostname">The address the other nodes reach this one at.</param>
/// <param name="Port">Akka.Remote's port; 0 lets the kernel choose (then nobody can list this node as a seed).</param>
/// <param name="StableAfter">Membership must be stable this long before the resolver downs the unreachable side.</param>
/// <param name="ReplicationInterval">How often a node sends its ledger changes to the others.</param>
/// <param name="QueryTimeout">How long a cluster-wide list or one-connection question waits for one node before answering without it.</param>
/// <param name="StatsTimeout">How long a cluster-wide stats query waits for one node before counting it from its replica.</param>
internal sealed record ClusterSettings(
    bool Enabled,
    string Hostname,
    int Port,
    IReadOnlyList<HostPort> SeedNodes,
    IReadOnlyList<string> Roles,
    DowningStrategy Downing,
    TimeSpan StableAfter,
    TimeSpan HeartbeatInterval,
    TimeSpan AcceptableHeartbeatPause,
    TimeSpan ReplicationInterval,
    TimeSpan QueryTimeout,
    TimeSpan StatsTimeout,
    int MaximumFrameSize,
    IReadOnlyList<AlertRule> Rules)
{
    public const string Path = "supervisor.cluster";

    /// <summary>
    /// How long a stopping node waits in coordinated shutdown's <c>cluster-exiting</c> phase for the others to see
    /// it leave (<c>leave-timeout</c>); when all nodes stop at once it is what the stop takes. Default 3 s.
    /// </summary>
    public TimeSpan LeaveTimeout { get; init; } = TimeSpan.FromSeconds(3);

    public static ClusterSettings Disabled { get; } = new(false, "127.0.0.1", 0, [], [], DowningStrategy.KeepMajority,
        TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3), TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(500), 64 << 20, []);

    /// <summary>The cluster monitor sees the nodes' totals, not single heartbeats or round trips: counters and the active gauge only.</summary>
    public static bool ClusterMetric(string metric) =>
        metric is not (MonitorMetrics.CapacityPercent or MonitorMetrics.RttP99 or MonitorMetrics.Missed) && !MonitorMetrics.IsCause(metric);

    public static ClusterSettings Read(Config config)
    {
        var cluster = config.GetConfig(Path);
        var enabled = ReadBool(cluster, "enabled", Path);
        var port = ReadInt(cluster, "port", Path);
        if (port is < 0 or > 65535)
            throw new ConfigurationError($"{Path}.port", $"{port} is out of range 0-65535");
        var seeds = HoconReader.Read(cluster, "seed-nodes", Path, "a list of \"host:port\"", () => cluster.GetStringList("seed-nodes"))
            .Select(seed => HostPort.Parse(seed, $"{Path}.seed-nodes"))
            .ToArray();
        if (enabled && seeds.Length == 0)
            throw new ConfigurationError($"{Path}.seed-nodes", "is empty: list at least one node to join (this node's own host:port starts a new cluster)");
        var strategy = ReadString(cluster, "downing.strategy", Path) switch
        {
            "keep-majority" => DowningStrategy.KeepMajority,
            "keep-oldest" => DowningStrategy.KeepOldest,
            var other => throw new ConfigurationError($"{Path}.downing.strategy", $"'{other}' is not one of keep-majority, keep-oldest"),
        };
        var heartbeat = ReadPositiveDuration(cluster, "failure-detector.heartbeat-interval", Path);
        var pause = ReadPositiveDuration(cluster, "failure-detector.acceptable-heartbeat-pause", Path);
        if (pause < heartbeat)
            throw new ConfigurationError($"{Path}.failure-detector.acceptable-heartbeat-pause",
                $"{Raw(cluster, "failure-detector.acceptable-heartbeat-pause")} must not be shorter than heartbeat-interval ({Raw(cluster, "failure-detector.heartbeat-interval")})");
        var hostname = ReadString(cluster, "hostname", Path);
        if (hostname is "" or "0.0.0.0" or "::" or "[::]")
            throw new ConfigurationError($"{Path}.hostname", $"'{hostname}' is not an address the other nodes can reach this one at (it names this node and its connection ids)");
        var frame = ReadSize(cluster, "maximum-frame-size", Path);
        if (frame < 128 * 1024)
            throw new ConfigurationError($"{Path}.maximum-frame-size", $"{frame} bytes is below Akka.Remote's 128KiB minimum");
        return new ClusterSettings(
            enabled,
            hostname,
            port,
            seeds,
            HoconReader.Read(cluster, "roles", Path, "a list of strings", () => cluster.GetStringList("roles")).ToArray(),
            strategy,
            ReadPositiveDuration(cluster, "downing.stable-after", Path),
            heartbeat,
            pause,
            ReadPositiveDuration(cluster, "replication-interval", Path),
            ReadPositiveDuration(cluster, "query-timeout", Path),
            ReadPositiveDuration(cluster, "stats-timeout", Path),
            frame,
            MonitorSettings.ReadRules(cluster.GetConfig("monitor"), $"{Path}.monitor", ClusterMetric))
        {
            LeaveTimeout = ReadPositiveDuration(cluster, "leave-timeout", Path),
        };
    }

    /// <summary>The Akka HOCON this section stands for (failure detector, resolver timing, frame size, leave timeout), layered over Akka's defaults.</summary>
    public string AkkaHocon() => $$"""
        akka.cluster.failure-detector {
          heartbeat-interval = {{Ms(HeartbeatInterval)}}
          acceptable-heartbeat-pause = {{Ms(AcceptableHeartbeatPause)}}
        }
        akka.cluster.split-brain-resolver.stable-after = {{Ms(StableAfter)}}
        akka.cluster.log-info = off
        akka.remote.dot-netty.tcp {
          maximum-frame-size = {{MaximumFrameSize}}b
        }
        akka.coordinated-shutdown.phases.cluster-exiting.timeout = {{Ms(LeaveTimeout)}}
        """;

    private static string Ms(TimeSpan t) => $"{(long)t.TotalMilliseconds}ms";
}
