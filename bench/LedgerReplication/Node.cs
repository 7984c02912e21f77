using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using Akka.Configuration;

namespace LedgerReplication;

/// <summary>
/// Opens and closes this node's connections on the schedule: every 5 ms whatever is due, one message per open or
/// close to the ledger actor, as the product's registry tells its <c>ClusterRegistry</c> of each one.
/// </summary>
public sealed class Driver : ReceiveActor, IWithTimers
{
    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }

    private Schedule? _schedule;
    private double _churnEndMs = double.PositiveInfinity;
    private long _opened, _closed;

    public ITimerScheduler Timers { get; set; } = null!;

    public Driver(Options options, IActorRef ledger)
    {
        var node = options.NodeName(options.Index);
        Receive<StartRamp>(r =>
        {
            _schedule = r.Schedule;
            Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromMilliseconds(5));
        });
        Receive<StartChurn>(c =>
        {
            _schedule = c.Schedule;
            _churnEndMs = c.ChurnEndMs;
        });
        Receive<Tick>(_ =>
        {
            if (_schedule is not { } s) return;
            var now = (double)Report.NowMs();
            var opens = s.OpensDue(now, _churnEndMs);
            while (_opened < opens) ledger.Tell(new Open(s.Entry(++_opened, node)));
            var closes = s.ClosesDue(now, _churnEndMs);
            while (_closed < closes) ledger.Tell(new Close(Schedule.Id(++_closed, node)));
            if (_opened == options.PerNode && s.ChurnStartMs == long.MaxValue && !_rampReported)
            {
                _rampReported = true;
                Report.Line(string.Create(CultureInfo.InvariantCulture, $"RAMPED {Report.NowMs()}"));
            }
        });
    }

    private bool _rampReported;
}

/// <summary>
/// One cluster node in its own process, driven by the coordinator over stdin (one command a line) and answering on
/// stdout: READY, SNAP, RAMPED, CONV/CONVERGED, SAMPLE, OWN/REPLICA/CHECKED, BYE.
/// </summary>
public static class Node
{
    public const string SystemName = "bench";

    public static Config Hocon(Options o)
    {
        var port = o.BasePort + o.Index;
        var seeds = string.Join(", ", Enumerable.Range(0, Math.Min(2, o.Nodes)).Select(i => $"\"akka.tcp://{SystemName}@127.0.0.1:{o.BasePort + i}\""));
        // The product's cluster settings (hocon/supervisor.conf and ClusterSettings.AkkaHocon): 1 s / 3 s failure
        // detector, keep-majority, 64 MiB frames; Akka's defaults otherwise (Newtonsoft JSON for the product's records).
        return ConfigurationFactory.ParseString($$"""
            akka {
              loglevel = WARNING
              stdout-loglevel = WARNING
              actor.provider = cluster
              remote.dot-netty.tcp {
                hostname = "127.0.0.1"
                port = {{port}}
                maximum-frame-size = 64MiB
              }
              cluster {
                seed-nodes = [{{seeds}}]
                failure-detector {
                  heartbeat-interval = 1s
                  acceptable-heartbeat-pause = 3s
                }
                log-info = off
                downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
                split-brain-resolver.active-strategy = keep-majority
                distributed-data.delta-crdt.enabled = {{(o.Delta ? "on" : "off")}}
              }
            }
            {{(o.ProductWire ? WireHocon() : "")}}
            {{(o.MaxDeltaSize > 0 ? $"akka.cluster.distributed-data.delta-crdt.max-delta-size = {o.MaxDeltaSize}" : "")}}
            {{(o.GossipInterval > TimeSpan.Zero ? $"akka.cluster.distributed-data.gossip-interval = {(long)o.GossipInterval.TotalMilliseconds}ms" : "")}}
            {{o.ExtraHocon}}
            """);
    }

    /// <summary>Binds the product's <c>WireSerializer</c> to every type it lists, as <c>ClusterHosting</c> does.</summary>
    private static string WireHocon()
    {
        var bindings = string.Join("\n", Supervisor.Cluster.WireSerializer.Types.Values.Select(t =>
            $"\"{t.FullName}, {t.Assembly.GetName().Name}\" = {Supervisor.Cluster.WireSerializer.Name}"));
        return $$$"""
            akka.actor {
              serializers.{{{Supervisor.Cluster.WireSerializer.Name}}} = "{{{typeof(Supervisor.Cluster.WireSerializer).AssemblyQualifiedName}}}"
              serialization-identifiers."{{{typeof(Supervisor.Cluster.WireSerializer).AssemblyQualifiedName}}}" = {{{Supervisor.Cluster.WireSerializer.Id}}}
              serialization-bindings {
            {{{bindings}}}
              }
            }
            """;
    }

    public static int Run(Options o)
    {
        var system = ActorSystem.Create(SystemName, Hocon(o));
        var report = new Report(o);
        var probe = new Supervisor.Messages.Protocol.ClusterProtocol.LedgerBatch("n", 1, 1, false, [], [], Supervisor.Messages.Protocol.RegistryProtocol.Stats.Empty);
        Report.Line($"WIRE LedgerBatch -> {system.Serialization.FindSerializerFor(probe).GetType().Name}");
        var ledger = o.Mode == Mode.Custom
            ? system.ActorOf(Props.Create(() => new CustomLedger(o, report)), CustomLedger.Name)
            : system.ActorOf(Props.Create(() => new DDataLedger(o, report)), CustomLedger.Name);
        var driver = system.ActorOf(Props.Create(() => new Driver(o, ledger)), "driver");
        var cluster = Akka.Cluster.Cluster.Get(system);

        // READY: every node up, and (custom) a complete replica of every other node.
        var readyBy = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            var up = cluster.State.Members.Count(m => m.Status == Akka.Cluster.MemberStatus.Up);
            if (up == o.Nodes && ledger.Ask<bool>(IsReady.Instance, TimeSpan.FromSeconds(5)).ContinueWith(t => t.IsCompletedSuccessfully && t.Result).Result) break;
            if (DateTime.UtcNow > readyBy)
            {
                Report.Line($"ERROR not ready: {up} of {o.Nodes} up");
                break;
            }
            Thread.Sleep(100);
        }
        Report.Line("READY");

        Schedule? schedule = null;
        string? line;
        while ((line = Console.In.ReadLine()) is not null)
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0) continue;
            switch (parts[0])
            {
                case "SNAP":
                    Report.Line(Snap(parts[1], forceGc: parts.Length > 2 && parts[2] == "gc"));
                    break;
                case "RAMP":
                    schedule = new Schedule(o, long.Parse(parts[1], CultureInfo.InvariantCulture), long.MaxValue);
                    ledger.Tell(new StartRamp(schedule));
                    driver.Tell(new StartRamp(schedule));
                    break;
                case "CHURN" when schedule is not null:
                {
                    var start = long.Parse(parts[1], CultureInfo.InvariantCulture);
                    var end = start + o.Steady.TotalMilliseconds;
                    schedule = new Schedule(o, schedule.RampStartMs, start);
                    ledger.Tell(new StartChurn(schedule, end));
                    driver.Tell(new StartChurn(schedule, end));
                    // Samples at random moments (gaps uniform in [0.5, 1.5] periods, each node its own): a fixed period would
                    // meet the 250 ms replication tick at one phase all run long and bias the staleness by up to a tick.
                    var samples = new Thread(() =>
                    {
                        var random = new Random(o.Index * 7919 + (int)(start % 100_000));
                        var period = o.Sample.TotalMilliseconds;
                        for (var t = start + period * random.NextDouble(); t < end; t += period * (0.5 + random.NextDouble()))
                        {
                            var wait = t - Report.NowMs();
                            if (wait > 0) Thread.Sleep(TimeSpan.FromMilliseconds(wait));
                            ledger.Tell(TakeSample.Instance);
                        }
                    }) { IsBackground = true };
                    samples.Start();
                    break;
                }
                case "CHECK":
                    try
                    {
                        ledger.Ask<bool>(Check.Instance, TimeSpan.FromSeconds(10)).Wait();
                        Report.Line("CHECKED");
                    }
                    catch (AggregateException)
                    {
                        // The replicator (ddata) did not answer every read in time: the coordinator counts this node as not consistent yet.
                        Report.Line("CHECKED timeout");
                    }
                    break;
                case "STOP":
                    Report.Line(string.Create(CultureInfo.InvariantCulture, $"SAMPLER {report.SamplerMs:F1}"));
                    cluster.LeaveAsync().Wait(TimeSpan.FromSeconds(10));
                    system.Terminate().Wait(TimeSpan.FromSeconds(10));
                    Report.Line("BYE");
                    return 0;
            }
        }
        system.Terminate().Wait(TimeSpan.FromSeconds(10));
        return 0;
    }

    /// <summary>CPU seconds (user + system) of this process, RSS, managed heap (live after a forced GC when asked), GC counts.</summary>
    private static string Snap(string tag, bool forceGc)
    {
        if (forceGc)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        }
        using var self = Process.GetCurrentProcess();
        var cpu = self.TotalProcessorTime.TotalMilliseconds;
        var rssKiB = RssKiB();
        var heap = GC.GetTotalMemory(false);
        return string.Create(CultureInfo.InvariantCulture,
            $"SNAP {tag} {Report.NowMs()} {cpu:F1} {rssKiB} {heap} {GC.CollectionCount(0)} {GC.CollectionCount(1)} {GC.CollectionCount(2)} {self.Threads.Count}");
    }

    private static long RssKiB()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return 0;
    }
}
