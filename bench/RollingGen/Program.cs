using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using RollingGen;
using Supervisor.Client;
using Supervisor.Configuration;
using Supervisor.Monitoring;

// Rolling-restart generator (issue 16): see Options.Usage and bench/README.md ("a rolling restart of a 3-node cluster").
if (args is ["--help"] or ["-h"])
{
    Console.WriteLine(Options.Usage);
    return 0;
}
Options options;
try
{
    options = Options.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine($"rollinggen: {e.Message}");
    return 2;
}

if (options.Analyze is { } dir)
{
    // Report again on a finished run's files.
    var old = Recorder.Record.ReadFiles(Path.Combine(dir, "events.csv"), Path.Combine(dir, "held.csv"));
    var nodeLogs = Enumerable.Range(1, options.Endpoints.Count).Select(n => Path.Combine(dir, $"node{n}.log")).ToArray();
    var again = new Report(options, old, Marks.Read(Path.Combine(dir, "marks.txt")), Report.ReadServerAccepts(nodeLogs));
    again.Write(Console.Out);
    return again.Passed ? 0 : 1;
}

var stop = new TaskCompletionSource();
using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stop.TrySetResult();
});
using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
{
    context.Cancel = true;
    stop.TrySetResult();
});

var system = ActorSystem.Create("rolling", ConfigurationFactory.ParseString("""
    akka.loglevel = WARNING
    akka.log-dead-letters = off
    akka.log-dead-letters-during-shutdown = off
    """));
using var metrics = new SupervisorMetrics();
var services = new ClientServices(ActorRefs.Nobody, metrics, NullLogger.Instance);
var clock = new Clock();
var recorder = system.ActorOf(Props.Create(() => new Recorder(options.Endpoints, options.Clients, clock)), "recorder");
var settings = ClientSettings.Defaults.WithEndpoints(options.Endpoints) with
{
    HeartbeatInterval = options.Interval,
    HeartbeatTimeout = options.Timeout,
    HomeReturnInterval = options.HomeReturn,
    BufferSize = 0,
};

Console.WriteLine($"rollinggen: {options.Clients} clients over {string.Join(", ", options.Endpoints)}; heartbeat {options.Interval.ToHocon()}, " +
                  $"home-return-interval {options.HomeReturn?.ToHocon() ?? "off"}, ramp {options.RampRate}/s");
var ramp = Stopwatch.StartNew();
for (var i = 0; i < options.Clients && !stop.Task.IsCompleted; i++)
{
    system.ActorOf(HeartbeatClient.Props($"c{i}", settings, services, [recorder]), $"c{i}");
    var due = TimeSpan.FromSeconds((i + 1) / (double)options.RampRate);
    if (due > ramp.Elapsed) await Task.Delay(due - ramp.Elapsed);
}
var held = 0;
while (!stop.Task.IsCompleted && ramp.Elapsed < TimeSpan.FromSeconds(120))
{
    held = (await recorder.Ask<int[]>(Recorder.GetHeld.Instance, TimeSpan.FromSeconds(10))).Sum();
    if (held == options.Clients) break;
    await Task.Delay(200);
}
var perNode = await recorder.Ask<int[]>(Recorder.GetHeld.Instance, TimeSpan.FromSeconds(10));
Console.WriteLine($"ramp: {held}/{options.Clients} held after {ramp.Elapsed.TotalSeconds:F1} s; per node {string.Join(" ", perNode)}");

await stop.Task;
var record = await recorder.Ask<Recorder.Record>(Recorder.GetRecord.Instance, TimeSpan.FromSeconds(30));
var marks = options.Marks is { } file && File.Exists(file) ? Marks.Read(file) : [];
var serverAccepts = options.NodeLogs is { Count: > 0 } logs ? Report.ReadServerAccepts(logs) : null;
var report = new Report(options, record, marks, serverAccepts);
report.Write(Console.Out);
if (options.EventsFile is { } events) record.WriteEvents(events, options.Endpoints.Count);
if (options.HeldFile is { } heldFile) record.WriteHeld(heldFile);
await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance).WaitAsync(TimeSpan.FromSeconds(20));
return report.Passed ? 0 : 1;

namespace RollingGen
{
    /// <summary>Wall-clock milliseconds (Unix), read off a monotonic clock started at a known wall time: comparable with <c>date +%s%3N</c>.</summary>
    internal sealed class Clock
    {
        private readonly double _start = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        private readonly Stopwatch _watch = Stopwatch.StartNew();

        public double NowMs => _start + _watch.Elapsed.TotalMilliseconds;
    }

    internal sealed record Options(
        IReadOnlyList<HostPort> Endpoints,
        int Clients,
        TimeSpan Interval,
        TimeSpan Timeout,
        TimeSpan? HomeReturn,
        int RampRate,
        TimeSpan Spread,
        string? Marks,
        string? EventsFile,
        string? HeldFile,
        IReadOnlyList<string>? NodeLogs,
        string? Analyze)
    {
        public const string Usage = """
            RollingGen --endpoints H:P,H:P,... [--clients 15000] [--interval 10s] [--timeout 30s] [--home-return 10s|off]
                       [--ramp-rate 1000] [--spread 5s] [--marks FILE] [--events FILE] [--held FILE] [--node-logs F1,F2,...]
            RollingGen --analyze bench/results/rolling-STAMP --endpoints ... --clients N [--spread 5s]
            Starts --clients of the library's heartbeat clients, each given every endpoint (client.endpoints), at
            --ramp-rate per second; prints "ramp: ..." once all are connected; runs until SIGTERM, then reads the
            restart marks ("<unix-ms> term|exited|started|up|end <node>", one a line, written by bench/run-rolling.sh)
            and prints the report. --spread: the nodes' shutdown.reconnect-hint.spread (the share's time base).
            --node-logs: the nodes' logs in --endpoints order, read at the end for the nodes' own accept times.
            --analyze: no clients; report again on a finished run's directory (events.csv, held.csv, marks.txt, nodeN.log).
            Exit 0 when every check passed, 1 when one failed.
            """;

        public static Options Parse(string[] args)
        {
            var values = new Dictionary<string, string>();
            for (var i = 0; i < args.Length; i += 2)
            {
                if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                    throw new ArgumentException($"expected --option value at '{args[i]}'");
                values[args[i][2..]] = args[i + 1];
            }
            string Get(string key, string fallback) => values.GetValueOrDefault(key, fallback);
            var endpoints = Get("endpoints", "").Split(',', StringSplitOptions.RemoveEmptyEntries)
                .Select(e => HostPort.Parse(e.Trim(), "--endpoints")).ToArray();
            if (endpoints.Length == 0) throw new ArgumentException("--endpoints is required");
            var home = Get("home-return", "10s");
            return new Options(endpoints, int.Parse(Get("clients", "15000"), CultureInfo.InvariantCulture),
                Duration(Get("interval", "10s")), Duration(Get("timeout", "30s")), home == "off" ? null : Duration(home),
                int.Parse(Get("ramp-rate", "1000"), CultureInfo.InvariantCulture), Duration(Get("spread", "5s")),
                values.GetValueOrDefault("marks"), values.GetValueOrDefault("events"), values.GetValueOrDefault("held"),
                values.GetValueOrDefault("node-logs")?.Split(',', StringSplitOptions.RemoveEmptyEntries), values.GetValueOrDefault("analyze"));
        }

        private static TimeSpan Duration(string text) => text switch
        {
            _ when text.EndsWith("ms", StringComparison.Ordinal) => TimeSpan.FromMilliseconds(double.Parse(text[..^2], CultureInfo.InvariantCulture)),
            _ when text.EndsWith('s') => TimeSpan.FromSeconds(double.Parse(text[..^1], CultureInfo.InvariantCulture)),
            _ when text.EndsWith('m') => TimeSpan.FromMinutes(double.Parse(text[..^1], CultureInfo.InvariantCulture)),
            _ => throw new FormatException($"'{text}' is not a duration (500ms, 10s, 2m)"),
        };
    }

    /// <summary>One line of the marks file: when the script began or saw a step of one node's restart.</summary>
    internal sealed record Mark(double AtMs, string Kind, int Node);

    internal static class Marks
    {
        public static IReadOnlyList<Mark> Read(string file) => File.ReadAllLines(file)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(parts => parts.Length == 3)
            .Select(parts => new Mark(double.Parse(parts[0], CultureInfo.InvariantCulture), parts[1], int.Parse(parts[2], CultureInfo.InvariantCulture)))
            .ToArray();
    }
}
