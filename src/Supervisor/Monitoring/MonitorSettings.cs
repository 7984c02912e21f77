using Akka.Configuration;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using static Supervisor.Configuration.HoconReader;

namespace Supervisor.Monitoring;

/// <summary>One threshold rule (<c>supervisor.monitor.rules.NAME</c>).</summary>
/// <param name="Metric">One of <see cref="MonitorMetrics.Known"/>.</param>
/// <param name="Window">Sliding window the metric is counted over (ignored by gauges).</param>
/// <param name="For">How long the value must stay above <paramref name="RaiseAbove"/> before the alert is raised.</param>
internal sealed record AlertRule(string Name, string Metric, TimeSpan Window, double RaiseAbove, double ClearBelow, TimeSpan For, AlertSeverity Severity);

/// <param name="Fraction">Share of the connections that time out inside the window that makes one incident.</param>
/// <param name="MinConnections">Below this many connections a mass disconnect is not declared.</param>
internal sealed record MassDisconnectSettings(bool Enabled, double Fraction, TimeSpan Window, int MinConnections, AlertSeverity Severity);

/// <param name="ProbeInterval">Period of the monitor's own lateness probe.</param>
/// <param name="RaiseAbove">Timer lateness that counts as a stall.</param>
/// <param name="ClearAfter">Time with no stall before <c>server-starved</c> is resolved.</param>
internal sealed record StarvationSettings(TimeSpan ProbeInterval, TimeSpan RaiseAbove, TimeSpan ClearAfter);

/// <param name="Url">Null when the webhook sink is off.</param>
internal sealed record WebhookSettings(Uri? Url, TimeSpan Timeout, int QueueSize, int MaxRetries, TimeSpan Backoff);

/// <summary>Everything under <c>supervisor.monitor</c>, validated.</summary>
/// <param name="Capacity">Sum of every listener's max-connections, for <c>connections.capacity-percent</c>.</param>
internal sealed record MonitorSettings(
    TimeSpan EvaluationInterval,
    int HistorySize,
    IReadOnlyList<AlertRule> Rules,
    MassDisconnectSettings MassDisconnect,
    StarvationSettings Starvation,
    bool LogSink,
    WebhookSettings Webhook,
    int Capacity)
{
    private const string Path = "supervisor.monitor";

    /// <summary>What the alerts cover: <c>node</c> (this process's connections) or <c>cluster</c> (the singleton monitor's rules).</summary>
    public string Scope { get; init; } = AlertScopes.Node;

    /// <summary>Whether this monitor measures its own timer lateness (<c>server-starved</c>); the cluster monitor leaves that to each node's.</summary>
    public bool WatchStarvation { get; init; } = true;

    /// <summary>
    /// Whether the process's stop-the-world GC pauses count as stalls too. Off in a simulation: its clock is virtual,
    /// and the real pauses of the process running it are not the simulated server's.
    /// </summary>
    public bool CountGcPauses { get; init; } = true;

    public static MonitorSettings Read(Config config, SupervisorSettings supervisor)
    {
        var monitor = config.GetConfig(Path);
        var rules = ReadRules(monitor, Path, allowed: _ => true);

        var mass = monitor.GetConfig("mass-disconnect");
        var fraction = ReadDouble(mass, "fraction", $"{Path}.mass-disconnect");
        if (fraction is <= 0 or > 1)
            throw new ConfigurationError($"{Path}.mass-disconnect.fraction", $"{fraction} must be in (0, 1]");

        var starvation = monitor.GetConfig("starvation");
        var webhook = monitor.GetConfig("sinks.webhook");
        var url = ReadString(webhook, "url", $"{Path}.sinks.webhook");
        Uri? webhookUrl = null;
        if (url.Length > 0 && (!Uri.TryCreate(url, UriKind.Absolute, out webhookUrl) || webhookUrl.Scheme is not ("http" or "https")))
            throw new ConfigurationError($"{Path}.sinks.webhook.url", $"'{url}' is not an http(s) URL");

        var history = ReadInt(monitor, "history-size", Path);
        if (history < 1)
            throw new ConfigurationError($"{Path}.history-size", $"{history} must be at least 1");

        return new MonitorSettings(
            ReadPositiveDuration(monitor, "evaluation-interval", Path),
            history,
            rules,
            new MassDisconnectSettings(
                ReadBool(mass, "enabled", $"{Path}.mass-disconnect"), fraction,
                ReadPositiveDuration(mass, "window", $"{Path}.mass-disconnect"),
                ReadInt(mass, "min-connections", $"{Path}.mass-disconnect"),
                ReadSeverity(mass, "severity", $"{Path}.mass-disconnect", AlertSeverity.Critical)),
            new StarvationSettings(
                ReadPositiveDuration(starvation, "probe-interval", $"{Path}.starvation"),
                ReadPositiveDuration(starvation, "raise-above", $"{Path}.starvation"),
                ReadPositiveDuration(starvation, "clear-after", $"{Path}.starvation")),
            ReadBool(monitor, "sinks.log", Path),
            new WebhookSettings(webhookUrl,
                ReadPositiveDuration(webhook, "timeout", $"{Path}.sinks.webhook"),
                ReadInt(webhook, "queue-size", $"{Path}.sinks.webhook"),
                ReadInt(webhook, "max-retries", $"{Path}.sinks.webhook"),
                ReadPositiveDuration(webhook, "backoff", $"{Path}.sinks.webhook")),
            supervisor.Listeners.Sum(l => l.MaxConnections));
    }

    /// <summary>
    /// The rules under <paramref name="section"/>'s <c>rules</c> (named <paramref name="path"/><c>.rules.NAME</c> in errors);
    /// <paramref name="allowed"/> narrows the metrics, e.g. to those the cluster monitor can compute.
    /// </summary>
    public static IReadOnlyList<AlertRule> ReadRules(Config section, string path, Func<string, bool> allowed)
    {
        var rules = new List<AlertRule>();
        if (!section.HasPath("rules")) return rules;
        foreach (var name in section.GetValue("rules").GetObject().Items.Keys)
        {
            var prefix = $"{path}.rules.{name}";
            var rule = section.GetConfig($"rules.{name}");
            var metric = ReadString(rule, "metric", prefix);
            var known = MonitorMetrics.Known.Where(allowed).ToArray();
            if (!known.Contains(metric))
                throw new ConfigurationError($"{prefix}.metric", $"unknown metric '{metric}' (known: {string.Join(", ", known)})");
            var raise = ReadDouble(rule, "raise-above", prefix);
            var clear = ReadDouble(rule, "clear-below", prefix);
            if (clear > raise)
                throw new ConfigurationError($"{prefix}.clear-below", $"{clear} must not be above raise-above = {raise}");
            var window = MonitorMetrics.IsGauge(metric) && !rule.HasPath("window") ? TimeSpan.Zero : ReadPositiveDuration(rule, "window", prefix);
            var sustain = rule.HasPath("for") ? ReadNonNegativeDuration(rule, "for", prefix) : TimeSpan.Zero;
            rules.Add(new AlertRule(name, metric, window, raise, clear, sustain,
                ReadSeverity(rule, "severity", prefix, AlertSeverity.Warning)));
        }
        return rules;
    }

    private static TimeSpan ReadNonNegativeDuration(Config c, string key, string prefix)
    {
        var raw = c.GetString(key);
        return raw is "0" or "0s" or "0ms" ? TimeSpan.Zero : ReadPositiveDuration(c, key, prefix);
    }

    private static AlertSeverity ReadSeverity(Config c, string key, string prefix, AlertSeverity fallback)
    {
        if (!c.HasPath(key)) return fallback;
        var text = ReadString(c, key, prefix);
        return text switch
        {
            "info" => AlertSeverity.Info,
            "warning" => AlertSeverity.Warning,
            "critical" => AlertSeverity.Critical,
            _ => throw new ConfigurationError($"{prefix}.{key}", $"'{text}' is not one of info, warning, critical"),
        };
    }
}

/// <summary>The metrics rules can watch.</summary>
internal static class MonitorMetrics
{
    public const string Active = "connections.active";
    public const string CapacityPercent = "connections.capacity-percent";
    public const string RttP99 = "heartbeat.rtt.p99";
    public const string Accepted = "connections.accepted";
    public const string Closed = "connections.closed";
    public const string Missed = "heartbeats.missed";

    public static string ClosedBy(CloseReason reason) => $"{Closed}.{reason.ToWireName()}";

    /// <summary>Heartbeat-timeout closes of one cause (DESIGN §3, "Cause of death"): <c>connections.closed.heartbeat-timeout.path-dead</c>.</summary>
    public static string ClosedBy(SilenceCause cause) => $"{ClosedBy(CloseReason.HeartbeatTimeout)}.{cause.ToWireName()}";

    public static IReadOnlyList<string> Known { get; } =
        new[] { Active, CapacityPercent, RttP99, Accepted, Closed, Missed }
            .Concat(CloseReasons.All.Select(ClosedBy))
            .Concat(SilenceCauses.All.Select(ClosedBy))
            .ToArray();

    /// <summary>A metric of heartbeat-timeout closes by cause: counted from this node's lifecycle only (the cluster's totals carry no cause).</summary>
    public static bool IsCause(string metric) => SilenceCauses.All.Any(c => metric == ClosedBy(c));

    /// <summary>
    /// A rule over closes whose cause names an incident of its own: many <c>path-dead</c> peers are one network incident,
    /// many <c>peer-hung</c> ones an application incident. Such a rule, once raised, is the one alert for those
    /// deaths: the dead-peer rules stay quiet while it stands (as they do for a mass disconnect).
    /// </summary>
    public static bool IsIncident(string metric) => metric == ClosedBy(SilenceCause.PathDead) || metric == ClosedBy(SilenceCause.PeerHung);

    public static bool IsGauge(string metric) => metric is Active or CapacityPercent or RttP99;

    /// <summary>Metrics that rise when peers die; quiet while a mass disconnect stands for them all.</summary>
    public static bool CountsDeadPeers(string metric) =>
        metric == Missed || metric == Closed || metric == ClosedBy(CloseReason.HeartbeatTimeout) || metric == ClosedBy(CloseReason.KeepaliveFailed);
}
