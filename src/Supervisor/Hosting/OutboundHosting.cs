using Akka.Actor;
using Akka.DependencyInjection;
using Akka.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Supervisor.Client;
using Supervisor.Monitoring;
using Supervisor.Registry;

namespace Supervisor.Hosting;

/// <summary>
/// Akka.Hosting wiring of the outbound side (issue 5), one extension method per feature: heartbeat clients,
/// pools (the probes are in the ConnectionSupervisor.Probes package). They report to the <see cref="ConnectionRegistry"/> and the
/// <see cref="MonitorActor"/> when those are registered (the service), and work without them (the
/// <c>client</c> command). <see cref="SupervisorMetrics"/> must be in the service collection.
/// </summary>
internal static class OutboundHosting
{
    /// <summary>Starts heartbeat client <paramref name="name"/> and registers it in the <see cref="ActorRegistry"/> under <typeparamref name="TKey"/>.</summary>
    public static AkkaConfigurationBuilder AddHeartbeatClient<TKey>(this AkkaConfigurationBuilder builder, string name, ClientSettings settings) =>
        builder.WithActors((system, registry, resolver) =>
            registry.Register<TKey>(system.ActorOf(HeartbeatClient.Props(name, settings, ClientServices(system, registry, resolver)), ActorName("client", name))));

    /// <summary>Starts one heartbeat client, registered under <see cref="HeartbeatClient"/>.</summary>
    public static AkkaConfigurationBuilder AddHeartbeatClient(this AkkaConfigurationBuilder builder, string name, ClientSettings settings) =>
        builder.AddHeartbeatClient<HeartbeatClient>(name, settings);

    /// <summary>Starts pool <paramref name="name"/> and registers it under <typeparamref name="TKey"/>.</summary>
    public static AkkaConfigurationBuilder AddHeartbeatPool<TKey>(this AkkaConfigurationBuilder builder, string name, PoolSettings settings) =>
        builder.WithActors((system, registry, resolver) =>
            registry.Register<TKey>(system.ActorOf(HeartbeatPool.Props(name, settings, ClientServices(system, registry, resolver)), ActorName("pool", name))));

    /// <summary>Starts one pool, registered under <see cref="HeartbeatPool"/>.</summary>
    public static AkkaConfigurationBuilder AddHeartbeatPool(this AkkaConfigurationBuilder builder, string name, PoolSettings settings) =>
        builder.AddHeartbeatPool<HeartbeatPool>(name, settings);

    private static ClientServices ClientServices(ActorSystem system, IActorRegistry registry, IDependencyResolver resolver) => new(
        registry.TryGet<ConnectionRegistry>(out var connections) ? connections : ActorRefs.Nobody,
        SupervisorMetrics.Of(system, resolver),
        Logger<HeartbeatClient>(resolver));

    internal static ILogger Logger<T>(IDependencyResolver resolver) =>
        resolver.GetService<ILoggerFactory>()?.CreateLogger<T>() ?? NullLogger<T>.Instance;

    private static string ActorName(string kind, string name) => $"{kind}-{Uri.EscapeDataString(name)}";
}
