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
        services.TryAddSingleton<NodeDowning>();
        services.TryAddSingleton(_ => FileDescriptorBudget.ForThisProcess());
        services.TryAddSingleton(_ => new Transport.PendingFrameMemory(settings.PendingFrameMemory));
        services.AddAkka(ActorSystemName, (builder, provider) => builder
            .WithSupervisorLogging(provider.GetRequiredService<ILoggerFactory>())
            // Before the core: the cluster's ledger is registered where the registry shards look for it.
            .AddClusterMembership(ActorSystemName, settings, provider.GetRequiredService<SupervisorMetrics>(), provider.GetRequiredService<ILoggerFactory>(),
                provider.GetRequiredService<NodeDowning>())
            .WithConnectionSupervisor(config, settings, listeners)
            .AddProbes(settings.Probes));
        services.AddOperatorSurface(config, settings);
        return services;
    }
}
