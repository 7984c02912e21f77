using Akka.Actor;
using Akka.Hosting;
using Supervisor.Hosting;
using Supervisor.Monitoring;

namespace Supervisor.Probes;

/// <summary>Akka.Hosting wiring of the dependency probes (<c>supervisor.probes</c>).</summary>
public static class ProbesHosting
{
    /// <summary>
    /// Probes the dependencies that <c>supervisor.probes</c> in <paramref name="options"/> lists (Redis PING, TCP connect,
    /// HTTP GET; rise and fall as HAProxy's checks): their state on <c>/api/probes</c>, the dashboard and the meter, a
    /// <c>probe-down</c> alert while one is down. Call it after <c>WithConnectionSupervisor</c> with the same options, so the
    /// probes report to its monitor. Throws <see cref="Configuration.ConfigurationError"/> for a key or value it refuses.
    /// </summary>
    public static AkkaConfigurationBuilder WithConnectionSupervisorProbes(this AkkaConfigurationBuilder builder, ConnectionSupervisorOptions options) =>
        builder.AddProbes(Configuration.SupervisorConfig.Read(options.Build()).Probes);

    /// <summary>
    /// Starts the probes (none is fine) under one <see cref="ProbesActor"/>, registered under that type. They report to the
    /// connection supervisor's monitor when it is registered before them, and to its meter (SupervisorMetrics, from the container).
    /// </summary>
    internal static AkkaConfigurationBuilder AddProbes(this AkkaConfigurationBuilder builder, IReadOnlyList<ProbeSettings> probes) =>
        builder.WithActors((system, registry, resolver) =>
        {
            var monitor = registry.TryGet<MonitorActor>(out var found) ? found : ActorRefs.Nobody;
            var services = new ProbeServices(monitor, SupervisorMetrics.Of(system, resolver), OutboundHosting.Logger<ProbeActor>(resolver));
            var actor = system.ActorOf(ProbesActor.Props(probes, services), "probes");
            registry.Register<ProbesActor>(actor);
            registry.Register<ProbeReports>(actor); // where the operator surface asks
        });
}
