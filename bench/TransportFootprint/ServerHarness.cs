using System.Diagnostics;
using System.Globalization;
using System.Runtime;

namespace TransportFootprint;

internal static class ServerHarness
{
    private const int WarmupConnections = 32;

    public static async Task<int> RunAsync(string transport, int n, int port, TimeSpan timeout)
    {
        IBenchServer server = transport switch
        {
            "raw-socket" => new RawSocketServer(),
            "akka-streams" => new AkkaStreamsServer(),
            "akka-io" => new AkkaIoServer(),
            _ => throw new ArgumentException($"unknown transport '{transport}'", nameof(transport)),
        };

        var stats = new Stats();
        int boundPort = await server.StartAsync(port, stats);

        // Warm-up in-process: JIT the accept/receive/send paths (and the client code) with a few
        // connections, close them, so the baseline below already includes code and one-off structures.
        int warm = await Client.WarmupAsync(boundPort, WarmupConnections);
        var deadline = Stopwatch.StartNew();
        while (stats.Open > 0 && deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(50);
        }
        await Task.Delay(500);

        Snapshot baseline = Measure.Take();
        stats.StartMeasuring(n);
        Console.WriteLine($"BASELINE transport={transport} warmupOk={warm}/{WarmupConnections} openAfterWarmup={stats.Open} " +
                          $"heap={baseline.ManagedHeapBytes} rss={baseline.RssBytes} threads={baseline.Threads} " +
                          $"gc={(GCSettings.IsServerGC ? "server" : "workstation")}/{GCSettings.LatencyMode}");
        Console.WriteLine($"READY port={boundPort}");
        Console.Out.Flush();

        bool reached = await Task.WhenAny(stats.TargetReached.Task, Task.Delay(timeout)) == stats.TargetReached.Task;

        // Let in-flight completions (last writes, actor mailboxes) settle before measuring the idle state.
        await Task.Delay(TimeSpan.FromSeconds(3));
        Snapshot loaded = Measure.Take();
        long open = stats.Open;

        double acceptCpuMs = reached ? (stats.CpuAtTarget - stats.CpuAtFirstAccept).TotalMilliseconds : double.NaN;
        double acceptWallMs = reached ? Stopwatch.GetElapsedTime(stats.TicksAtFirstAccept, stats.TicksAtTarget).TotalMilliseconds : double.NaN;

        var inv = CultureInfo.InvariantCulture;
        string Fmt(double v) => v.ToString("F1", inv);
        Console.WriteLine(string.Join(' ',
            "RESULT",
            $"transport={transport}",
            $"n={n}",
            $"reached={(reached ? "yes" : "NO")}",
            $"answered={stats.Answered}",
            $"open={open}",
            $"heapBase={baseline.ManagedHeapBytes}",
            $"heapN={loaded.ManagedHeapBytes}",
            $"rssBase={baseline.RssBytes}",
            $"rssN={loaded.RssBytes}",
            $"threadsBase={baseline.Threads}",
            $"threadsN={loaded.Threads}",
            $"heapPerConn={Fmt((loaded.ManagedHeapBytes - baseline.ManagedHeapBytes) / (double)n)}",
            $"rssPerConn={Fmt((loaded.RssBytes - baseline.RssBytes) / (double)n)}",
            $"acceptCpuMs={Fmt(acceptCpuMs)}",
            $"acceptWallMs={Fmt(acceptWallMs)}",
            $"cpuPerAcceptUs={Fmt(acceptCpuMs * 1000.0 / n)}"));
        Console.Out.Flush();

        // Exiting closes every connection; bound the shutdown so the process always ends.
        await Task.WhenAny(server.DisposeAsync().AsTask(), Task.Delay(TimeSpan.FromSeconds(15)));
        return reached && open == n ? 0 : 1;
    }
}
