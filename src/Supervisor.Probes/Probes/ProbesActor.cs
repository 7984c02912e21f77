using Akka.Actor;
using Microsoft.Extensions.Logging;
using Supervisor.Messages.Protocol;

namespace Supervisor.Probes;

/// <summary>
/// Parent of every <see cref="ProbeActor"/> and the table <c>GET /api/probes</c> reads: it keeps the latest
/// status each probe reported and answers <see cref="ProbeProtocol.GetProbes"/> from it. A probe whose own
/// code fails is restarted (its check resources are released by PostStop first).
/// </summary>
internal sealed class ProbesActor : ReceiveActor
{
    /// <summary>A probe's latest status, sent by the probe after every check.</summary>
    public sealed record ProbeUpdated(ProbeProtocol.ProbeStatus Status);

    public static Props Props(IReadOnlyList<ProbeSettings> probes, ProbeServices services, Func<ProbeSettings, IProbeCheck>? checks = null) =>
        Akka.Actor.Props.Create(() => new ProbesActor(probes, services, checks));

    private readonly IReadOnlyList<ProbeSettings> _probes;
    private readonly ProbeServices _services;
    private readonly Func<ProbeSettings, IProbeCheck>? _checks;
    private readonly SortedDictionary<string, ProbeProtocol.ProbeStatus> _statuses = new(StringComparer.Ordinal);

    public ProbesActor(IReadOnlyList<ProbeSettings> probes, ProbeServices services, Func<ProbeSettings, IProbeCheck>? checks)
    {
        _probes = probes;
        _services = services;
        _checks = checks;
        Receive<ProbeUpdated>(updated => _statuses[updated.Status.Name] = updated.Status);
        Receive<ProbeProtocol.GetProbes>(_ => Sender.Tell(new ProbeProtocol.Probes(_statuses.Values.ToArray())));
    }

    protected override void PreStart()
    {
        foreach (var probe in _probes)
        {
            _statuses[probe.Name] = new ProbeProtocol.ProbeStatus(probe.Name, probe.KindName, probe.Endpoint, ProbeState.Unknown,
                null, 0, 0, null, null, null, 0, ProbeResult.NoDetails);
            Context.ActorOf(ProbeActor.Props(probe, _services, _checks), $"probe-{Uri.EscapeDataString(probe.Name)}");
        }
        if (_probes.Count > 0)
            _services.Log.LogInformation("Probing {Count} dependencies: {Probes}", _probes.Count,
                string.Join(", ", _probes.Select(p => $"{p.Name} ({p.KindName} {p.Endpoint} every {Configuration.Durations.ToHocon(p.Interval)}, rise {p.Rise}, fall {p.Fall})")));
    }

    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(cause =>
    {
        _services.Log.LogError(cause, "Probe {Probe} failed and is restarted", Sender.Path.Name);
        return Directive.Restart;
    });
}
