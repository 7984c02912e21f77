using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Hosting.SBR;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Microsoft.Extensions.Logging;
using Supervisor.Configuration;
using Supervisor.Hosting;
using Supervisor.Monitoring;

namespace Supervisor.Cluster;

/// <summary>The cluster for an application that embeds the connection supervisor.</summary>
public static class ClusterHosting
{
    /// <summary>
    /// Runs this node of the connection supervisor that <paramref name="options"/> describe as a member of an Akka.NET
    /// cluster (<c>supervisor.cluster</c>: seed nodes, roles, the split-brain resolver): connection ids unique
    /// cluster-wide, any node lists and closes every node's connections, a lost node's connections reported
    /// <c>node-down</c>, a singleton cluster monitor. Call it before <c>WithConnectionSupervisor</c> with the same options,
    /// in <c>AddAkka(name, (akka, provider) => ...)</c>; every node runs the same actor system name. Nothing when
    /// <c>supervisor.cluster.enabled</c> is off. Throws <see cref="ConfigurationError"/> for a key or value it refuses.
    /// </summary>
    /// <param name="actorSystemName">The name given to <c>AddAkka</c> (the seed nodes' addresses carry it).</param>
    /// <param name="services">The host's services (its loggers).</param>
    public static AkkaConfigurationBuilder WithConnectionSupervisorCluster(this AkkaConfigurationBuilder builder, string actorSystemName,
        ConnectionSupervisorOptions options, IServiceProvider services) =>
        builder.AddClusterMembership(actorSystemName, SupervisorConfig.Read(options.Build()),
            services.GetService(typeof(ILoggerFactory)) as ILoggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance,
            new NodeDowning());

    internal const string SingletonName = "cluster-monitor";

    /// <summary>
    /// Akka.Remote and Akka.Cluster (seed nodes, roles, the split-brain resolver), the singleton cluster monitor and
    /// this node's <see cref="ClusterRegistry"/>, when <c>supervisor.cluster.enabled</c>; nothing at all otherwise,
    /// so that a single node runs exactly as before (local actor provider, no port opened).
    /// </summary>
    /// <param name="systemName">The actor system's name, the same on every node (the seed nodes' addresses carry it).</param>
    internal static AkkaConfigurationBuilder AddClusterMembership(this AkkaConfigurationBuilder builder, string systemName, SupervisorSettings settings,
        ILoggerFactory loggers, NodeDowning downing)
    {
        var cluster = settings.Cluster;
        if (!cluster.Enabled) return builder;
        var log = loggers.CreateLogger<ClusterRegistry>();
        return builder
            .AddHocon(cluster.AkkaHocon(), HoconAddMode.Prepend)
            .WithCustomSerializer(WireSerializer.Name, WireSerializer.Types.Values, system => new WireSerializer(system))
            .WithRemoting(cluster.Hostname, cluster.Port)
            // Connection ids end in this node's @host:port, so they are unique cluster-wide and name their node.
            .AddSetup(new SupervisorFeatures { ConnectionIdSuffix = system => "@" + ClusterRegistry.NodeName(Akka.Cluster.Cluster.Get(system).SelfAddress) })
            .WithClustering(new ClusterOptions
            {
                SeedNodes = cluster.SeedNodes.Select(seed => SeedAddress(seed, systemName)).ToArray(),
                Roles = cluster.Roles.ToArray(),
                SplitBrainResolver = cluster.Downing switch
                {
                    DowningStrategy.KeepOldest => new KeepOldestOption { DownIfAlone = true },
                    _ => new KeepMajorityOption(),
                },
            })
            .WithSingleton<ClusterMonitor>(SingletonName,
                ClusterMonitor.Props(ClusterMonitorSettings(settings), loggers.CreateLogger<ClusterMonitor>()),
                // The proxy buffers messages while the singleton moves; its "failed to find" warning fires on every
                // start and hand-over, before the singleton could possibly be there, and says nothing an operator can act on.
                new ClusterSingletonOptions { LogSingletonIdentificationFailure = false }, createProxyToo: true)
            .WithActors((system, registry, resolver) =>
            {
                downing.Watch(system);
                system.ActorOf(SelfDowning.Props(cluster, log), "self-downing");
                var self = Akka.Cluster.Cluster.Get(system).SelfAddress;
                ClusterLog.Joining(log, ClusterRegistry.NodeName(self), string.Join(",", cluster.Roles),
                    string.Join(",", cluster.SeedNodes), cluster.Downing.ToString(), cluster.StableAfter.ToString(),
                    cluster.AcceptableHeartbeatPause.ToString());
                var ledger = Connections.LifecyclePublisher.SubscribedFromStart(system,
                    system.ActorOf(ClusterRegistry.Props(cluster, registry.Get<ClusterMonitor>(), SupervisorMetrics.Of(system, resolver), log), ClusterRegistry.Name));
                registry.Register<ClusterRegistry>(ledger);
                // Found by the core (the registry shards tell it every open and close) and the operator surface under their keys.
                registry.Register<ClusterLedger>(ledger);
                registry.Register<ClusterAlerts>(registry.Get<ClusterMonitor>());
                // The other nodes hear of this node's last closes before it leaves, so they do not count them as lost.
                CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseBeforeClusterShutdown, "flush-cluster-ledger", async () =>
                {
                    await ledger.Ask<ClusterRegistry.Flushed>(ClusterRegistry.Flush.Instance, cluster.QueryTimeout);
                    return Akka.Done.Instance;
                });
            });
    }

    /// <summary>The cluster rules, with the node monitor's mass-disconnect and sinks; no starvation probe (each node watches its own).</summary>
    internal static MonitorSettings ClusterMonitorSettings(SupervisorSettings settings) => settings.Monitor with
    {
        Rules = settings.Cluster.Rules,
        Capacity = 0,
        Scope = Messages.Protocol.AlertScopes.Cluster,
        WatchStarvation = false,
    };

    /// <summary>The Akka address of a seed node in actor system <paramref name="systemName"/> (every node runs the same name).</summary>
    internal static string SeedAddress(HostPort seed, string systemName) => $"akka.tcp://{systemName}@{seed}";
}

/// <summary>
/// Whether this node stopped because the cluster marked it down (the minority side of a partition, or a node frozen
/// longer than the downing time). The process then exits 1 instead of 0, so that a supervisor such as systemd
/// (<c>Restart=on-failure</c>) starts it again and it rejoins as a new member.
/// </summary>
internal sealed class NodeDowning
{
    private volatile bool _downed;

    public bool Downed => _downed;

    public const string Explanation =
        "this node was marked down by the cluster (split-brain resolver) and stopped; the other nodes reported its connections node-down";

    internal void Watch(ActorSystem system) =>
        CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseBeforeServiceUnbind, "note-cluster-downing", () =>
        {
            _downed = CoordinatedShutdown.Get(system).ShutdownReason is CoordinatedShutdown.ClusterDowningReason;
            return Task.FromResult(Akka.Done.Instance);
        });
}
