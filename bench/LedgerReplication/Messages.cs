using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace LedgerReplication;

/// <summary>One connection opened on this node (the registry's <c>ConnectionOpened</c>, as the ledger keeps it).</summary>
public sealed record Open(LedgerEntry Entry);

/// <summary>One connection closed on this node.</summary>
public sealed record Close(string Id);

/// <summary>The ramp starts (at <c>Schedule.RampStartMs</c>): the ledger starts watching its replicas for convergence.</summary>
public sealed record StartRamp(Schedule Schedule);

/// <summary>The steady phase: the schedule with its churn start, and when it ends.</summary>
public sealed record StartChurn(Schedule Schedule, double ChurnEndMs);

/// <summary>Print one SAMPLE line per other node: how far behind this node's replica of it is.</summary>
public sealed record TakeSample
{
    public static TakeSample Instance { get; } = new();
}

/// <summary>Print OWN and one REPLICA line per other node (count and digest of the ids), then CHECKED.</summary>
public sealed record Check
{
    public static Check Instance { get; } = new();
}

/// <summary>Answered with true once the ledger is ready for the ramp (custom: a complete replica of every other node).</summary>
public sealed record IsReady
{
    public static IsReady Instance { get; } = new();
}

/// <summary>A summary of one replica (or of the node's own ledger): enough to tell how far behind it is.</summary>
public readonly record struct ReplicaView(long Count, long MinK, long MaxK, ulong Digest);

public static class Views
{
    public static ReplicaView Of(IEnumerable<string> idsOrElements, bool digest)
    {
        long count = 0, min = long.MaxValue, max = 0;
        var ids = new List<string>();
        foreach (var s in idsOrElements)
        {
            count++;
            var k = Schedule.K(s);
            if (k < min) min = k;
            if (k > max) max = k;
            if (digest) ids.Add(Schedule.IdOf(s));
        }
        return new ReplicaView(count, count == 0 ? 0 : min, max, digest ? Schedule.Digest(ids) : 0);
    }
}
