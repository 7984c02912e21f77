using System.Globalization;

namespace RollingGen;

/// <summary>
/// What one rolling restart did, per restarted node: where the clients it sent away went (and how many came back to it
/// while it was restarting), the accepts per node per 100 ms while they moved and while they came home, and the
/// connections every node held. Key=value lines (<c>rolling.*</c>) for the script, then the checks.
/// </summary>
internal sealed class Report
{
    private const double BinMs = 100;
    private readonly List<string> _lines = [];
    private readonly List<string> _failures = [];

    /// <param name="serverAccepts">Per node (1-based), the moments (Unix ms) its log shows a connection's first heartbeat; null: not read.</param>
    public Report(Options options, Recorder.Record record, IReadOnlyList<Mark> marks, IReadOnlyList<double>[]? serverAccepts = null)
    {
        var nodes = options.Endpoints.Count;
        var events = record.Events;
        var byClient = new Dictionary<int, List<int>>();
        for (var i = 0; i < events.Count; i++)
        {
            if (!byClient.TryGetValue(events[i].Client, out var list)) byClient[events[i].Client] = list = [];
            list.Add(i);
        }
        var spreadS = options.Spread.TotalSeconds;
        var terms = marks.Where(m => m.Kind == "term").OrderBy(m => m.AtMs).ToArray();
        var endMs = marks.Where(m => m.Kind == "end").Select(m => m.AtMs).DefaultIfEmpty(events.Count > 0 ? events[^1].AtMs + 1 : 0).Max();
        if (terms.Length == 0) _failures.Add("no restart marks: nothing to report");

        for (var r = 0; r < terms.Length; r++)
        {
            var k = terms[r].Node;
            var termMs = terms[r].AtMs;
            var nextMs = r + 1 < terms.Length ? terms[r + 1].AtMs : endMs;
            var upMs = marks.Where(m => m.Kind == "up" && m.Node == k && m.AtMs > termMs && m.AtMs < nextMs).Select(m => m.AtMs).DefaultIfEmpty(nextMs).Min();
            var exitedMs = marks.Where(m => m.Kind == "exited" && m.Node == k && m.AtMs > termMs).Select(m => m.AtMs).DefaultIfEmpty(double.NaN).Min();
            var listeningMs = marks.Where(m => m.Kind == "listening" && m.Node == k && m.AtMs > termMs).Select(m => m.AtMs).DefaultIfEmpty(double.NaN).Min();
            var key = $"rolling.restart{r + 1}";
            Put($"{key}.node", k);
            Put($"{key}.exited_s", F1((exitedMs - termMs) / 1000));
            Put($"{key}.listening_s", F1((listeningMs - termMs) / 1000));
            Put($"{key}.up_s", F1((upMs - termMs) / 1000));

            // Who left node k while it went away, and why.
            var left = events.Select((e, i) => (e, i))
                .Where(x => x.e.Kind == EventKind.Disconnected && x.e.Node == k && x.e.AtMs >= termMs && x.e.AtMs < upMs).ToArray();
            var hinted = left.Where(x => x.e.Cause == Cause.Hinted).ToArray();
            // A client away at node k whose home answered just then moved home on its own: not sent away, not a failure.
            var movedHome = left.Count(x => x.e.Cause == Cause.Home);
            var unhinted = left.Count(x => x.e.Cause == Cause.Other);
            var landed = new int[nodes + 1];
            var firstTry = 0;
            var missing = 0;
            double firstLanding = double.MaxValue, lastLanding = 0;
            foreach (var (e, i) in hinted)
            {
                var mine = byClient[e.Client];
                var at = mine.BinarySearch(i);
                var next = mine.Skip(at + 1).Select(j => events[j]).FirstOrDefault(n => n.Kind == EventKind.Connected && n.AtMs < nextMs);
                if (next.Kind != EventKind.Connected || next.AtMs == 0)
                {
                    missing++;
                    continue;
                }
                landed[next.Node]++;
                if (next.Attempt == 0) firstTry++;
                firstLanding = Math.Min(firstLanding, next.AtMs);
                lastLanding = Math.Max(lastLanding, next.AtMs);
            }
            Put($"{key}.sent_away", hinted.Length);
            Put($"{key}.closed_without_hint", unhinted);
            Put($"{key}.away_clients_that_moved_home_meanwhile", movedHome);
            Put($"{key}.went_back_to_restarting_node", landed[k]);
            Put($"{key}.landed", string.Join(" ", Enumerable.Range(1, nodes).Select(n => $"node{n}:{landed[n]}")));
            Put($"{key}.landed_on_first_try", record.FailedConnectsKnown ? firstTry : "– (events file of the first version)");
            Put($"{key}.not_reconnected", missing);
            Put($"{key}.reconnects_spanned_s", hinted.Length > missing ? F1((lastLanding - firstLanding) / 1000) : "–");
            if (hinted.Length == 0) _failures.Add($"restart {r + 1} (node {k}): no client was sent away with a hint");
            if (unhinted > 0) _failures.Add($"restart {r + 1} (node {k}): {unhinted} connection(s) closed without a hint");
            if (landed[k] > 0) _failures.Add($"restart {r + 1} (node {k}): {landed[k]} client(s) went back to the restarting node");
            if (missing > 0) _failures.Add($"restart {r + 1} (node {k}): {missing} client(s) sent away never reconnected before the next restart");

            // Accepts per node while they moved (from the SIGTERM until node k is up and every hinted client landed): against
            // the share, the hinted reconnects spread over the hint window among the live nodes.
            var live = nodes - 1;
            var share = hinted.Length / spreadS / live;
            var evacuationEndMs = hinted.Length > missing ? Math.Min(nextMs, lastLanding + 1) : upMs;
            var evacuation = Bins(events, termMs, evacuationEndMs, nodes);
            var evacuationPeak = Enumerable.Range(1, nodes).Select(n => PeakPerSecond(evacuation[n])).ToArray();
            var worstRatio = WorstWindowRatio(evacuation, nodes, k, hinted.Length / spreadS * 0.5);
            Put($"{key}.share_per_s", F0(share));
            Put($"{key}.evacuation_peak_per_s", string.Join(" ", Enumerable.Range(1, nodes).Select(n => $"node{n}:{evacuationPeak[n - 1]}")));
            Put($"{key}.evacuation_peak_100ms_bin", string.Join(" ", Enumerable.Range(1, nodes).Select(n => $"node{n}:{(evacuation[n].Length == 0 ? 0 : evacuation[n].Max())}")));
            Put($"{key}.evacuation_worst_window_ratio", F2(worstRatio));
            foreach (var n in Enumerable.Range(1, nodes).Where(n => n != k))
                if (evacuationPeak[n - 1] > 2 * share)
                    _failures.Add($"restart {r + 1}: node {n} took {evacuationPeak[n - 1]}/s while node {k}'s clients moved, above 2 x its share ({F0(2 * share)}/s)");

            // Coming home once node k listens again (none went back to it by the hint: counted above): all to node k, by
            // design; held to the same bound.
            var home = Bins(events, termMs, nextMs, nodes);
            var returned = home[k].Sum();
            var returnPeak = PeakPerSecond(home[k]);
            var othersDuringReturn = Enumerable.Range(1, nodes).Where(n => n != k).Sum(n => Bins(events, evacuationEndMs, nextMs, nodes)[n].Sum());
            Put($"{key}.returned_home", returned);
            Put($"{key}.return_peak_per_s", returnPeak);
            Put($"{key}.accepts_elsewhere_during_return", othersDuringReturn);
            if (returnPeak > 2 * share)
                _failures.Add($"restart {r + 1}: node {k} took its clients back at {returnPeak}/s, above 2 x the share ({F0(2 * share)}/s)");

            if (serverAccepts is not null)
            {
                // The same from the nodes' side: each connection's first heartbeat, logged by the node that accepted it.
                var server = ServerBins(serverAccepts, termMs, evacuationEndMs, nodes);
                var serverPeak = Enumerable.Range(1, nodes).Select(n => PeakPerSecond(server[n])).ToArray();
                Put($"{key}.server_evacuation_peak_per_s", string.Join(" ", Enumerable.Range(1, nodes).Select(n => $"node{n}:{serverPeak[n - 1]}")));
                Put($"{key}.server_evacuation_peak_100ms_bin", string.Join(" ", Enumerable.Range(1, nodes).Select(n => $"node{n}:{(server[n].Length == 0 ? 0 : server[n].Max())}")));
                var serverReturnPeak = PeakPerSecond(ServerBins(serverAccepts, termMs, nextMs, nodes)[k]);
                Put($"{key}.server_return_peak_per_s", serverReturnPeak);
                foreach (var n in Enumerable.Range(1, nodes).Where(n => n != k))
                    if (serverPeak[n - 1] > 2 * share)
                        _failures.Add($"restart {r + 1}: node {n}'s log shows {serverPeak[n - 1]} new connections/s while node {k}'s clients moved, above 2 x its share ({F0(2 * share)}/s)");
                if (serverReturnPeak > 2 * share)
                    _failures.Add($"restart {r + 1}: node {k}'s log shows {serverReturnPeak} new connections/s as its clients came back, above 2 x the share ({F0(2 * share)}/s)");
            }

            var before = HeldAt(record, nextMs);
            Put($"{key}.held_before_next", string.Join(" ", before.Select((h, n) => $"node{n + 1}:{h}")));
        }

        var final = record.Held.Count > 0 ? record.Held[^1].Held : new int[nodes];
        var even = options.Clients / (double)nodes;
        Put("rolling.final_held", string.Join(" ", final.Select((h, n) => $"node{n + 1}:{h}")));
        Put("rolling.final_worst_deviation_percent", F1(final.Max(h => Math.Abs(h - even)) / even * 100));
        Put("rolling.final_total", final.Sum());
        for (var n = 0; n < nodes; n++)
            if (Math.Abs(final[n] - even) > even * 0.10)
                _failures.Add($"at the end node {n + 1} holds {final[n]}, more than 10 % from {F0(even)}");
        if (final.Sum() != options.Clients) _failures.Add($"at the end {final.Sum()} of {options.Clients} clients are connected");
    }

    public bool Passed => _failures.Count == 0;

    public void Write(TextWriter writer)
    {
        foreach (var line in _lines) writer.WriteLine(line);
        writer.WriteLine(Passed ? "rolling.checks=passed" : $"rolling.checks=FAILED ({_failures.Count})");
        foreach (var failure in _failures) writer.WriteLine($"rolling.failure={failure}");
    }

    private void Put(string key, object value) => _lines.Add(string.Create(CultureInfo.InvariantCulture, $"{key}={value}"));

    /// <summary>Connects per node (1-based index) per 100 ms from <paramref name="fromMs"/> to <paramref name="toMs"/>.</summary>
    private static int[][] Bins(IReadOnlyList<Event> events, double fromMs, double toMs, int nodes)
    {
        var count = Math.Max(0, (int)Math.Ceiling((toMs - fromMs) / BinMs));
        var bins = Enumerable.Range(0, nodes + 1).Select(_ => new int[count]).ToArray();
        foreach (var e in events)
            if (e.Kind == EventKind.Connected && e.AtMs >= fromMs && e.AtMs < toMs && e.Node > 0)
                bins[e.Node][(int)((e.AtMs - fromMs) / BinMs)]++;
        return bins;
    }

    private static int[][] ServerBins(IReadOnlyList<double>[] accepts, double fromMs, double toMs, int nodes)
    {
        var count = Math.Max(0, (int)Math.Ceiling((toMs - fromMs) / BinMs));
        var bins = Enumerable.Range(0, nodes + 1).Select(_ => new int[count]).ToArray();
        for (var n = 1; n <= nodes; n++)
            foreach (var at in accepts[n])
                if (at >= fromMs && at < toMs)
                    bins[n][(int)((at - fromMs) / BinMs)]++;
        return bins;
    }

    /// <summary>
    /// The moments a node's log shows a connection's first heartbeat (the node's "peer announced a heartbeat interval"
    /// line, written when the first frame of a connection is read: the client sends it at once), per node.
    /// </summary>
    public static IReadOnlyList<double>[] ReadServerAccepts(IReadOnlyList<string> logs)
    {
        var accepts = new IReadOnlyList<double>[logs.Count + 1];
        accepts[0] = [];
        for (var n = 0; n < logs.Count; n++)
        {
            var list = new List<double>();
            if (File.Exists(logs[n]))
                foreach (var line in File.ReadLines(logs[n]))
                {
                    if (line.Length < 23 || !line.Contains("peer announced a heartbeat interval", StringComparison.Ordinal)) continue;
                    if (DateTime.TryParseExact(line[..23], "yyyy-MM-ddTHH:mm:ss.fff", CultureInfo.InvariantCulture,
                            DateTimeStyles.AssumeLocal | DateTimeStyles.AdjustToUniversal, out var at))
                        list.Add(new DateTimeOffset(at, TimeSpan.Zero).ToUnixTimeMilliseconds());
                }
            accepts[n + 1] = list;
        }
        return accepts;
    }

    /// <summary>The most connects in any 1 s window (10 consecutive 100 ms bins).</summary>
    private static int PeakPerSecond(int[] bins)
    {
        int peak = 0, sum = 0;
        for (var i = 0; i < bins.Length; i++)
        {
            sum += bins[i];
            if (i >= 10) sum -= bins[i - 10];
            peak = Math.Max(peak, sum);
        }
        return peak;
    }

    /// <summary>
    /// Over every 1 s window in which the cluster took at least <paramref name="minimum"/> connects: the most one live node
    /// took against an even split of that window's connects among the live nodes (1.0: even).
    /// </summary>
    private static double WorstWindowRatio(int[][] bins, int nodes, int restarting, double minimum)
    {
        var worst = 0.0;
        var length = bins[1].Length;
        for (var end = 10; end <= length; end++)
        {
            var perNode = Enumerable.Range(1, nodes).Where(n => n != restarting).Select(n => bins[n].AsSpan(end - 10, 10).ToArray().Sum()).ToArray();
            var total = perNode.Sum();
            if (total < minimum || total == 0) continue;
            worst = Math.Max(worst, perNode.Max() / (total / (double)perNode.Length));
        }
        return worst;
    }

    private static int[] HeldAt(Recorder.Record record, double atMs) =>
        record.Held.LastOrDefault(s => s.AtMs <= atMs).Held ?? [];

    private static string F0(double v) => v.ToString("F0", CultureInfo.InvariantCulture);
    private static string F1(double v) => double.IsNaN(v) ? "–" : v.ToString("F1", CultureInfo.InvariantCulture);
    private static string F2(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
}
