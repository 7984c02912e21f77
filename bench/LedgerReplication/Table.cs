using System.Globalization;

namespace LedgerReplication;

/// <summary>Prints result files (key=value lines) as one markdown table: a row per figure, a column per run.</summary>
public static class Table
{
    private static readonly (string Key, string Title, string Unit, double Scale)[] Rows =
    [
        ("converge_ms_from_first_open", "convergence: every replica holds all ids, from the first open", "ms", 1),
        ("converge_ms_after_last_open", "convergence, after the last open (due at (per-node − 1) / ramp-rate: 1,583 ms at 19,000)", "ms", 1),
        ("converge_pair_ms_after_last_open_p50", "one replica of one node complete, after the last open: p50", "ms", 1),
        ("converge_pair_ms_after_last_open_max", "… max", "ms", 1),
        ("lag_ids_ms_p50", "churn staleness of the ids: p50", "ms", 1),
        ("lag_ids_ms_p99", "… p99", "ms", 1),
        ("lag_ids_ms_max", "… max", "ms", 1),
        ("behind_ids_ops_mean", "changes a replica misses at a sample: mean", "ops", 1),
        ("behind_ids_ops_max", "… max", "ops", 1),
        ("lag_totals_ms_p50", "churn staleness of the totals: p50", "ms", 1),
        ("lag_totals_ms_p99", "… p99", "ms", 1),
        ("lag_totals_ms_max", "… max", "ms", 1),
        ("consistent_ms_after_churn", "every replica equal to its owner, after the churn stops", "ms", 1),
        ("cpu_idle_s_total", "CPU, idle window (all nodes)", "s", 1),
        ("idle_window_s", "… window", "s", 1),
        ("cpu_ramp_s_total", "CPU, ramp window (all nodes)", "s", 1),
        ("ramp_window_s", "… window", "s", 1),
        ("cpu_ramp_s_per_node", "… per node", "s", 1),
        ("cpu_steady_s_total", "CPU, steady churn (all nodes)", "s", 1),
        ("steady_window_s", "… window", "s", 1),
        ("cpu_steady_core_share_total", "… share of one core", "%", 100),
        ("bytes_idle_remoting", "remoting bytes, idle window", "MB", 1e-6),
        ("bytes_ramp_remoting", "remoting bytes, ramp window", "MB", 1e-6),
        ("bytes_steady_remoting", "remoting bytes, steady churn", "MB", 1e-6),
        ("bytes_steady_remoting_per_s", "… per second", "kB/s", 1e-3),
        ("bytes_ramp_lo", "lo interface bytes, ramp window", "MB", 1e-6),
        ("bytes_steady_lo", "lo interface bytes, steady churn", "MB", 1e-6),
        ("rss_idle_kib_mean", "RSS per node before the ramp (mean)", "MiB", 1 / 1024.0),
        ("rss_ramp_kib_mean", "RSS per node after the ramp (mean)", "MiB", 1 / 1024.0),
        ("rss_steady_kib_mean", "RSS per node after the churn (mean)", "MiB", 1 / 1024.0),
        ("rss_steady_kib_max", "… max", "MiB", 1 / 1024.0),
        ("heap_steady_bytes_mean", "managed heap per node after the churn (mean, no forced GC)", "MiB", 1 / 1048576.0),
        ("heap_live_end_bytes_mean", "managed heap per node, live (forced GC), end (mean)", "MiB", 1 / 1048576.0),
        ("gen2_gcs_steady_total", "gen-2 GCs during the churn (all nodes)", "", 1),
        ("sampler_scan_ms_per_node_mean", "sampler's replica scans (in the CPU above), per node", "ms", 1),
        ("load_before", "load average (1 min) before the run", "", 1),
        ("others_running_before", "other cluster benchmark running (pids), before", "", 1),
        ("others_running_after", "… after", "", 1),
    ];

    public static int Print(string[] files)
    {
        var runs = files.Select(f => File.ReadAllLines(f).Where(l => l.Contains('='))
            .Select(l => (Key: l[..l.IndexOf('=')], Value: l[(l.IndexOf('=') + 1)..]))
            .GroupBy(kv => kv.Key).ToDictionary(g => g.Key, g => g.Last().Value)).ToArray();
        Console.WriteLine("| figure | unit | " + string.Join(" | ", runs.Select(r => r.GetValueOrDefault("label", "?"))) + " |");
        Console.WriteLine("|---|---|" + string.Concat(runs.Select(_ => "---:|")));
        Console.WriteLine("| mode | | " + string.Join(" | ", runs.Select(r => r.GetValueOrDefault("mode", "?"))) + " |");
        foreach (var (key, title, unit, scale) in Rows)
        {
            var cells = runs.Select(r => Format(r.GetValueOrDefault(key), scale));
            Console.WriteLine($"| {title} | {unit} | {string.Join(" | ", cells)} |");
        }
        var notes = runs.Select(r => (r.GetValueOrDefault("label", "?"), r.GetValueOrDefault("notes", ""))).Where(n => n.Item2.Length > 0).ToArray();
        foreach (var (label, note) in notes) Console.WriteLine($"\n{label}: {note}");
        return 0;
    }

    private static string Format(string? value, double scale)
    {
        if (value is null) return "–";
        if (value.Contains('/'))
            return string.Join(" / ", value.Split('/').Select(v => Format(v, scale)));
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return value;
        var x = d * scale;
        var digits = Math.Abs(x) >= 100 ? 0 : Math.Abs(x) >= 10 ? 1 : 2;
        return x.ToString("N" + digits, CultureInfo.InvariantCulture);
    }
}
