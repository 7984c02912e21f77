using Akka.Actor;
using Akka.Streams;
using Microsoft.Extensions.Logging;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Monitoring;

/// <summary>
/// Counters over sliding windows and threshold rules with hysteresis: an alert is raised once when its
/// rule crosses <c>raise-above</c>, resolved once when it falls to <c>clear-below</c>, and never raised
/// again while active; while it stands, its value follows the rule (and its peak the highest value), so an
/// alert raised at 51 closes says 100 when 100 have closed. A burst of timeouts across most connections becomes one <c>mass-disconnect</c>;
/// the monitor's own timer lateness becomes <c>server-starved</c>.
/// </summary>
internal sealed class MonitorActor : ReceiveActor, IWithTimers
{
    public const string MassDisconnectRule = "mass-disconnect";
    public const string ServerStarvedRule = "server-starved";
    public const string FileDescriptorsExhaustedRule = "fd-exhausted";

    /// <summary>The rule of the alert a down probe raises: <c>probe-down:NAME</c>.</summary>
    public static string ProbeDownRule(string probe) => $"probe-down:{probe}";

    /// <summary>The rule of the alert the cluster monitor raises for a lost node: <c>node-down:HOST:PORT</c>.</summary>
    public static string NodeDownRule(string node) => $"node-down:{node}";

    /// <param name="metrics">The meter whose active-alerts gauge this monitor sets; null for the cluster monitor, whose alerts are not one node's.</param>
    public static Props Props(MonitorSettings settings, SupervisorMetrics? metrics, ILogger log) =>
        Akka.Actor.Props.Create(() => new MonitorActor(settings, metrics, log));

    private sealed class Evaluate : INotInfluenceReceiveTimeout
    {
        public static readonly Evaluate Instance = new();
    }

    private sealed class StarvationProbe : INotInfluenceReceiveTimeout
    {
        public static readonly StarvationProbe Instance = new();
    }

    private readonly MonitorSettings _settings;
    private readonly SupervisorMetrics? _metrics;
    private readonly ILogger _log;
    private readonly SlidingCounts _counts = new();
    private readonly Queue<(DateTimeOffset At, double Ms)> _rtt = new();
    private readonly TimeSpan _rttRetention;
    private readonly Dictionary<string, Alert> _active = [];
    // Active alerts whose value moved since the last evaluation tick, published then as AlertUpdated (at most once a tick).
    private readonly HashSet<string> _moved = [];
    private readonly Dictionary<string, DateTimeOffset> _aboveSince = [];
    private readonly LinkedList<Alert> _history = new();
    private readonly Dictionary<string, long> _closedByReason = [];
    private long _activeConnections, _accepted, _refused, _missed, _alertSequence;
    private readonly Dictionary<string, DateTimeOffset> _lastMissBy = [];
    // The misses in the order they came, so the window's stale ones are dropped from the front, not found by a scan of
    // every connection that missed on every event (which made each event cost O(connections) during an outage).
    private readonly Queue<(DateTimeOffset At, string ConnectionId)> _missOrder = new();
    private readonly TimeSpan _deadPeerRuleWindow;
    private readonly AlertRule[] _incidentFirst;
    private DateTimeOffset _quietUntil = DateTimeOffset.MinValue;
    private DateTimeOffset _probeDue;
    private TimeSpan _gcPausesSeen = GC.GetTotalPauseDuration();
    private DateTimeOffset _lastStallAt = DateTimeOffset.MinValue;
    // Until then, missed heartbeats and timeouts are not evidence of a mass disconnect: the server is still
    // catching up on what it could not read while it stalled.
    private DateTimeOffset _stallShadowUntil = DateTimeOffset.MinValue;
    private const string MassDisconnectTimeouts = "mass-disconnect.timeouts";
    private TimeSpan _lastStall;
    private WebhookSink? _webhook;

    public ITimerScheduler Timers { get; set; } = null!;

    public MonitorActor(MonitorSettings settings, SupervisorMetrics? metrics, ILogger log)
    {
        _settings = settings;
        _metrics = metrics;
        _log = log;
        foreach (var rule in settings.Rules.Where(r => !MonitorMetrics.IsGauge(r.Metric)))
            _counts.Retain(rule.Metric, rule.Window);
        _deadPeerRuleWindow = settings.Rules.Where(r => MonitorMetrics.CountsDeadPeers(r.Metric)).Select(r => r.Window).DefaultIfEmpty(TimeSpan.Zero).Max();
        _incidentFirst = settings.Rules.OrderBy(r => MonitorMetrics.IsIncident(r.Metric) ? 0 : 1).ToArray();
        _rttRetention = settings.Rules.Where(r => r.Metric == MonitorMetrics.RttP99).Select(r => r.Window).DefaultIfEmpty(TimeSpan.Zero).Max();
        if (settings.MassDisconnect.Enabled)
        {
            _counts.Retain(MassDisconnectTimeouts, settings.MassDisconnect.Window);
            // The mass disconnect's message says what the kernel saw of its closes (path-dead, peer-hung).
            _counts.Retain(MonitorMetrics.ClosedBy(SilenceCause.PathDead), settings.MassDisconnect.Window);
            _counts.Retain(MonitorMetrics.ClosedBy(SilenceCause.PeerHung), settings.MassDisconnect.Window);
        }

        // This node's connections, from their one lifecycle stream (DESIGN §3, "One lifecycle"): inbound ones only, as /api/stats counts them.
        Receive<ConnectionLifecycle.Opened>(opened =>
        {
            if (opened.Direction != ConnectionDirection.Inbound) return;
            _activeConnections++;
            _accepted++;
            _counts.Add(MonitorMetrics.Accepted, Now);
            EvaluateRules(Now);
        });
        Receive<ConnectionLifecycle.Closed>(closed =>
        {
            if (closed.Direction != ConnectionDirection.Inbound) return;
            _activeConnections--;
            // A peer that missed heartbeats and then left for another reason is no longer part of an outage.
            if (closed.Reason is not (CloseReason.HeartbeatTimeout or CloseReason.KeepaliveFailed))
                _lastMissBy.Remove(closed.ConnectionId);
            CountClose(closed.Reason);
            if (closed.Reason == CloseReason.HeartbeatTimeout && closed.Cause is { } cause)
                _counts.Add(MonitorMetrics.ClosedBy(cause), Now);
            EvaluateRules(Now);
        });
        Receive<ConnectionLifecycle.Refused>(refused =>
        {
            _accepted++;
            _refused++;
            _counts.Add(MonitorMetrics.Accepted, Now);
            CountClose(refused.Reason);
            EvaluateRules(Now);
        });
        Receive<IConnectionLifecycleEvent>(_ => { }); // state changes and releases count nothing here
        Receive<MonitorEvents.HeartbeatMissed>(missed =>
        {
            _missed++;
            if (_settings.MassDisconnect.Enabled && !InStallShadow(Now))
            {
                _lastMissBy[missed.ConnectionId] = Now;
                _missOrder.Enqueue((Now, missed.ConnectionId));
            }
            _counts.Add(MonitorMetrics.Missed, Now);
            EvaluateRules(Now);
        });
        Receive<MonitorEvents.RttSampled>(sample =>
        {
            if (_rttRetention > TimeSpan.Zero) _rtt.Enqueue((Now, sample.Milliseconds));
        });
        Receive<MonitorEvents.ConnectionsCounted>(counted =>
        {
            var now = Now;
            _accepted += counted.Opened;
            _refused += counted.Refused;
            _activeConnections += counted.Opened;
            for (var i = 0; i < counted.Opened; i++) _counts.Add(MonitorMetrics.Accepted, now);
            foreach (var (reason, count) in counted.Closed)
            {
                _activeConnections -= count;
                for (var i = 0; i < count; i++) CountClose(reason);
            }
            EvaluateRules(now);
        });
        Receive<MonitorEvents.BooksAdopted>(adopted =>
        {
            var books = adopted.Books;
            _activeConnections += books.Active;
            _accepted += books.Accepted;
            _refused += books.Refused;
            foreach (var (name, count) in books.ClosedByReason)
                if (count > 0) _closedByReason[name] = _closedByReason.GetValueOrDefault(name) + count;
        });
        Receive<MonitorEvents.NodeDown>(down =>
        {
            _activeConnections -= down.Lost;
            for (var i = 0; i < down.Lost; i++) CountClose(CloseReason.NodeDown);
            var rule = NodeDownRule(down.Node);
            if (!_active.ContainsKey(rule))
                Raise(rule, AlertSeverity.Critical, down.Lost, 0, Now,
                    $"node {down.Node} was lost (marked down by the split-brain resolver); its {down.Lost} connections are reported closed with node-down");
            EvaluateRules(Now);
        });
        Receive<MonitorEvents.NodeUp>(up => Resolve(NodeDownRule(up.Node), 0, Now));
        Receive<MonitorEvents.StallForgiven>(stall => ObserveStall(stall.Stall, Now));
        Receive<MonitorEvents.ProbeStateChanged>(OnProbeStateChanged);
        Receive<MonitorEvents.FileDescriptorsExhausted>(exhausted =>
        {
            if (!_active.ContainsKey(FileDescriptorsExhaustedRule))
                Raise(FileDescriptorsExhaustedRule, AlertSeverity.Critical, exhausted.Open, exhausted.Ceiling, Now, exhausted.Detail);
        });
        Receive<MonitorEvents.FileDescriptorsRecovered>(recovered => Resolve(FileDescriptorsExhaustedRule, recovered.Open, Now));
        Receive<Evaluate>(_ =>
        {
            EvaluateRules(Now);
            PublishMoved();
        });
        Receive<StarvationProbe>(_ => OnStarvationProbe());
        Receive<MonitorProtocol.GetAlerts>(_ => Sender.Tell(new MonitorProtocol.Alerts(
            _active.Values.OrderBy(a => a.RaisedAt).ToArray(), _history.ToArray())));
        Receive<MonitorProtocol.GetCounters>(_ => Sender.Tell(Counters(Now)));
        Receive<MonitorProtocol.FlushSinks>(flush =>
            (_webhook?.FlushAsync(flush.Timeout) ?? Task.FromResult(true))
                .PipeTo(Sender, success: delivered => new MonitorProtocol.SinksFlushed(delivered)));
    }

    private DateTimeOffset Now => Context.System.Scheduler.Now;

    protected override void PreStart()
    {
        // A node's monitor counts the node's own connections; the cluster monitor's rules hear the nodes' totals instead.
        if (_settings.Scope == AlertScopes.Node)
            Context.System.EventStream.Subscribe(Self, typeof(IConnectionLifecycleEvent));
        Timers.StartPeriodicTimer("evaluate", Evaluate.Instance, _settings.EvaluationInterval);
        if (_settings.WatchStarvation)
        {
            _probeDue = Now + _settings.Starvation.ProbeInterval;
            Timers.StartSingleTimer("starvation", StarvationProbe.Instance, _settings.Starvation.ProbeInterval);
        }
        if (_settings.Webhook.Url is not null)
            _webhook = new WebhookSink(_settings.Webhook, Context.Materializer(), _log);
    }

    protected override void PostStop()
    {
        Context.System.EventStream.Unsubscribe(Self);
        _webhook?.Dispose();
    }

    private void CountClose(CloseReason reason)
    {
        var name = reason.ToWireName();
        _closedByReason[name] = _closedByReason.GetValueOrDefault(name) + 1;
        _counts.Add(MonitorMetrics.Closed, Now);
        _counts.Add(MonitorMetrics.ClosedBy(reason), Now);
        if (_settings.MassDisconnect.Enabled && reason is CloseReason.HeartbeatTimeout or CloseReason.KeepaliveFailed && !InStallShadow(Now))
            _counts.Add(MassDisconnectTimeouts, Now);
    }

    /// <summary>
    /// Whether the server is still catching up on a stall. The monitor's own lateness probe is consulted
    /// on every event, not only when its tick is handled: after a stall, the events the stall caused are
    /// queued ahead of that tick, and must not be counted before the monitor knows it stalled.
    /// </summary>
    private bool InStallShadow(DateTimeOffset now)
    {
        if (_settings.WatchStarvation && now - _probeDue >= _settings.Starvation.RaiseAbove)
            ObserveStall(now - _probeDue, now);
        return now < _stallShadowUntil;
    }

    private void OnStarvationProbe()
    {
        var now = Now;
        // One single timer re-armed each time: a periodic one would hand a stalled actor a burst of stale ticks.
        var lateness = now - _probeDue;
        // A long stop-the-world GC is a stall even when the probe's own timer happened to be on time.
        if (_settings.CountGcPauses)
        {
            var gcPauses = GC.GetTotalPauseDuration();
            var gcStall = gcPauses - _gcPausesSeen;
            _gcPausesSeen = gcPauses;
            if (gcStall > lateness) lateness = gcStall;
        }
        if (lateness >= _settings.Starvation.RaiseAbove) ObserveStall(lateness, now);
        else if (_active.ContainsKey(ServerStarvedRule) && now - _lastStallAt >= _settings.Starvation.ClearAfter)
            Resolve(ServerStarvedRule, _lastStall.TotalMilliseconds, now);
        _probeDue = now + _settings.Starvation.ProbeInterval;
        Timers.StartSingleTimer("starvation", StarvationProbe.Instance, _settings.Starvation.ProbeInterval);
    }

    private void ObserveStall(TimeSpan stall, DateTimeOffset now)
    {
        if (stall < _settings.Starvation.RaiseAbove) return;
        _lastStallAt = now;
        _lastStall = stall;
        // Deadlines that fell due in the stall are judged once the backlog is read (starvation-threshold
        // later, about as long): events until then are the stall's, not the network's.
        var shadow = now + _settings.Starvation.RaiseAbove + _settings.Starvation.RaiseAbove;
        if (shadow > _stallShadowUntil) _stallShadowUntil = shadow;
        if (!_active.ContainsKey(ServerStarvedRule))
            Raise(ServerStarvedRule, AlertSeverity.Critical, stall.TotalMilliseconds, _settings.Starvation.RaiseAbove.TotalMilliseconds, now, StallMessage(stall));
        else
            Track(ServerStarvedRule, stall.TotalMilliseconds, StallMessage(stall));
    }

    private string StallMessage(TimeSpan stall) =>
        $"the server stalled for {stall.TotalMilliseconds:F0} ms{(_settings.CountGcPauses ? $" (GC pauses so far {GC.GetTotalPauseDuration().TotalMilliseconds:F0} ms)" : "")}; heartbeat deadlines were extended by the stall instead of closing peers";

    private void OnProbeStateChanged(MonitorEvents.ProbeStateChanged changed)
    {
        var rule = ProbeDownRule(changed.Probe);
        if (changed.Up)
            Resolve(rule, 0, Now);
        else if (!_active.ContainsKey(rule))
            Raise(rule, AlertSeverity.Critical, changed.ConsecutiveFailures, changed.Fall, Now, $"probe {changed.Probe} is down: {changed.Detail}");
    }

    private void EvaluateRules(DateTimeOffset now)
    {
        // While a mass disconnect or an incident by cause (many path-dead or many peer-hung closes) stands, and until
        // the dead-peer rules' windows have forgotten its events, it is the one incident for them all. The incident
        // rules go first, so that the closes that raise one do not first raise a dead-peer rule.
        var massActive = EvaluateMassDisconnect(now) || now < _quietUntil;
        foreach (var rule in _incidentFirst)
        {
            massActive |= _active.ContainsKey(rule.Name) && MonitorMetrics.IsIncident(rule.Metric);
            var value = Value(rule, now);
            if (_active.ContainsKey(rule.Name))
            {
                if (value <= rule.ClearBelow)
                {
                    Resolve(rule.Name, value, now);
                    // Its closes stay in the dead-peer rules' windows a while: they are still this incident's.
                    if (MonitorMetrics.IsIncident(rule.Metric) && now + _deadPeerRuleWindow > _quietUntil) _quietUntil = now + _deadPeerRuleWindow;
                }
                else Track(rule.Name, value, RuleMessage(rule, value));
                continue;
            }
            if (value <= rule.RaiseAbove || (massActive && MonitorMetrics.CountsDeadPeers(rule.Metric)))
            {
                _aboveSince.Remove(rule.Name);
                continue;
            }
            if (!_aboveSince.TryGetValue(rule.Name, out var since))
                _aboveSince[rule.Name] = since = now;
            if (now - since >= rule.For)
            {
                _aboveSince.Remove(rule.Name);
                Raise(rule.Name, rule.Severity, value, rule.RaiseAbove, now, RuleMessage(rule, value));
                massActive |= MonitorMetrics.IsIncident(rule.Metric);
            }
        }
    }

    private static string RuleMessage(AlertRule rule, double value) =>
        $"{rule.Metric} is {value:0.##} (above {rule.RaiseAbove:0.##}{(MonitorMetrics.IsGauge(rule.Metric) ? "" : $" in {rule.Window.TotalSeconds:0.#} s")})";

    private bool EvaluateMassDisconnect(DateTimeOffset now)
    {
        var mass = _settings.MassDisconnect;
        if (!mass.Enabled) return false;
        var timeouts = _counts.Count(MassDisconnectTimeouts, mass.Window, now);
        // Peers that went quiet show up as missed heartbeats long before they time out: counting the
        // distinct connections that missed one lets the incident open before the per-peer rules fire.
        var horizon = now - mass.Window;
        while (_missOrder.TryPeek(out var oldest) && oldest.At <= horizon)
        {
            _missOrder.Dequeue();
            // A later miss of the same connection keeps it (its own entry is further back in the queue).
            if (_lastMissBy.TryGetValue(oldest.ConnectionId, out var last) && last <= horizon)
                _lastMissBy.Remove(oldest.ConnectionId);
        }
        // The population the window started with: those still here plus those it took.
        var population = _activeConnections + timeouts;
        var affected = Math.Max(timeouts, Math.Min(_lastMissBy.Count, population));
        var share = population == 0 ? 0 : (double)affected / population;
        var message = $"{affected} of {population} connections went silent within {mass.Window.TotalSeconds:0.#} s ({timeouts} timed out so far); {MassDisconnectCause(mass.Window, now)}";
        if (_active.ContainsKey(MassDisconnectRule))
        {
            if (share <= mass.Fraction / 2)
            {
                Resolve(MassDisconnectRule, share, now);
                _quietUntil = now + _deadPeerRuleWindow;
            }
            else
            {
                Track(MassDisconnectRule, share, message);
            }
            return _active.ContainsKey(MassDisconnectRule);
        }
        if (population >= mass.MinConnections && share > mass.Fraction)
        {
            Raise(MassDisconnectRule, mass.Severity, share, mass.Fraction, now, message);
            return true;
        }
        return false;
    }

    /// <summary>What the kernel said of the mass disconnect's closes so far (TCP_INFO, DESIGN §3 "Cause of death"), or the guess without it.</summary>
    private string MassDisconnectCause(TimeSpan window, DateTimeOffset now)
    {
        var pathDead = _counts.Count(MonitorMetrics.ClosedBy(SilenceCause.PathDead), window, now);
        var peerHung = _counts.Count(MonitorMetrics.ClosedBy(SilenceCause.PeerHung), window, now);
        if (pathDead == 0 && peerHung == 0) return "a network segment or the server may be down";
        var verdict = pathDead >= 2 * peerHung ? "a network incident"
            : peerHung >= 2 * pathDead ? "an application incident (the peers' TCP still acknowledges)"
            : "both network and application";
        return $"{pathDead} closed path-dead, {peerHung} peer-hung: {verdict}";
    }

    private double Value(AlertRule rule, DateTimeOffset now) => rule.Metric switch
    {
        MonitorMetrics.Active => _activeConnections,
        MonitorMetrics.CapacityPercent => _settings.Capacity == 0 ? 0 : 100.0 * _activeConnections / _settings.Capacity,
        MonitorMetrics.RttP99 => RttPercentile(0.99, rule.Window, now),
        _ => _counts.Count(rule.Metric, rule.Window, now),
    };

    private double RttPercentile(double percentile, TimeSpan window, DateTimeOffset now)
    {
        while (_rtt.Count > 0 && _rtt.Peek().At <= now - _rttRetention) _rtt.Dequeue();
        var samples = _rtt.Where(s => s.At > now - window).Select(s => s.Ms).Order().ToArray();
        return samples.Length == 0 ? 0 : samples[Math.Min(samples.Length - 1, (int)Math.Ceiling(percentile * samples.Length) - 1)];
    }

    private void Raise(string rule, AlertSeverity severity, double value, double threshold, DateTimeOffset now, string message)
    {
        var alert = new Alert($"{rule}-{++_alertSequence}", rule, severity, value, threshold, now, null, message, _settings.Scope, Peak: value, RaisedValue: value);
        _active[rule] = alert;
        _metrics?.SetActiveAlerts(_active.Count);
        if (_settings.LogSink)
            _log.LogWarning("Alert raised: {AlertId} {Rule} ({Severity}, {Scope}) value {Value:0.##} threshold {Threshold:0.##}: {Message}",
                alert.Id, rule, severity, _settings.Scope, value, threshold, message);
        Context.System.EventStream.Publish(new AlertRaised(alert));
        _webhook?.Offer(new WebhookNotification("raised", alert));
    }

    /// <summary>An active alert's value follows its rule: the current value, the peak, and a message that says them.</summary>
    private void Track(string rule, double value, string message)
    {
        if (!_active.TryGetValue(rule, out var alert) || (alert.Value == value && alert.Message == message)) return;
        _active[rule] = alert with { Value = value, Peak = Math.Max(alert.Peak, value), Message = message };
        _moved.Add(rule);
    }

    /// <summary>Tells the EventStream (and so the sinks that resend active alerts) of the alerts whose value moved since the last tick.</summary>
    private void PublishMoved()
    {
        foreach (var rule in _moved)
            if (_active.TryGetValue(rule, out var alert))
                Context.System.EventStream.Publish(new AlertUpdated(alert));
        _moved.Clear();
    }

    private void Resolve(string rule, double value, DateTimeOffset now)
    {
        if (!_active.Remove(rule, out var raised)) return;
        var resolved = raised with { ResolvedAt = now, Value = value, Peak = Math.Max(raised.Peak, value) };
        _history.AddFirst(resolved);
        while (_history.Count > _settings.HistorySize) _history.RemoveLast();
        _metrics?.SetActiveAlerts(_active.Count);
        if (_settings.LogSink)
            _log.LogInformation("Alert resolved: {AlertId} {Rule} value {Value:0.##} (peak {Peak:0.##}) after {Seconds:0.#} s",
                resolved.Id, rule, value, resolved.Peak, (now - raised.RaisedAt).TotalSeconds);
        Context.System.EventStream.Publish(new AlertResolved(resolved));
        _webhook?.Offer(new WebhookNotification("resolved", resolved));
    }

    private MonitorProtocol.Counters Counters(DateTimeOffset now)
    {
        var rtt = _rtt.Select(s => s.Ms).Order().ToArray();
        double P(double p) => rtt.Length == 0 ? 0 : rtt[Math.Min(rtt.Length - 1, (int)Math.Ceiling(p * rtt.Length) - 1)];
        return new MonitorProtocol.Counters(_activeConnections, _accepted, new Dictionary<string, long>(_closedByReason),
            _missed, _closedByReason.GetValueOrDefault(CloseReason.ProtocolError.ToWireName()),
            new MonitorProtocol.RttSummary(rtt.Length, P(0.5), P(0.9), P(0.99), rtt.Length == 0 ? 0 : rtt[^1])) { Refused = _refused };
    }
}
