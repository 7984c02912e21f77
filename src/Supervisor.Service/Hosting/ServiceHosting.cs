using System.Runtime.CompilerServices;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Supervisor.Cluster;
using Supervisor.Configuration;
using Supervisor.Connections;
using Supervisor.Http;
using Supervisor.Monitoring;
using Supervisor.Probes;

namespace Supervisor.Hosting;

/// <summary>
/// The service executable's composition: the core's <see cref="SupervisorHosting.WithConnectionSupervisor(AkkaConfigurationBuilder, Action{ConnectionSupervisorOptions})"/>
/// (the embedders' call) with every feature package beside it, in the actor system <see cref="ActorSystemName"/>.
/// </summary>
internal static class ServiceHosting
{
    public const string ActorSystemName = "supervisor";

    /// <summary>Registers the whole service: settings, the shared services, the actor system and the operator surface.</summary>
    public static IServiceCollection AddSupervisorService(this IServiceCollection services, Config config, SupervisorSettings settings, BoundListeners listeners)
    {
        services.AddSingleton(settings);
        services.AddSingleton(listeners);
        services.TryAddSingleton<ConnectionHandler, EchoHandler>();
        services.TryAddSingleton<ConnectionHub>();
        services.TryAddSingleton<IConnectionHub>(provider => provider.GetRequiredService<ConnectionHub>());
        services.TryAddSingleton(provider => new SupervisorMetrics(provider.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.TryAddSingleton(_ => FileDescriptorBudget.ForThisProcess());
        services.TryAddSingleton(_ => new Transport.PendingFrameMemory(settings.PendingFrameMemory));
        if (settings.Cluster.Enabled) ClusterFeature.Register(services);
        services.AddAkka(ActorSystemName, (builder, provider) =>
        {
            builder.WithSupervisorLogging(provider.GetRequiredService<ILoggerFactory>());
            // Before the core: the cluster's ledger is registered where the registry shards look for it.
            if (settings.Cluster.Enabled) ClusterFeature.AddMembership(builder, settings, provider);
            builder.WithConnectionSupervisor(config, settings, listeners);
            if (settings.Probes.Count > 0) ProbesFeature.Add(builder, settings.Probes);
        });
        services.AddOperatorSurface(config, settings);
        return services;
    }
}

/// <summary>
/// The cluster package, reached only through here and only on a clustered node: a single node then never loads it nor
/// Akka.Cluster, Akka.Remote and their hosting assemblies. Each assembly the runtime loads holds two descriptors for the
/// life of the process, and a node run under a tight descriptor limit has none to spare (issue 12: 600, with 300
/// connections). NoInlining keeps the cluster's types out of the callers' compiled code.
/// </summary>
internal static class ClusterFeature
{
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Register(IServiceCollection services) => services.TryAddSingleton<NodeDowning>();

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void AddMembership(AkkaConfigurationBuilder builder, SupervisorSettings settings, IServiceProvider provider) =>
        builder.AddClusterMembership(ServiceHosting.ActorSystemName, settings, provider.GetRequiredService<ILoggerFactory>(),
            provider.GetRequiredService<NodeDowning>());

    /// <summary>Why the process must exit 1 when the cluster marked this node down (<see cref="NodeDowning"/>); null when it did not.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static string? DownedExplanation(IServiceProvider services) =>
        services.GetRequiredService<NodeDowning>().Downed ? NodeDowning.Explanation : null;
}

/// <summary>The probes package (StackExchange.Redis), loaded only when <c>supervisor.probes</c> lists a probe; see <see cref="ClusterFeature"/>.</summary>
internal static class ProbesFeature
{
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Add(AkkaConfigurationBuilder builder, IReadOnlyList<ProbeSettings> probes) => builder.AddProbes(probes);
}
