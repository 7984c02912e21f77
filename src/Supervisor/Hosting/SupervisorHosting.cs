using Akka;
using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Akka.DependencyInjection;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Supervisor.Configuration;
using Supervisor.Connections;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Registry;

namespace Supervisor.Hosting;

/// <summary>Marker for the <see cref="TcpListenerActor"/>s in the actor registry (one key per listener name).</summary>
internal sealed record ListenerKey(string Name);

/// <summary>
/// Embedding: <see cref="WithConnectionSupervisor(AkkaConfigurationBuilder, Action{ConnectionSupervisorOptions})"/> on the
/// caller's own <see cref="AkkaConfigurationBuilder"/>, in its own actor system, with its loggers and DI. The service
/// executable makes the same call. The feature packages (operator surface, cluster, probes) add themselves beside it.
/// </summary>
public static class SupervisorHosting
{
    /// <summary>
    /// Supervises connections in this actor system: binds the listeners of <c>supervisor.tcp</c> and
    /// <c>supervisor.listeners</c>, and starts the registry, the monitor and one actor per connection.
    /// Options from code are layered over <see cref="ConnectionSupervisorOptions.Hocon"/>, over the profile, over the
    /// shipped defaults (hocon/supervisor.conf documents every key). A bad key or value throws
    /// <see cref="Configuration.ConfigurationError"/> here, before the host starts.
    /// </summary>
    /// <remarks>
    /// The embedder may ask its container for <c>IRequiredActor&lt;SupervisorActors.Registry&gt;</c> (connection stats and
    /// lists, <see cref="RegistryProtocol"/>), <c>IRequiredActor&lt;SupervisorActors.Monitor&gt;</c> (alerts,
    /// <see cref="MonitorProtocol"/>) and <c>IRequiredActor&lt;SupervisorActors.Connections&gt;</c> (close a connection,
    /// <see cref="ConnectionCommands"/>). The connection handler is, in order: <see cref="ConnectionSupervisorOptions.Handler"/>,
    /// a <see cref="ConnectionHandler"/> in the container, the echo handler; an <see cref="IConnectionHub"/> in the container
    /// (the service registers one) is attached, to push to connections by id. Akka's loggers are left as the caller set them.
    /// </remarks>
    public static AkkaConfigurationBuilder WithConnectionSupervisor(this AkkaConfigurationBuilder builder, Action<ConnectionSupervisorOptions> configure)
    {
        var options = new ConnectionSupervisorOptions();
        configure(options);
        return builder.WithConnectionSupervisor(options);
    }

    /// <summary>
    /// As <see cref="WithConnectionSupervisor(AkkaConfigurationBuilder, Action{ConnectionSupervisorOptions})"/>, with an options
    /// object the caller keeps: the same object given to a feature package (the operator surface's
    /// <c>AddConnectionSupervisorOperator</c>) describes the same supervisor.
    /// </summary>
    public static AkkaConfigurationBuilder WithConnectionSupervisor(this AkkaConfigurationBuilder builder, ConnectionSupervisorOptions options)
    {
        var config = options.Build();
        return builder.WithConnectionSupervisor(config, SupervisorConfig.Read(config), listeners: null, options.Handler);
    }

    /// <summary>
    /// As <see cref="WithConnectionSupervisor(AkkaConfigurationBuilder, Action{ConnectionSupervisorOptions})"/>, with every
    /// option from HOCON (<c>supervisor { ... }</c>, layered over the profile it names and the shipped defaults).
    /// </summary>
    public static AkkaConfigurationBuilder WithConnectionSupervisor(this AkkaConfigurationBuilder builder, Config hocon) =>
        builder.WithConnectionSupervisor(options => options.Config = hocon);

    /// <summary>The service's form: the configuration already read, the listeners already bound (a taken port is reported before start).</summary>
    /// <param name="listeners">Bound listeners; null: bound when the actor system starts (a taken port fails the start).</param>
    internal static AkkaConfigurationBuilder WithConnectionSupervisor(this AkkaConfigurationBuilder builder, Config config, SupervisorSettings settings,
        BoundListeners? listeners, ConnectionHandler? handler = null) => builder
            .AddHocon(config, HoconAddMode.Append)
            .WithActors((system, registry, resolver) =>
            {
                // What the host may have put in its container, else this actor system's own.
                var loggers = resolver.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance;
                var metrics = SupervisorMetrics.Of(system, resolver);
                var connectionHandler = handler ?? resolver.GetService<ConnectionHandler>() ?? new EchoHandler();
                // The host's hub when it registered one (the service does, for DI), else one of this actor system's own;
                // either way reachable as system.ConnectionHub().
                var hub = ConnectionHubs.Bind(system, resolver.GetService<ConnectionHub>() ?? new ConnectionHub());
                var descriptors = resolver.GetService<FileDescriptorBudget>() ?? FileDescriptorBudget.ForThisProcess();
                var frameMemory = resolver.GetService<Transport.PendingFrameMemory>() ?? new Transport.PendingFrameMemory(settings.PendingFrameMemory);
                // Bound by the service before the host starts, or by a feature that needs them first (the operator
                // surface's diagnostics), else here.
                var bound = listeners ?? resolver.GetService<BoundListeners>() ?? OwnedBySystem(system, BoundListeners.Bind(settings));
                var features = system.Settings.Setup.Get<SupervisorFeatures>().GetOrElse(SupervisorFeatures.None);

                Transport.HeapSettle.Process.Configure(settings.HeapSettleQuiet, loggers.CreateLogger<ConnectionSupervisor>());
                StartConnectionRegistry(system, registry, settings, metrics.Traffic);
                StartMonitor(system, registry, settings.Monitor, metrics, loggers);
                StartAlertmanagerSink(system, AlertmanagerSettings.Read(config), loggers);
                StartConnectionSupervisor(system, registry, connectionHandler, settings.Handler, hub, metrics, loggers, settings.RegistryStatusRefresh,
                    features.ConnectionIdSuffix?.Invoke(system) ?? "", descriptors, frameMemory, settings.EpollLoops);
                StartTcpListeners(system, registry, bound, loggers, descriptors, metrics);
                registry.Register<SupervisorActors.Registry>(registry.Get<ConnectionRegistry>());
                registry.Register<SupervisorActors.Monitor>(registry.Get<MonitorActor>());
                registry.Register<SupervisorActors.Connections>(registry.Get<ConnectionSupervisor>());
            })
            .AddGracefulShutdown(settings)
            .AddLivenessBudgetLog(settings);

    /// <summary>Disposed when the actor system terminates: what the embed call created for itself, not the host's.</summary>
    private static T OwnedBySystem<T>(ActorSystem system, T owned) where T : IDisposable
    {
        system.RegisterOnTermination(owned.Dispose);
        return owned;
    }

    /// <summary>
    /// The service's logging of Akka: through the host's <see cref="ILoggerFactory"/> (<see cref="AkkaLogBridge"/>), at Info.
    /// An embedder keeps its own Akka logger configuration; the service executable asks for this one.
    /// </summary>
    internal static AkkaConfigurationBuilder WithSupervisorLogging(this AkkaConfigurationBuilder builder, ILoggerFactory loggerFactory) => builder
        .AddSetup(new AkkaLogBridge.Setup(loggerFactory))
        .ConfigureLoggers(loggers =>
        {
            loggers.LogLevel = Akka.Event.LogLevel.InfoLevel;
            loggers.LogConfigOnStart = false;
            loggers.ClearLoggers();
            loggers.AddLogger<AkkaLogBridge>();
        });

    /// <summary>The registry: a subscriber to the connections' lifecycle events; its totals read <paramref name="traffic"/> for heartbeats and bytes.</summary>
    private static void StartConnectionRegistry(ActorSystem system, IActorRegistry registry, SupervisorSettings settings, LiveTraffic traffic) =>
        registry.Register<ConnectionRegistry>(LifecyclePublisher.SubscribedFromStart(system, system.ActorOf(ConnectionRegistry.Props(settings.RegistryShards, traffic)
            .WithDispatcher(ConnectionDispatcher.Deploy(system).Dispatcher), "registry")));

    private static void StartMonitor(ActorSystem system, IActorRegistry registry, MonitorSettings settings, SupervisorMetrics metrics, ILoggerFactory loggers)
    {
        var monitor = system.ActorOf(MonitorActor.Props(settings, metrics, loggers.CreateLogger<MonitorActor>()), "monitor");
        registry.Register<MonitorActor>(settings.Scope == AlertScopes.Node ? LifecyclePublisher.SubscribedFromStart(system, monitor) : monitor);
    }

    /// <summary>Alerts to a Prometheus Alertmanager when <c>monitor.sinks.alertmanager.url</c> is set; nothing otherwise.</summary>
    private static void StartAlertmanagerSink(ActorSystem system, AlertmanagerSettings settings, ILoggerFactory loggers)
    {
        if (settings.Url is not null)
            system.ActorOf(AlertmanagerSink.Props(settings, loggers.CreateLogger<AlertmanagerSink>(), Environment.MachineName), "alertmanager-sink");
    }

    /// <summary>Logs, per listener, the transport its connections run on (tcp.transport), how long each layer takes to find a dead peer, and settings that bite.</summary>
    private static AkkaConfigurationBuilder AddLivenessBudgetLog(this AkkaConfigurationBuilder builder, SupervisorSettings settings) =>
        builder.WithActors((_, _, resolver) =>
        {
            var log = (resolver.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger<LivenessBudget>();
            foreach (var listener in settings.Listeners)
                log.LogInformation("{Transport}", Transport.TcpTransports.Describe(listener, settings.EpollLoops));
            foreach (var budget in settings.Listeners.Select(LivenessBudget.Of))
            {
                log.LogInformation("{Budget}", budget.Describe());
                foreach (var warning in budget.Warnings)
                    log.LogWarning("Listener {Listener}: {Warning}", budget.Listener, warning);
            }
        });

    /// <param name="idSuffix">Appended to connection ids: this node's <c>@host:port</c> in a cluster, so they are unique cluster-wide.</param>
    /// <param name="descriptors">Told of every released socket (see <see cref="FileDescriptorBudget.Released"/>); null: none.</param>
    /// <param name="frameMemory">The budget every TCP and TLS connection's unfinished frames count against; null: none.</param>
    /// <param name="handlerSettings">The handler's bound on frames in flight and its timeout (<c>supervisor.handler</c>).</param>
    /// <param name="hub">The hub the application pushes to connections and observes them through; null: none.</param>
    private static void StartConnectionSupervisor(ActorSystem system, IActorRegistry registry, ConnectionHandler handler, HandlerSettings handlerSettings,
        ConnectionHub? hub, SupervisorMetrics metrics, ILoggerFactory loggers, TimeSpan statusRefresh, string idSuffix, FileDescriptorBudget? descriptors,
        Transport.PendingFrameMemory? frameMemory, int epollLoops)
    {
        var supervisor = system.ActorOf(
            ConnectionSupervisor.Props(new ConnectionServices(registry.Get<ConnectionRegistry>(), registry.Get<MonitorActor>(), handler,
                metrics, loggers.CreateLogger<ConnectionActor>())
            {
                StatusRefresh = statusRefresh,
                HandlerSettings = handlerSettings,
                Hub = hub,
                IdSuffix = idSuffix,
                Descriptors = descriptors,
                FrameMemory = frameMemory,
                EpollLoops = epollLoops,
            }), "connections");
        hub?.Attach(supervisor);
        registry.Register<ConnectionSupervisor>(supervisor);
    }

    /// <param name="descriptors">The process's descriptor budget the listeners accept within; null: accept until accept fails.</param>
    /// <param name="metrics">Given the descriptor gauges of <paramref name="descriptors"/>; null: none.</param>
    private static void StartTcpListeners(ActorSystem system, IActorRegistry registry, BoundListeners listeners, ILoggerFactory loggers,
        FileDescriptorBudget? descriptors, SupervisorMetrics? metrics)
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
    }

    /// <summary>
    /// SIGTERM (or any host stop) runs coordinated shutdown: listeners stop accepting first, then every
    /// connection is closed with <c>server-shutdown</c> and waited for.
    /// </summary>
    private static AkkaConfigurationBuilder AddGracefulShutdown(this AkkaConfigurationBuilder builder, SupervisorSettings settings) =>
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
                await supervisor.Ask<ConnectionCommands.AllClosed>(new ConnectionCommands.CloseAll(CloseReason.ServerShutdown) { ReconnectSpread = settings.ReconnectHintSpread },
                    settings.ShutdownCloseTimeout);
                return Done.Instance;
            });
        });
}

/// <summary>
/// What feature packages add to the connection supervisor through the actor system's setup
/// (<c>AkkaConfigurationBuilder.AddSetup</c>), so that the core needs no reference to them.
/// </summary>
internal sealed class SupervisorFeatures : Akka.Actor.Setup.Setup
{
    public static readonly SupervisorFeatures None = new();

    /// <summary>Appended to every connection id once the system runs (the cluster: this node's <c>@host:port</c>); null: nothing.</summary>
    public Func<ActorSystem, string>? ConnectionIdSuffix { get; init; }
}
