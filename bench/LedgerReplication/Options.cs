using System.Globalization;

namespace LedgerReplication;

public enum Mode
{
    /// <summary>The product's protocol: numbered <c>LedgerBatch</c>es every interval, <c>LedgerReplica</c> on the receiver.</summary>
    Custom,

    /// <summary>Akka.DistributedData: one key per node, written with WriteLocal, read from the local replica.</summary>
    DData,
}

/// <summary>How the ddata mode writes its key: one Update per interval with everything since the last, or one Update per open/close.</summary>
public enum DDataWrite
{
    Tick,
    Event,
}

/// <summary>What a node's key holds in the ddata mode.</summary>
public enum DDataType
{
    /// <summary><c>ORSet&lt;string&gt;</c>, each element one connection encoded as <c>id|remote|listener|protocol|connectedAtTicks</c>.</summary>
    OrSet,

    /// <summary><c>LWWDictionary&lt;string, LedgerEntry&gt;</c>: id → the product's record.</summary>
    LwwDict,
}

/// <summary>Every knob, shared by the coordinator and the node processes (the coordinator passes its own on).</summary>
public sealed record Options
{
    public Mode Mode { get; init; } = Mode.Custom;
    public int Nodes { get; init; } = 5;
    public int PerNode { get; init; } = 19_000;
    /// <summary>Opens per second per node in the ramp (the product accepts ~12,000/s).</summary>
    public double RampRate { get; init; } = 12_000;
    /// <summary>Opens per second per node in the steady phase, and as many closes.</summary>
    public double ChurnRate { get; init; } = 50;
    public TimeSpan Steady { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Idle window measured before the ramp (cluster up, nothing changing).</summary>
    public TimeSpan Idle { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Fixed length of the ramp window (CPU and bytes are taken over it): from the first open.</summary>
    public TimeSpan RampWindow { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>The product's <c>replication-interval</c>; in ddata tick mode, how often the key is updated.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromMilliseconds(250);
    /// <summary>How often every node samples its replicas during the steady phase.</summary>
    public TimeSpan Sample { get; init; } = TimeSpan.FromSeconds(1);
    public int BasePort { get; init; } = 19_400;
    public bool Delta { get; init; } = true;
    public DDataWrite Write { get; init; } = DDataWrite.Tick;
    public DDataType Type { get; init; } = DDataType.OrSet;
    /// <summary>akka.cluster.distributed-data.delta-crdt.max-delta-size; 0: Akka's default (50).</summary>
    public int MaxDeltaSize { get; init; }
    /// <summary>akka.cluster.distributed-data.gossip-interval; zero: Akka's default (2 s).</summary>
    public TimeSpan GossipInterval { get; init; }
    /// <summary>The product's messages as the product sends them now (WireSerializer, System.Text.Json); false: Akka's default (Newtonsoft).</summary>
    public bool ProductWire { get; init; } = true;
    /// <summary>Extra HOCON for every node (e.g. DData settings).</summary>
    public string ExtraHocon { get; init; } = "";
    public string Out { get; init; } = "bench/results/ledger";
    public string Label { get; init; } = "";
    public int Index { get; init; }

    public string NodeName(int index) => $"127.0.0.1:{BasePort + index}";

    public string Describe() => (ProductWire ? "" : "[newtonsoft] ") + (Mode == Mode.Custom
        ? "custom"
        : $"ddata ({(Type == DDataType.OrSet ? "ORSet<string>" : "LWWDictionary<string,LedgerEntry>")}, write per {Write.ToString().ToLowerInvariant()}, delta-crdt {(Delta ? "on" : "off")}"
          + (MaxDeltaSize > 0 ? $", max-delta-size {MaxDeltaSize}" : "")
          + (GossipInterval > TimeSpan.Zero ? $", gossip-interval {GossipInterval.TotalSeconds} s" : "") + ")");

    public static Options Parse(IReadOnlyList<string> args, int from)
    {
        var o = new Options();
        for (var i = from; i < args.Count; i++)
        {
            var name = args[i];
            if (i + 1 >= args.Count) throw new ArgumentException($"{name} needs a value");
            var v = args[++i];
            o = name switch
            {
                "--mode" => o with { Mode = v == "custom" ? Mode.Custom : v == "ddata" ? Mode.DData : throw new ArgumentException($"--mode {v}") },
                "--nodes" => o with { Nodes = int.Parse(v, CultureInfo.InvariantCulture) },
                "--per-node" => o with { PerNode = int.Parse(v, CultureInfo.InvariantCulture) },
                "--ramp-rate" => o with { RampRate = double.Parse(v, CultureInfo.InvariantCulture) },
                "--churn-rate" => o with { ChurnRate = double.Parse(v, CultureInfo.InvariantCulture) },
                "--steady" => o with { Steady = Seconds(v) },
                "--idle" => o with { Idle = Seconds(v) },
                "--ramp-window" => o with { RampWindow = Seconds(v) },
                "--interval-ms" => o with { Interval = TimeSpan.FromMilliseconds(double.Parse(v, CultureInfo.InvariantCulture)) },
                "--sample" => o with { Sample = Seconds(v) },
                "--base-port" => o with { BasePort = int.Parse(v, CultureInfo.InvariantCulture) },
                "--delta" => o with { Delta = v is "on" or "true" or "1" },
                "--write" => o with { Write = v == "event" ? DDataWrite.Event : v == "tick" ? DDataWrite.Tick : throw new ArgumentException($"--write {v}") },
                "--type" => o with { Type = v == "lwwdict" ? DDataType.LwwDict : v == "orset" ? DDataType.OrSet : throw new ArgumentException($"--type {v}") },
                "--max-delta-size" => o with { MaxDeltaSize = int.Parse(v, CultureInfo.InvariantCulture) },
                "--gossip-interval" => o with { GossipInterval = Seconds(v) },
                "--wire" => o with { ProductWire = v == "product" ? true : v == "newtonsoft" ? false : throw new ArgumentException($"--wire {v}") },
                "--hocon" => o with { ExtraHocon = v },
                "--out" => o with { Out = v },
                "--label" => o with { Label = v },
                "--index" => o with { Index = int.Parse(v, CultureInfo.InvariantCulture) },
                _ => throw new ArgumentException($"unknown option {name}"),
            };
        }
        return o;
    }

    public IEnumerable<string> ToArgs()
    {
        string S(TimeSpan t) => t.TotalSeconds.ToString(CultureInfo.InvariantCulture);
        yield return "--mode"; yield return Mode == Mode.Custom ? "custom" : "ddata";
        yield return "--nodes"; yield return Nodes.ToString(CultureInfo.InvariantCulture);
        yield return "--per-node"; yield return PerNode.ToString(CultureInfo.InvariantCulture);
        yield return "--ramp-rate"; yield return RampRate.ToString(CultureInfo.InvariantCulture);
        yield return "--churn-rate"; yield return ChurnRate.ToString(CultureInfo.InvariantCulture);
        yield return "--steady"; yield return S(Steady);
        yield return "--idle"; yield return S(Idle);
        yield return "--ramp-window"; yield return S(RampWindow);
        yield return "--interval-ms"; yield return Interval.TotalMilliseconds.ToString(CultureInfo.InvariantCulture);
        yield return "--sample"; yield return S(Sample);
        yield return "--base-port"; yield return BasePort.ToString(CultureInfo.InvariantCulture);
        yield return "--delta"; yield return Delta ? "on" : "off";
        yield return "--write"; yield return Write == DDataWrite.Event ? "event" : "tick";
        yield return "--type"; yield return Type == DDataType.LwwDict ? "lwwdict" : "orset";
        yield return "--max-delta-size"; yield return MaxDeltaSize.ToString(CultureInfo.InvariantCulture);
        yield return "--gossip-interval"; yield return S(GossipInterval);
        yield return "--wire"; yield return ProductWire ? "product" : "newtonsoft";
        yield return "--hocon"; yield return ExtraHocon;
        yield return "--out"; yield return Out;
        yield return "--label"; yield return Label;
    }

    private static TimeSpan Seconds(string v) => TimeSpan.FromSeconds(double.Parse(v.TrimEnd('s'), CultureInfo.InvariantCulture));
}
