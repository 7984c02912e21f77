using Akka;
using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Supervisor.Cluster;
using Supervisor.Configuration;
using Supervisor.Connections;
using Supervisor.Http;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Registry;

namespace Supervisor.Hosting;

/// <summary>Marker for the <see cref="TcpListenerActor"/>s in the actor registry (one key per listener name).</summary>
public sealed record ListenerKey(string Name);

/// <summary>
/// The service's wiring, one extension method per feature, composed by <see cref="AddSupervisor"/>.
/// Program.cs and the tests use the same methods.
/// </summary>
public static class SupervisorHosting
{
    public const string ActorSystemName = "supervisor";

    /// <summary>
    /// Registers the whole service: settings, the default connection handler (echo; register your own
    /// <see cref="ConnectionHandler"/> first to replace it), the <see cref="IConnectionHub"/>, and the actor system.
    /// </summary>
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
        services.AddAkka(ActorSystemName, (builder, provider) => builder.AddSupervisor(config, settings, listeners, provider));
        services.AddOperatorSurface(config, settings);
        return services;
    }

    public static AkkaConfigurationBuilder AddSupervisor(this AkkaConfigurationBuilder builder, Config config, SupervisorSettings settings,
        BoundListeners listeners, IServiceProvider provider) => builder
            .AddHocon(config, HoconAddMode.Prepend)
            .AddSetup(new AkkaLogBridge.Setup(provider.GetRequiredService<ILoggerFactory>()))
            .ConfigureLoggers(loggers =>
            {
                loggers.LogLevel = Akka.Event.LogLevel.InfoLevel;
                loggers.LogConfigOnStart = false;
                loggers.ClearLoggers();
                loggers.AddLogger<AkkaLogBridge>();
            })
            .AddClusterMembership(settings, provider.GetRequiredService<SupervisorMetrics>(), provider.GetRequiredService<ILoggerFactory>(),
                provider.GetRequiredService<NodeDowning>())
            .AddConnectionRegistry(settings, provider.GetRequiredService<SupervisorMetrics>().Traffic)
            .AddMonitor(settings.Monitor, provider.GetRequiredService<SupervisorMetrics>(), provider.GetRequiredService<ILoggerFactory>())
            .AddAlertmanagerSink(AlertmanagerSettings.Read(config), provider.GetRequiredService<ILoggerFactory>())
            .AddConnectionSupervisor(provider.GetRequiredService<ConnectionHandler>(), provider.GetRequiredService<SupervisorMetrics>(),
                provider.GetRequiredService<ILoggerFactory>(), settings.RegistryStatusRefresh, settings.Cluster.Enabled,
                provider.GetService<FileDescriptorBudget>(), provider.GetService<Transport.PendingFrameMemory>(),
                settings.Handler, provider.GetService<ConnectionHub>())
            .AddProbes(settings.Probes)
            .AddTcpListeners(listeners, provider.GetRequiredService<ILoggerFactory>(), provider.GetService<FileDescriptorBudget>(),
                provider.GetRequiredService<SupervisorMetrics>())
            .AddGracefulShutdown(settings)
            .AddLivenessBudgetLog(settings, provider.GetRequiredService<ILoggerFactory>());

    /// <summary>The registry: a subscriber to the connections' lifecycle events; its totals read <paramref name="traffic"/> for heartbeats and bytes.</summary>
    public static AkkaConfigurationBuilder AddConnectionRegistry(this AkkaConfigurationBuilder builder, SupervisorSettings settings,
        LiveTraffic? traffic = null) =>
        builder.WithActors((system, registry) =>
            registry.Register<ConnectionRegistry>(LifecyclePublisher.SubscribedFromStart(system, system.ActorOf(ConnectionRegistry.Props(settings.RegistryShards, traffic)
                .WithDispatcher(ConnectionDispatcher.Deploy(system).Dispatcher), "registry"))));

    public static AkkaConfigurationBuilder AddMonitor(this AkkaConfigurationBuilder builder, MonitorSettings settings, SupervisorMetrics metrics, ILoggerFactory loggers) =>
        builder.WithActors((system, registry) =>
        {
            var monitor = system.ActorOf(MonitorActor.Props(settings, metrics, loggers.CreateLogger<MonitorActor>()), "monitor");
            registry.Register<MonitorActor>(settings.Scope == AlertScopes.Node ? LifecyclePublisher.SubscribedFromStart(system, monitor) : monitor);
        });

    /// <summary>Alerts to a Prometheus Alertmanager when <c>monitor.sinks.alertmanager.url</c> is set; nothing otherwise.</summary>
    public static AkkaConfigurationBuilder AddAlertmanagerSink(this AkkaConfigurationBuilder builder, AlertmanagerSettings settings, ILoggerFactory loggers) =>
        settings.Url is null ? builder : builder.WithActors((system, _) =>
            system.ActorOf(AlertmanagerSink.Props(settings, loggers.CreateLogger<AlertmanagerSink>(), Environment.MachineName), "alertmanager-sink"));

    /// <summary>Logs, per listener, how long each layer takes to find a dead peer, and settings that bite.</summary>
    public static AkkaConfigurationBuilder AddLivenessBudgetLog(this AkkaConfigurationBuilder builder, SupervisorSettings settings, ILoggerFactory loggers) =>
        builder.AddStartup((_, _) =>
        {
            var log = loggers.CreateLogger<LivenessBudget>();
            foreach (var budget in settings.Listeners.Select(LivenessBudget.Of))
            {
                log.LogInformation("{Budget}", budget.Describe());
                foreach (var warning in budget.Warnings)
                    log.LogWarning("Listener {Listener}: {Warning}", budget.Listener, warning);
            }
        });

    /// <param name="clusterIds">Connection ids end in this node's <c>@host:port</c> (a cluster member), so they are unique cluster-wide.</param>
    /// <param name="descriptors">Told of every released socket (see <see cref="FileDescriptorBudget.Released"/>); null: none.</param>
    /// <param name="frameMemory">The budget every TCP and TLS connection's unfinished frames count against; null: none.</param>
    /// <param name="handlerSettings">The handler's bound on frames in flight and its timeout (<c>supervisor.handler</c>); null: the defaults.</param>
    /// <param name="hub">The hub the application observes opens and closes through; null: none.</param>
    public static AkkaConfigurationBuilder AddConnectionSupervisor(this AkkaConfigurationBuilder builder, ConnectionHandler handler,
        SupervisorMetrics metrics, ILoggerFactory loggers, TimeSpan? statusRefresh = null, bool clusterIds = false, FileDescriptorBudget? descriptors = null,
        Transport.PendingFrameMemory? frameMemory = null, HandlerSettings? handlerSettings = null, ConnectionHub? hub = null) =>
        builder.WithActors((system, registry) =>
        {
            var supervisor = system.ActorOf(
                ConnectionSupervisor.Props(new ConnectionServices(registry.Get<ConnectionRegistry>(), registry.Get<MonitorActor>(), handler,
                    metrics, loggers.CreateLogger<ConnectionActor>())
                {
                    StatusRefresh = statusRefresh ?? TimeSpan.FromSeconds(10),
                    HandlerSettings = handlerSettings ?? HandlerSettings.Default,
                    Hub = hub,
                    IdSuffix = clusterIds ? "@" + ClusterRegistry.NodeName(Akka.Cluster.Cluster.Get(system).SelfAddress) : "",
                    Descriptors = descriptors,
                    FrameMemory = frameMemory,
                }), "connections");
            hub?.Attach(supervisor);
            registry.Register<ConnectionSupervisor>(supervisor);
        });

    public static AkkaConfigurationBuilder AddTcpListeners(this AkkaConfigurationBuilder builder, BoundListeners listeners, ILoggerFactory loggers) =>
        builder.AddTcpListeners(listeners, loggers, descriptors: null, metrics: null);

    /// <param name="descriptors">The process's descriptor budget the listeners accept within; null: accept until accept fails.</param>
    /// <param name="metrics">Given the descriptor gauges of <paramref name="descriptors"/>; null: none.</param>
    internal static AkkaConfigurationBuilder AddTcpListeners(this AkkaConfigurationBuilder builder, BoundListeners listeners, ILoggerFactory loggers,
        FileDescriptorBudget? descriptors, SupervisorMetrics? metrics) =>
        builder.WithActors((system, registry) =>
        {
            if (descriptors is not null) metrics?.ObserveFileDescriptors(descriptors);
            var supervisor = registry.Get<ConnectionSupervisor>();
            var monitor = registry.TryGet<MonitorActor>(out var found) ? found : ActorRefs.Nobody;
            var log = loggers.CreateLogger<TcpListenerActor>();
            // The scheduler starts its timer thread on first use and blocks the caller until it runs;
            // let that happen here, once, not in the first connections' PreStart where it starved
            // the thread pool for seconds on a cold start.
            system.Scheduler.Advanced.ScheduleOnce(TimeSpan.FromMilliseconds(1), () => { });
            var actors = listeners.All
                .Select(b => system.ActorOf(TcpListenerActor.Props(b.Settings, b.Socket, supervisor, log, descriptors, monitor), $"listener-{b.Settings.Name}"))
                .ToArray();
            registry.Register<TcpListenerActor>(new ListenerGroup(actors).Ref(system));
        });

    /// <summary>
    /// SIGTERM (or any host stop) runs coordinated shutdown: listeners stop accepting first, then every
    /// connection is closed with <c>server-shutdown</c> and waited for.
    /// </summary>
    public static AkkaConfigurationBuilder AddGracefulShutdown(this AkkaConfigurationBuilder builder, SupervisorSettings settings) =>
        builder.AddStartup((system, registry) =>
        {
            var shutdown = CoordinatedShutdown.Get(system);
            var listeners = registry.Get<TcpListenerActor>();
            var supervisor = registry.Get<ConnectionSupervisor>();
            shutdown.AddTask(CoordinatedShutdown.PhaseServiceUnbind, "unbind-listeners", async () =>
            {
                await listeners.Ask<ListenerGroup.AllUnbound>(TcpListenerActor.Unbind.Instance, TimeSpan.FromSeconds(2));
                return Done.Instance;
            });
            shutdown.AddTask(CoordinatedShutdown.PhaseServiceRequestsDone, "close-connections", async () =>
            {
                await supervisor.Ask<ConnectionCommands.AllClosed>(new ConnectionCommands.CloseAll(CloseReason.ServerShutdown), settings.ShutdownCloseTimeout);
                return Done.Instance;
            });
            if (registry.TryGet<ClusterRegistry>(out var cluster))
            {
                // The other nodes hear of those closes before this node leaves, so they do not count them as lost.
                shutdown.AddTask(CoordinatedShutdown.PhaseBeforeClusterShutdown, "flush-cluster-ledger", async () =>
                {
                    await cluster.Ask<ClusterRegistry.Flushed>(ClusterRegistry.Flush.Instance, settings.Cluster.QueryTimeout);
                    return Done.Instance;
                });
            }
        });
}
