using System.Diagnostics;
using System.Globalization;

namespace LedgerReplication;

/// <summary>The lines a node prints for the coordinator (stdout, one fact per line), and the replica bookkeeping both modes share.</summary>
public sealed class Report(Options options)
{
    private readonly HashSet<string> _converged = [];
    private Schedule? _schedule;
    private double _churnEndMs = double.PositiveInfinity;
    private readonly Stopwatch _samplerTime = new();

    public static long NowMs() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private static double NowMsPrecise() => DateTime.UtcNow.Ticks / 10_000.0 - 62_135_596_800_000.0;

    public static void Line(string text) => Console.Out.WriteLine(text);

    public IEnumerable<string> Others => Enumerable.Range(0, options.Nodes).Where(i => i != options.Index).Select(options.NodeName);

    public bool Converging => _schedule is not null && _converged.Count < options.Nodes - 1;

    public bool IsConverged(string owner) => _converged.Contains(owner);

    public void Ramp(Schedule schedule) => _schedule = schedule;

    public void Churn(Schedule schedule, double churnEndMs)
    {
        _schedule = schedule;
        _churnEndMs = churnEndMs;
    }

    /// <summary>Called whenever a replica may have grown during the ramp: marks the owner converged once it holds all its ids.</summary>
    public void Seen(string owner, long count)
    {
        if (_schedule is null || count < options.PerNode || !_converged.Add(owner)) return;
        var now = NowMsPrecise();
        Line(string.Create(CultureInfo.InvariantCulture, $"CONV {owner} {now:F1}"));
        if (_converged.Count == options.Nodes - 1) Line(string.Create(CultureInfo.InvariantCulture, $"CONVERGED {now:F1}"));
    }

    private readonly Dictionary<string, (long Min, long Max)> _bounds = [];

    /// <summary>
    /// The oldest and newest id of a replica, found by probing from where they were at the last sample (a replica holds a
    /// contiguous run of ids: opens and closes both go in order), so a sample costs a few lookups per change, not a scan of
    /// the replica. <paramref name="contains"/> asks the replica for connection k. Timed, in both modes.
    /// </summary>
    public ReplicaView Probe(string owner, long count, Func<long, bool> contains)
    {
        _samplerTime.Start();
        try
        {
            if (count == 0) return default;
            var (min, max) = _bounds.GetValueOrDefault(owner, (1L, 1L));
            // Oldest: closes only move it up (ids are closed oldest first).
            var limit = max + count + 1_000_000;
            if (contains(min)) { while (min > 1 && contains(min - 1)) min--; }
            else { while (min < limit && !contains(min)) min++; }
            // Newest: opens only move it up.
            max = Math.Max(max, min);
            if (contains(max)) { while (contains(max + 1)) max++; }
            else { while (max > min && !contains(max)) max--; }
            _bounds[owner] = (min, max);
            return new ReplicaView(count, min, max, 0);
        }
        finally { _samplerTime.Stop(); }
    }

    public double SamplerMs => _samplerTime.Elapsed.TotalMilliseconds;

    /// <summary>
    /// How far behind one replica of <paramref name="owner"/>'s ids is at this moment: the age of the oldest change it
    /// does not show yet (the first open after its newest id, or the first close after its oldest id, whichever is
    /// due longer), and how many changes due by now it does not show.
    /// </summary>
    public void Ids(string owner, ReplicaView view)
    {
        if (_schedule is not { } s || view.Count == 0) return;
        var now = NowMsPrecise();
        var openLag = Math.Max(0, now - s.OpenDue(view.MaxK + 1));
        var closeLag = Math.Max(0, now - s.CloseDue(view.MinK));
        var behind = s.OpensDue(now, _churnEndMs) - view.MaxK + (s.ClosesDue(now, _churnEndMs) - (view.MinK - 1));
        // The last field is false when the replica is not one contiguous run of ids (its count differs from the run's length).
        Line(string.Create(CultureInfo.InvariantCulture, $"SAMPLE ids {owner} {Math.Max(openLag, closeLag):F1} {behind} {view.Count} {view.Count == view.MaxK - view.MinK + 1}"));
    }

    /// <summary>How far behind the replica of <paramref name="owner"/>'s totals is: the age of the first open its <c>Accepted</c> does not count.</summary>
    public void Totals(string owner, long accepted)
    {
        if (_schedule is not { } s) return;
        var now = NowMsPrecise();
        var lag = Math.Max(0, now - s.OpenDue(accepted + 1));
        Line(string.Create(CultureInfo.InvariantCulture, $"SAMPLE totals {owner} {lag:F1} {s.OpensDue(now, _churnEndMs) - accepted} 0 True"));
    }

    public static void Own(ReplicaView view) =>
        Line(string.Create(CultureInfo.InvariantCulture, $"OWN {view.Count} {view.Digest}"));

    public static void Replica(string owner, ReplicaView view) =>
        Line(string.Create(CultureInfo.InvariantCulture, $"REPLICA {owner} {view.Count} {view.Digest}"));
}
