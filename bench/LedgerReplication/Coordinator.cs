using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace LedgerReplication;

/// <summary>
/// Starts one child process per node, forms the cluster, and runs the phases with fixed windows:
/// idle (nothing changes) → ramp (every node opens PerNode connections at RampRate; the window is RampWindow from
/// the first open) → steady churn (Steady) → a consistency check. At each window edge it takes a snapshot: every
/// node's CPU, RSS and heap (the node reads its own), the bytes acknowledged on the remoting sockets (<c>ss -ti</c>)
/// and the loopback interface's byte counter (<c>/proc/net/dev</c>). Writes key=value results.
/// </summary>
public sealed class Coordinator(Options o)
{
    private sealed class Child
    {
        public required int Index;
        public required Process Process;
        public required StreamWriter Log;
        public volatile bool Ready;
        public volatile bool Bye;
        public double? Converged;
        public long? Ramped;
        public double? SamplerMs;
        public readonly ConcurrentDictionary<string, string> Snaps = new();
        public readonly ConcurrentQueue<string> Checks = new();
        public volatile bool Checked;
        public volatile bool CheckTimedOut;
        public readonly ConcurrentDictionary<string, double> ConvergedOwner = new();
    }

    private sealed record Snapshot(string Tag, long AtMs, double[] CpuMs, long[] RssKiB, long[] Heap, int[] Gen2, long RemotingBytes, long LoBytes, int Sockets);

    private readonly List<Child> _children = [];
    private readonly ConcurrentQueue<(string Kind, string Owner, double Lag, long Behind)> _samples = new();
    private readonly List<string> _results = [];
    private readonly List<string> _notes = [];
    private long _startedMs;
    private int _gapped;

    public int Run()
    {
        Directory.CreateDirectory(o.Out);
        var label = o.Label.Length > 0 ? o.Label : $"{(o.Mode == Mode.Custom ? "custom" : "ddata")}-{DateTime.UtcNow:yyyyMMddTHHmmss}";
        Put("label", label);
        Put("mode", o.Describe());
        Put("nodes", o.Nodes);
        Put("per_node", o.PerNode);
        Put("ramp_rate_per_s", o.RampRate);
        Put("churn_per_s", o.ChurnRate);
        Put("steady_s", o.Steady.TotalSeconds);
        Put("interval_ms", o.Interval.TotalMilliseconds);
        Put("load_before", File.ReadAllText("/proc/loadavg").Split(' ')[0]);
        try
        {
            _startedMs = Report.NowMs();
            Start(label);
            return Phases();
        }
        catch (Exception e)
        {
            Note($"failed: {e.Message}");
            Console.Error.WriteLine(e);
            return 1;
        }
        finally
        {
            Stop();
            Put("notes", string.Join("; ", _notes));
            var file = Path.Combine(o.Out, label + ".txt");
            File.WriteAllLines(file, _results);
            Console.WriteLine($"results: {file}");
        }
    }

    private void Start(string label)
    {
        var dll = typeof(Program).Assembly.Location;
        var host = Environment.ProcessPath ?? "dotnet";
        for (var i = 0; i < o.Nodes; i++)
        {
            var psi = new ProcessStartInfo(host)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            if (Path.GetFileNameWithoutExtension(host) == "dotnet") psi.ArgumentList.Add(dll);
            psi.ArgumentList.Add("node");
            foreach (var a in (o with { Index = i }).ToArgs()) psi.ArgumentList.Add(a);
            psi.ArgumentList.Add("--index");
            psi.ArgumentList.Add(i.ToString(CultureInfo.InvariantCulture));
            var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start a node");
            var child = new Child { Index = i, Process = process, Log = new StreamWriter(Path.Combine(o.Out, $"{label}.node{i}.log")) { AutoFlush = true } };
            _children.Add(child);
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) OnLine(child, e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (child.Log) child.Log.WriteLine("stderr: " + e.Data); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            Console.WriteLine($"node {i}: pid {process.Id}, port {o.BasePort + i}");
            // The seeds first, so the cluster forms from them.
            if (i < 2) Thread.Sleep(500);
        }
    }

    private void OnLine(Child c, string line)
    {
        lock (c.Log) c.Log.WriteLine(line);
        var p = line.Split(' ');
        switch (p[0])
        {
            case "READY": c.Ready = true; break;
            case "SNAP": c.Snaps[p[1]] = line; break;
            case "RAMPED": c.Ramped = long.Parse(p[1], CultureInfo.InvariantCulture); break;
            case "CONV": c.ConvergedOwner[p[1]] = D(p[2]); break;
            case "CONVERGED": c.Converged = D(p[1]); break;
            case "SAMPLE":
                _samples.Enqueue((p[1], p[2], D(p[3]), long.Parse(p[4], CultureInfo.InvariantCulture)));
                if (p.Length > 6 && p[6] == "False") Interlocked.Increment(ref _gapped);
                break;
            case "OWN" or "REPLICA": c.Checks.Enqueue(line); break;
            case "CHECKED":
                c.CheckTimedOut = p.Length > 1;
                c.Checked = true;
                break;
            case "SAMPLER": c.SamplerMs = D(p[1]); break;
            case "BYE": c.Bye = true; break;
            case "ERROR": Note($"node {c.Index}: {line}"); break;
        }
    }

    private int Phases()
    {
        if (!WaitFor(() => _children.All(c => c.Ready), TimeSpan.FromSeconds(120))) throw new TimeoutException("the cluster did not form");
        var formed = Report.NowMs();
        Console.WriteLine($"cluster of {o.Nodes} up");
        Thread.Sleep(3000);

        var s0 = Snap("idle0");
        Thread.Sleep(o.Idle);
        var s1 = Snap("idle1");
        Window("idle", s0, s1);
        Memory("idle", s1);

        // Ramp: every node starts opening at the same wall-clock moment.
        var rampStart = Report.NowMs() + 300;
        Tell($"RAMP {rampStart}");
        var rampEnd = rampStart + o.RampWindow.TotalMilliseconds;
        var lastOpen = rampStart + (o.PerNode - 1) * 1000.0 / o.RampRate;
        Console.WriteLine("ramp");
        SleepUntil(rampEnd);
        var s2 = Snap("ramp");
        Window("ramp", s1, s2);
        Memory("ramp", s2);
        if (!_children.All(c => c.Converged is not null))
        {
            Note($"not converged {o.RampWindow.TotalSeconds:F0} s after the first open; churn waits for it (up to 120 s)");
            WaitFor(() => _children.All(c => c.Converged is not null), TimeSpan.FromSeconds(120));
        }
        var converged = _children.Select(c => c.Converged).ToArray();
        if (converged.All(c => c is not null))
        {
            var last = converged.Max(c => c!.Value);
            Put("converge_ms_from_first_open", last - rampStart);
            Put("converge_ms_after_last_open", last - lastOpen);
            var pairs = _children.SelectMany(c => c.ConvergedOwner.Values).Select(t => t - lastOpen).OrderBy(x => x).ToArray();
            Put("converge_pair_ms_after_last_open_min", pairs[0]);
            Put("converge_pair_ms_after_last_open_p50", Percentile(pairs, 0.5));
            Put("converge_pair_ms_after_last_open_max", pairs[^1]);
        }
        else
        {
            Put("converge_ms_from_first_open", "never");
            Note("never converged");
        }
        var ramped = _children.Where(c => c.Ramped is not null).Select(c => c.Ramped!.Value - rampStart).DefaultIfEmpty(-1).Max();
        Put("ramp_opens_done_ms", ramped);

        // Steady churn.
        var churnStart = Math.Max(Report.NowMs(), (long)s2.AtMs) + 300;
        Tell($"CHURN {churnStart}");
        var churnEnd = churnStart + o.Steady.TotalMilliseconds;
        var s2b = s2;
        if (churnStart - s2.AtMs > 1000) s2b = Snap("churn0");
        Console.WriteLine("churn");
        SleepUntil(churnEnd);
        var s3 = Snap("churn");
        Window("steady", s2b, s3);
        Memory("steady", s3);
        Put("gen2_gcs_steady_total", s3.Gen2.Zip(s2b.Gen2, (a, b) => a - b).Sum());
        Put("remoting_sockets", s3.Sockets);
        Lags("ids");
        Lags("totals");

        // After the last change: how long until every replica equals its owner's ledger.
        var consistentAfter = -1.0;
        var checkUntil = churnEnd + 30_000;
        while (Report.NowMs() < checkUntil)
        {
            var at = Report.NowMs();
            if (Consistent(out var detail))
            {
                consistentAfter = at - churnEnd;
                break;
            }
            Console.WriteLine($"not yet consistent {at - churnEnd:F0} ms after the churn: {detail}");
            Thread.Sleep(200);
        }
        Put("consistent_ms_after_churn", consistentAfter < 0 ? "not within 30 s" : consistentAfter.ToString("F0", CultureInfo.InvariantCulture));
        var s4 = Snap("end", gc: true);

        Put("heap_live_end_bytes_mean", s4.Heap.Average());
        Put("heap_live_end_bytes_max", s4.Heap.Max());
        Put("rss_end_kib_mean", s4.RssKiB.Average());
        Put("cluster_formed_s", (formed - _startedMs) / 1000.0);
        return 0;
    }

    private void Lags(string kind)
    {
        var samples = _samples.Where(s => s.Kind == kind).ToArray();
        if (samples.Length == 0)
        {
            Put($"lag_{kind}_samples", 0);
            return;
        }
        var lags = samples.Select(s => s.Lag).OrderBy(x => x).ToArray();
        var behind = samples.Select(s => (double)s.Behind).OrderBy(x => x).ToArray();
        Put($"lag_{kind}_samples", lags.Length);
        Put($"lag_{kind}_ms_mean", lags.Average());
        Put($"lag_{kind}_ms_p50", Percentile(lags, 0.5));
        Put($"lag_{kind}_ms_p90", Percentile(lags, 0.9));
        Put($"lag_{kind}_ms_p99", Percentile(lags, 0.99));
        Put($"lag_{kind}_ms_max", lags[^1]);
        Put($"behind_{kind}_ops_mean", behind.Average());
        Put($"behind_{kind}_ops_max", behind[^1]);
        if (kind == "ids") Put("samples_not_contiguous", _gapped);
    }

    private bool Consistent(out string detail)
    {
        foreach (var c in _children)
        {
            c.Checked = false;
            c.Checks.Clear();
        }
        Tell("CHECK");
        WaitFor(() => _children.All(c => c.Checked), TimeSpan.FromSeconds(20));
        var own = new Dictionary<string, string>();
        foreach (var c in _children)
            foreach (var l in c.Checks.Where(l => l.StartsWith("OWN ", StringComparison.Ordinal)))
                own[o.NodeName(c.Index)] = l[4..];
        var bad = new List<string>();
        foreach (var c in _children)
            foreach (var l in c.Checks.Where(l => l.StartsWith("REPLICA ", StringComparison.Ordinal)))
            {
                var p = l.Split(' ');
                if (!own.TryGetValue(p[1], out var truth) || truth != $"{p[2]} {p[3]}")
                    bad.Add($"node{c.Index}'s replica of {p[1]}: {p[2]} ids (owner {(truth ?? "?").Split(' ')[0]})");
            }
        var late = _children.Count(c => !c.Checked || c.CheckTimedOut);
        detail = (bad.Count == 0 ? "" : $"{bad.Count} replicas differ, e.g. {bad[0]}") + (late == 0 ? "" : $" {late} nodes did not answer every read in time");
        return bad.Count == 0 && late == 0;
    }

    private void Window(string name, Snapshot a, Snapshot b)
    {
        var seconds = (b.AtMs - a.AtMs) / 1000.0;
        var cpu = b.CpuMs.Zip(a.CpuMs, (x, y) => (x - y) / 1000.0).ToArray();
        Put($"{name}_window_s", seconds);
        Put($"cpu_{name}_s_total", cpu.Sum());
        Put($"cpu_{name}_s_per_node", string.Join("/", cpu.Select(x => x.ToString("F2", CultureInfo.InvariantCulture))));
        Put($"cpu_{name}_core_share_total", cpu.Sum() / seconds);
        Put($"bytes_{name}_remoting", b.RemotingBytes - a.RemotingBytes);
        Put($"bytes_{name}_lo", b.LoBytes - a.LoBytes);
        Put($"bytes_{name}_remoting_per_s", (b.RemotingBytes - a.RemotingBytes) / seconds);
    }

    private void Memory(string at, Snapshot s)
    {
        Put($"rss_{at}_kib_mean", s.RssKiB.Average());
        Put($"rss_{at}_kib_max", s.RssKiB.Max());
        Put($"heap_{at}_bytes_mean", s.Heap.Average());
    }

    private Snapshot Snap(string tag, bool gc = false)
    {
        foreach (var c in _children) c.Snaps.TryRemove(tag, out _);
        var (remoting, sockets) = RemotingBytes();
        var lo = LoBytes();
        Tell(gc ? $"SNAP {tag} gc" : $"SNAP {tag}");
        if (!WaitFor(() => _children.All(c => c.Snaps.ContainsKey(tag)), TimeSpan.FromSeconds(30)))
            throw new TimeoutException($"snapshot {tag} not answered");
        var lines = _children.Select(c => c.Snaps[tag].Split(' ')).ToArray();
        var at = (long)lines.Average(p => long.Parse(p[2], CultureInfo.InvariantCulture));
        var snap = new Snapshot(tag, at,
            lines.Select(p => D(p[3])).ToArray(),
            lines.Select(p => long.Parse(p[4], CultureInfo.InvariantCulture)).ToArray(),
            lines.Select(p => long.Parse(p[5], CultureInfo.InvariantCulture)).ToArray(),
            lines.Select(p => int.Parse(p[8], CultureInfo.InvariantCulture)).ToArray(),
            remoting, lo, sockets);
        Console.WriteLine($"snapshot {tag}: cpu {snap.CpuMs.Sum() / 1000:F2} s, rss {snap.RssKiB.Average():F0} KiB/node, remoting {remoting} B on {sockets} sockets");
        return snap;
    }

    /// <summary>
    /// Sum of <c>bytes_acked</c> over the established TCP sockets with one end on a node's remoting port: each byte sent
    /// between two nodes counted once, by the socket that sent it (TCP payload, so Akka's framing is in, IP/TCP headers
    /// are not).
    /// </summary>
    private (long Bytes, int Sockets) RemotingBytes()
    {
        var lo = o.BasePort;
        var hi = o.BasePort + o.Nodes - 1;
        var psi = new ProcessStartInfo("ss", ["-tinH", $"( sport >= :{lo} and sport <= :{hi} ) or ( dport >= :{lo} and dport <= :{hi} )"])
        {
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        using var ss = Process.Start(psi)!;
        var text = ss.StandardOutput.ReadToEnd();
        ss.WaitForExit();
        long sum = 0;
        var sockets = 0;
        foreach (var token in text.Split([' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries))
        {
            if (token.StartsWith("bytes_acked:", StringComparison.Ordinal))
            {
                sum += long.Parse(token["bytes_acked:".Length..], CultureInfo.InvariantCulture);
                sockets++;
            }
        }
        return (sum, sockets);
    }

    /// <summary>Bytes received on the loopback interface (/proc/net/dev): everything on lo, with headers, from any process.</summary>
    private static long LoBytes()
    {
        foreach (var line in File.ReadLines("/proc/net/dev"))
        {
            var t = line.Trim();
            if (!t.StartsWith("lo:", StringComparison.Ordinal)) continue;
            return long.Parse(t[3..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
        }
        return 0;
    }

    private void Tell(string command)
    {
        foreach (var c in _children)
        {
            if (c.Process.HasExited) throw new InvalidOperationException($"node {c.Index} exited ({c.Process.ExitCode})");
            c.Process.StandardInput.WriteLine(command);
            c.Process.StandardInput.Flush();
        }
    }

    private void Stop()
    {
        foreach (var c in _children.Where(c => !c.Process.HasExited))
        {
            try
            {
                c.Process.StandardInput.WriteLine("STOP");
                c.Process.StandardInput.Flush();
            }
            catch (IOException) { }
        }
        foreach (var c in _children)
        {
            if (!c.Process.WaitForExit(20_000))
            {
                Console.WriteLine($"node {c.Index} (pid {c.Process.Id}) did not stop: killing it");
                c.Process.Kill();
                c.Process.WaitForExit(5000);
            }
        }
        var sampler = _children.Select(c => c.SamplerMs ?? 0).ToArray();
        Put("sampler_scan_ms_per_node_mean", sampler.Average());
        foreach (var c in _children) c.Log.Dispose();
    }

    private static bool WaitFor(Func<bool> condition, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > until) return false;
            Thread.Sleep(20);
        }
        return true;
    }

    private static void SleepUntil(double unixMs)
    {
        var wait = unixMs - Report.NowMs();
        if (wait > 0) Thread.Sleep(TimeSpan.FromMilliseconds(wait));
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    private static double D(string s) => double.Parse(s, CultureInfo.InvariantCulture);

    private void Note(string note)
    {
        _notes.Add(note);
        Console.WriteLine("note: " + note);
    }

    private void Put(string key, object value)
    {
        var text = value switch
        {
            double d => d.ToString("0.###", CultureInfo.InvariantCulture),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        };
        var line = $"{key}={text}";
        lock (_results) _results.Add(line);
        Console.WriteLine(line);
    }
}
