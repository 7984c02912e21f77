namespace Supervisor.Messages.Protocol;

/// <summary>How urgent an alert is: a rule's <c>severity</c> setting, passed on to the sinks (Alertmanager's <c>severity</c> label).</summary>
public enum AlertSeverity
{
    /// <summary><c>info</c>: worth knowing, nothing to do.</summary>
    Info,
    /// <summary><c>warning</c>: worth a look.</summary>
    Warning,
    /// <summary><c>critical</c>: needs action now (a probe that is down raises one).</summary>
    Critical,
}

/// <summary>One alert: raised once when its rule crosses <c>raise-above</c>, resolved once when it falls to <c>clear-below</c>.</summary>
/// <param name="Id">Unique per raise, e.g. <c>heartbeat-timeouts-3</c>.</param>
/// <param name="Rule">The rule's name (<c>mass-disconnect</c>, <c>server-starved</c>, <c>probe-down:cache</c>, …).</param>
/// <param name="Value">The rule's current value while the alert stands (the last evaluation), its value at the resolve once resolved.</param>
/// <param name="Severity">The rule's severity.</param>
/// <param name="Threshold">The <c>raise-above</c> it crossed.</param>
/// <param name="RaisedAt">When it was raised.</param>
/// <param name="ResolvedAt">When it was resolved; null while it stands.</param>
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

/// <summary>The values of <see cref="Alert.Scope"/>: which monitor raised an alert.</summary>
public static class AlertScopes
{
    /// <summary>Raised by the monitor of the node that answers, over its own connections.</summary>
    public const string Node = "node";

    /// <summary>Raised by the cluster's singleton monitor, over the totals of every node (DESIGN §8).</summary>
    public const string Cluster = "cluster";
}

/// <summary>Published on the actor system's EventStream when an alert is raised.</summary>
public sealed record AlertRaised(Alert Alert);

/// <summary>Published on the actor system's EventStream when an alert is resolved.</summary>
public sealed record AlertResolved(Alert Alert);

/// <summary>The questions and commands the monitor actor accepts (<see cref="MonitorProtocol"/>).</summary>
public interface IMonitorMessage;

/// <summary>
/// What the monitor (DESIGN §4, "Monitor details") answers: its alerts, its counters, and the flush of its
/// notification sinks. The node's monitor and, in a cluster, the singleton cluster monitor both take these.
/// </summary>
public static class MonitorProtocol
{
    /// <summary>Answered with <see cref="Alerts"/> (<c>GET /api/alerts</c>).</summary>
    public sealed record GetAlerts : IMonitorMessage
    {
        /// <summary>The message's one instance; it carries nothing.</summary>
        public static GetAlerts Instance { get; } = new();
    }

    /// <summary>Answered with <see cref="Counters"/>.</summary>
    public sealed record GetCounters : IMonitorMessage
    {
        /// <summary>The message's one instance; it carries nothing.</summary>
        public static GetCounters Instance { get; } = new();
    }

    /// <summary>Round-trip times of server pings kept for the rules' windows, in milliseconds.</summary>
    /// <param name="Samples">How many round trips are kept; all the figures are 0 when there are none.</param>
    /// <param name="P50">Median.</param>
    /// <param name="P90">90th percentile.</param>
    /// <param name="P99">99th percentile.</param>
    /// <param name="Max">Longest.</param>
    public sealed record RttSummary(int Samples, double P50, double P90, double P99, double Max);

    /// <summary>
    /// The monitor's counters since start: the source document's plus closes by reason and RTT. <c>Active</c>, <c>Accepted</c>
    /// and <c>ClosedByReason</c> mean what they mean in /api/stats (DESIGN §3, "One lifecycle"): accepted = active + every close.
    /// </summary>
    /// <param name="Active">Inbound connections opened whose close is not decided yet.</param>
    /// <param name="Accepted">Inbound sockets taken from a listener's accept queue, refusals included.</param>
    /// <param name="ClosedByReason">Closes (and refusals) by reason wire name, e.g. <c>heartbeat-timeout</c>.</param>
    /// <param name="HeartbeatsMissed">Heartbeat intervals that passed without a valid frame, over every connection.</param>
    /// <param name="ProtocolErrors">Connections closed with <c>protocol-error</c>.</param>
    /// <param name="Rtt">The round-trip times kept.</param>
    public sealed record Counters(
        long Active,
        long Accepted,
        IReadOnlyDictionary<string, long> ClosedByReason,
        long HeartbeatsMissed,
        long ProtocolErrors,
        RttSummary Rtt)
    {
        /// <summary>Connections closed with <c>heartbeat-timeout</c>.</summary>
        public long HeartbeatTimeouts => ClosedByReason.GetValueOrDefault("heartbeat-timeout");

        /// <summary>Refusals among <c>Accepted</c> and <c>ClosedByReason</c> (DESIGN §3, "One lifecycle").</summary>
        public long Refused { get; init; }
    }

    /// <summary>Active alerts, and the bounded history of resolved ones (newest first): the answer to <see cref="GetAlerts"/>.</summary>
    /// <param name="Active">The alerts that stand, oldest raise first.</param>
    /// <param name="History">Resolved alerts, newest resolve first, at most the monitor's history size.</param>
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
