using Supervisor.Messages.Protocol;

namespace Supervisor.Simulation;

/// <summary>Distribution of a latency, in milliseconds of virtual time.</summary>
public sealed record LatencySummary(int Count, double Min, double P50, double P99, double Max)
{
    /// <summary>The summary of <paramref name="values"/> (milliseconds); all zero when there are none.</summary>
    internal static LatencySummary Of(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return new LatencySummary(0, 0, 0, 0, 0);
        double P(double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
        return new LatencySummary(sorted.Length, sorted[0], P(0.5), P(0.99), sorted[^1]);
    }
}

/// <summary>One alert transition as it happened in virtual time.</summary>
public sealed record AlertTransition(string Event, Alert Alert, TimeSpan At);

/// <summary>One connection the server closed, in virtual time since the start.</summary>
/// <param name="AfterLastFrame">Close time minus the time of the last frame that reached the server.</param>
/// <param name="PeerWasAlive">The peer was still alive by its model when it was closed: a false disconnect.</param>
public sealed record SimulatedClose(int Peer, string Reason, TimeSpan At, TimeSpan AfterLastFrame, bool PeerWasAlive);

/// <summary>What a simulation found.</summary>
/// <param name="FalseDisconnects">Peers closed while alive by their model.</param>
/// <param name="DeadPeers">Peers that died for good during the run.</param>
/// <param name="DeadPeersDetected">Dead peers the server closed after they died and before the run ended.</param>
/// <param name="DetectionLatency">Close time minus death time, for detected dead peers.</param>
/// <param name="AfterLastFrame">Close time minus last frame received, for every close.</param>
public sealed record SimulationReport(
    int Peers,
    TimeSpan Duration,
    int FramesSent,
    int FramesLost,
    int FalseDisconnects,
    int DeadPeers,
    int DeadPeersDetected,
    LatencySummary DetectionLatency,
    LatencySummary AfterLastFrame,
    IReadOnlyDictionary<string, int> ClosedByReason,
    IReadOnlyList<SimulatedClose> Closes,
    IReadOnlyList<AlertTransition> Alerts,
    TimeSpan WallTime)
{
    /// <summary>Missed heartbeats the connections reported to the monitor.</summary>
    public long HeartbeatsMissed { get; init; }

    /// <summary>Peers that were to die but had already been closed while alive (counted among the false disconnects).</summary>
    public int DeadPeersClosedBeforeDeath { get; init; }

    /// <summary>Handovers that held up at least one heartbeat (peers with <see cref="PeerModel.Handovers"/>).</summary>
    public int Handovers { get; init; }

    /// <summary>The report as the <c>simulate</c> command prints it.</summary>
    public string ToText()
    {
        var text = new System.Text.StringBuilder();
        text.AppendLine($"peers                {Peers}");
        text.AppendLine($"virtual time         {Duration}");
        text.AppendLine($"wall time            {WallTime.TotalSeconds:F1} s");
        text.AppendLine($"heartbeats sent      {FramesSent} ({FramesLost} lost, {Handovers} handovers)");
        text.AppendLine($"missed heartbeats    {HeartbeatsMissed}");
        text.AppendLine($"false disconnects    {FalseDisconnects}");
        text.AppendLine($"dead peers           {DeadPeers}, detected {DeadPeersDetected}" +
            (DeadPeersClosedBeforeDeath > 0 ? $" ({DeadPeersClosedBeforeDeath} closed while alive before it died)" : ""));
        text.AppendLine($"detection latency    {Latency(DetectionLatency)}");
        text.AppendLine($"close after last frame {Latency(AfterLastFrame)}");
        text.AppendLine($"closed by reason     {(ClosedByReason.Count == 0 ? "none" : string.Join(", ", ClosedByReason.Select(kv => $"{kv.Key}={kv.Value}")))}");
        text.AppendLine($"alerts               {(Alerts.Count == 0 ? "none" : "")}");
        foreach (var alert in Alerts)
            text.AppendLine($"  {alert.At,-12} {alert.Event,-9} {alert.Alert.Rule} ({alert.Alert.Severity}): {alert.Alert.Message}");
        return text.ToString();
    }

    private static string Latency(LatencySummary l) => l.Count == 0
        ? "n/a"
        : $"min {l.Min / 1000:F2} s, p50 {l.P50 / 1000:F2} s, p99 {l.P99 / 1000:F2} s, max {l.Max / 1000:F2} s (n={l.Count})";
}

/// <summary>One detector's run in a <see cref="DetectorComparison"/>.</summary>
/// <param name="Detector">The detector as the comparison names it, e.g. <c>fixed 20s</c> or <c>phi 8 (cap 30s)</c>.</param>
public sealed record DetectorRun(string Detector, SimulationReport Report);

/// <summary>The same peers under each detector, side by side.</summary>
public sealed record DetectorComparison(IReadOnlyList<DetectorRun> Runs)
{
    /// <summary>The comparison as the <c>simulate --detector compare</c> command prints it: one column per detector.</summary>
    public string ToText()
    {
        var rows = new (string Name, Func<SimulationReport, string> Value)[]
        {
            ("false disconnects", r => r.FalseDisconnects.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("  per hour", r => (r.FalseDisconnects / r.Duration.TotalHours).ToString("F1", System.Globalization.CultureInfo.InvariantCulture)),
            ("dead peers detected", r => $"{r.DeadPeersDetected} of {r.DeadPeers}"),
            ("detection p50", r => Seconds(r.DetectionLatency, l => l.P50)),
            ("detection p99", r => Seconds(r.DetectionLatency, l => l.P99)),
            ("detection max", r => Seconds(r.DetectionLatency, l => l.Max)),
            ("missed heartbeats", r => r.HeartbeatsMissed.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("wall time", r => $"{r.WallTime.TotalSeconds:F1} s"),
        };
        var width = Math.Max(14, Runs.Max(r => r.Detector.Length) + 2);
        var text = new System.Text.StringBuilder();
        text.Append("".PadRight(22));
        foreach (var run in Runs) text.Append(run.Detector.PadLeft(width));
        text.AppendLine();
        foreach (var (name, value) in rows)
        {
            text.Append(name.PadRight(22));
            foreach (var run in Runs) text.Append(value(run.Report).PadLeft(width));
            text.AppendLine();
        }
        return text.ToString();
    }

    private static string Seconds(LatencySummary latency, Func<LatencySummary, double> pick) =>
        latency.Count == 0 ? "n/a" : $"{pick(latency) / 1000:F2} s";
}
