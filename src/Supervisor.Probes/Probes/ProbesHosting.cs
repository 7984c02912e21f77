using Akka.Actor;
using Akka.Hosting;
using Supervisor.Hosting;
using Supervisor.Monitoring;

namespace Supervisor.Probes;

/// <summary>Akka.Hosting wiring of the dependency probes (<c>supervisor.probes</c>).</summary>
internal static class ProbesHosting
{
    /// <summary>
    /// Starts the probes (none is fine) under one <see cref="ProbesActor"/>, registered under that type. They report to the
    /// connection supervisor's monitor when it is registered before them, and to its meter (SupervisorMetrics, from the container).
    /// </summary>
    internal static AkkaConfigurationBuilder AddProbes(this AkkaConfigurationBuilder builder, IReadOnlyList<ProbeSettings> probes) =>
        builder.WithActors((system, registry, resolver) =>
        {
            var monitor = registry.TryGet<MonitorActor>(out var found) ? found : ActorRefs.Nobody;
            var services = new ProbeServices(monitor, OutboundHosting.Metrics(resolver), OutboundHosting.Logger<ProbeActor>(resolver));
            var actor = system.ActorOf(ProbesActor.Props(probes, services), "probes");
            registry.Register<ProbesActor>(actor);
            registry.Register<ProbeReports>(actor); // where the operator surface asks

        });
}
