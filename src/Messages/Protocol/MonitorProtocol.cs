namespace Supervisor.Messages.Protocol;

public enum AlertSeverity
{
    Info,
    Warning,
    Critical,
}

/// <summary>One alert: raised once when its rule crosses <c>raise-above</c>, resolved once when it falls to <c>clear-below</c>.</summary>
/// <param name="Id">Unique per raise, e.g. <c>heartbeat-timeouts-3</c>.</param>
/// <param name="Rule">The rule's name (<c>mass-disconnect</c>, <c>server-starved</c>, <c>probe-down:cache</c>, …).</param>
/// <param name="Value">The rule's current value while the alert stands (the last evaluation), its value at the resolve once resolved.</param>
/// <param name="Threshold">The <c>raise-above</c> it crossed.</param>
/// <param name="Message">What the monitor saw, kept up to date with <paramref name="Value"/> while the alert stands.</param>
/// <param name="Scope"><c>node</c>: raised by the monitor of the node that answers; <c>cluster</c>: by the cluster's singleton monitor.</param>
/// <param name="Peak">The highest value while the alert stood.</param>
/// <param name="RaisedValue">The value when it was raised.</param>
public sealed record Alert(
    string Id,
    string Rule,
    AlertSeverity Severity,
    double Value,
    double Threshold,
    DateTimeOffset RaisedAt,
    DateTimeOffset? ResolvedAt,
    string Message,
    string Scope = AlertScopes.Node,
    double Peak = 0,
    double RaisedValue = 0);

/// <summary>
/// Published on the actor system's EventStream, at most once per evaluation interval, while an alert's value moves:
/// the alert with its current value and peak (sinks that resend active alerts, such as Alertmanager's, send these).
/// </summary>
public sealed record AlertUpdated(Alert Alert);

public static class AlertScopes
{
    public const string Node = "node";
    public const string Cluster = "cluster";
}

/// <summary>Published on the actor system's EventStream when an alert is raised.</summary>
public sealed record AlertRaised(Alert Alert);

/// <summary>Published on the actor system's EventStream when an alert is resolved.</summary>
public sealed record AlertResolved(Alert Alert);

public interface IMonitorMessage;

public static class MonitorProtocol
{
    public sealed record GetAlerts : IMonitorMessage
    {
        public static GetAlerts Instance { get; } = new();
    }

    public sealed record GetCounters : IMonitorMessage
    {
        public static GetCounters Instance { get; } = new();
    }

    /// <summary>Round-trip times of server pings kept for the rules' windows, in milliseconds.</summary>
    public sealed record RttSummary(int Samples, double P50, double P90, double P99, double Max);

    /// <summary>
    /// The monitor's counters since start: the source document's plus closes by reason and RTT. <c>Active</c>, <c>Accepted</c>
    /// and <c>ClosedByReason</c> mean what they mean in /api/stats (DESIGN §3, "One lifecycle"): accepted = active + every close.
    /// </summary>
    public sealed record Counters(
        long Active,
        long Accepted,
        IReadOnlyDictionary<string, long> ClosedByReason,
        long HeartbeatsMissed,
        long ProtocolErrors,
        RttSummary Rtt)
    {
        public long HeartbeatTimeouts => ClosedByReason.GetValueOrDefault("heartbeat-timeout");

        /// <summary>Refusals among <c>Accepted</c> and <c>ClosedByReason</c> (DESIGN §3, "One lifecycle").</summary>
        public long Refused { get; init; }
    }

    /// <summary>Active alerts, and the bounded history of resolved ones (newest first).</summary>
    public sealed record Alerts(IReadOnlyList<Alert> Active, IReadOnlyList<Alert> History)
    {
        /// <summary>This node's alerts and the cluster monitor's together, oldest raise first, newest resolve first.</summary>
        public static Alerts operator +(Alerts a, Alerts b) => new(
            a.Active.Concat(b.Active).OrderBy(x => x.RaisedAt).ToArray(),
            a.History.Concat(b.History).OrderByDescending(x => x.ResolvedAt).ToArray());
    }

    /// <summary>Answered with <see cref="SinksFlushed"/> once every notification offered so far was delivered or given up, or after <c>Timeout</c>.</summary>
    public sealed record FlushSinks(TimeSpan Timeout) : IMonitorMessage;

    /// <summary><c>AllDelivered</c> is false when the timeout came first.</summary>
    public sealed record SinksFlushed(bool AllDelivered);
}
