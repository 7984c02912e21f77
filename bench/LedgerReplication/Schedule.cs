using System.Globalization;
using Supervisor.Messages.Protocol;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace LedgerReplication;

/// <summary>
/// The workload, the same on every node and in both modes, as a function of time so that any node can tell when
/// another node's change was made. Open k (1-based) of the ramp is due at <c>rampStart + (k-1)/rampRate</c>;
/// in the steady phase open <c>PerNode + m</c> is due at <c>churnStart + (m-1)/churnRate</c> and close j (which
/// closes <c>c{j}</c>, the oldest live id: first in, first out) half a period later. A connection's
/// <c>ConnectedAt</c> is its due time. So a replica always holds a contiguous run of ids, and from its newest and
/// oldest id a reader knows the first open and the first close it has not seen yet, and since when they are due.
/// </summary>
public sealed class Schedule(Options options, long rampStartMs, long churnStartMs)
{
    public long RampStartMs { get; } = rampStartMs;
    public long ChurnStartMs { get; } = churnStartMs;

    private double ChurnPeriodMs => 1000.0 / options.ChurnRate;

    /// <summary>Unix ms at which open k is due; +∞ for an open of a churn phase not started yet.</summary>
    public double OpenDue(long k)
    {
        if (k <= options.PerNode) return RampStartMs + (k - 1) * 1000.0 / options.RampRate;
        if (ChurnStartMs == long.MaxValue) return double.PositiveInfinity;
        return ChurnStartMs + (k - options.PerNode - 1) * ChurnPeriodMs;
    }

    /// <summary>Unix ms at which close j (of id c{j}) is due.</summary>
    public double CloseDue(long j) =>
        ChurnStartMs == long.MaxValue ? double.PositiveInfinity : ChurnStartMs + (j - 1) * ChurnPeriodMs + ChurnPeriodMs / 2;

    /// <summary>How many opens are due at <paramref name="nowMs"/> (never more than the phase allows).</summary>
    public long OpensDue(double nowMs, double churnEndMs)
    {
        if (nowMs < RampStartMs) return 0;
        var ramp = Math.Min(options.PerNode, (long)Math.Floor((nowMs - RampStartMs) * options.RampRate / 1000.0) + 1);
        if (ChurnStartMs == long.MaxValue || nowMs < ChurnStartMs) return ramp;
        var until = Math.Min(nowMs, churnEndMs);
        return options.PerNode + (long)Math.Floor((until - ChurnStartMs) / ChurnPeriodMs) + 1;
    }

    public long ClosesDue(double nowMs, double churnEndMs)
    {
        if (ChurnStartMs == long.MaxValue || nowMs < ChurnStartMs + ChurnPeriodMs / 2) return 0;
        var until = Math.Min(nowMs, churnEndMs);
        if (until < ChurnStartMs + ChurnPeriodMs / 2) return 0;
        return (long)Math.Floor((until - ChurnStartMs - ChurnPeriodMs / 2) / ChurnPeriodMs) + 1;
    }

    public static string Id(long k, string node) => string.Create(CultureInfo.InvariantCulture, $"c{k}@{node}");

    /// <summary>k of <c>c{k}@host:port</c> (or of an encoded element that starts with the id).</summary>
    public static long K(string idOrElement)
    {
        long k = 0;
        for (var i = 1; i < idOrElement.Length; i++)
        {
            var c = idOrElement[i];
            if (c < '0' || c > '9') break;
            k = k * 10 + (c - '0');
        }
        return k;
    }

    /// <summary>The entry a node keeps for its connection k: what the product's ledger carries.</summary>
    public LedgerEntry Entry(long k, string node)
    {
        var source = 1 + (int)(k % 4);
        var port = 32768 + (int)(k % 28000);
        return new LedgerEntry(Id(k, node), string.Create(CultureInfo.InvariantCulture, $"127.0.0.{source}:{port}"), "tcp", "tcp",
            DateTimeOffset.FromUnixTimeMilliseconds((long)OpenDue(k)));
    }

    /// <summary>The ORSet element for an entry: the id first (so <see cref="K"/> reads it), then the other fields.</summary>
    public static string Encode(LedgerEntry e) =>
        string.Create(CultureInfo.InvariantCulture, $"{e.Id}|{e.Remote}|{e.Listener}|{e.Protocol}|{e.ConnectedAt.UtcTicks}");

    public static string IdOf(string element)
    {
        var bar = element.IndexOf('|');
        return bar < 0 ? element : element[..bar];
    }

    /// <summary>Order-independent 64-bit digest of a set of ids (sum of FNV-1a), to compare a replica with its owner.</summary>
    public static ulong Digest(IEnumerable<string> ids)
    {
        ulong sum = 0;
        foreach (var id in ids)
        {
            var h = 14695981039346656037UL;
            foreach (var c in id)
            {
                h ^= c;
                h *= 1099511628211UL;
            }
            sum += h;
        }
        return sum;
    }

    /// <summary>The node's totals as the product would send them: active, accepted, closed by reason, and counters that move with every heartbeat.</summary>
    public static RegistryProtocol.Stats Totals(long active, long accepted, long closed, long heartbeats) =>
        new(active, accepted, new Dictionary<string, long> { ["client-closed"] = closed }, heartbeats, heartbeats * 38, heartbeats * 52);
}
