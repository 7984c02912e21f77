using Supervisor.Messages.Protocol;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Cluster;

/// <summary>
/// What this node knows of another member's connections: the ids it holds and its totals, rebuilt from that
/// member's numbered <see cref="LedgerBatch"/>es. Held by <see cref="LedgerReplication"/>, one per member, inside one
/// <see cref="ClusterRegistry"/>; kept apart so the rules (in order, gaps, full copies) can be tested without a cluster.
/// </summary>
internal sealed class LedgerReplica(long incarnation)
{
    private readonly Dictionary<string, LedgerEntry> _live = [];

    /// <summary>The member's incarnation (Akka's uid): a restarted member at the same address starts a new replica.</summary>
    public long Incarnation { get; } = incarnation;

    public long Sequence { get; private set; }

    /// <summary>False after a gap, until the next full copy: the ids may then be missing some.</summary>
    public bool Complete { get; private set; }

    public IReadOnlyDictionary<string, LedgerEntry> Live => _live;

    public RegistryProtocol.Stats Totals { get; private set; } = RegistryProtocol.Stats.Empty;

    /// <summary>Ledger entries per remoting message: a full copy of 19,000 connections goes as ten messages, not one large one.</summary>
    public const int BatchSize = 2_000;

    /// <summary>
    /// The sending side: what one member sends another, numbered on from <paramref name="lastSequence"/>; always at least
    /// one batch (it carries the totals even when nothing opened or closed), the first marked <paramref name="reset"/>.
    /// </summary>
    public static IEnumerable<LedgerBatch> Split(string node, long incarnation, long lastSequence, bool reset,
        IReadOnlyList<LedgerEntry> opened, IReadOnlyList<ClosedEntry> closed, RegistryProtocol.Stats totals)
    {
        var first = true;
        for (var i = 0; first || i < opened.Count || i < closed.Count; i += BatchSize)
        {
            yield return new LedgerBatch(node, incarnation, ++lastSequence, reset && first, Slice(opened, i), Slice(closed, i), totals);
            first = false;
        }
    }

    private static IReadOnlyList<T> Slice<T>(IReadOnlyList<T> items, int from) =>
        from >= items.Count ? [] : items.Skip(from).Take(BatchSize).ToArray();

    /// <summary>How long a copy asked for may take before it is asked for again (it is many batches for a large ledger).</summary>
    public static readonly TimeSpan CopyWait = TimeSpan.FromSeconds(2);

    private DateTimeOffset? _copyAskedAt;

    /// <summary>
    /// Applies one batch; false when it shows a gap (or no full copy came yet) and a full copy should be asked for
    /// now: once per <see cref="CopyWait"/> while the replica is incomplete.
    /// </summary>
    public bool Apply(LedgerBatch batch, DateTimeOffset now)
    {
        // Totals are absolute: the freshest are taken even from a batch that comes after a gap.
        Totals = batch.Totals;
        if (batch.Reset)
        {
            _live.Clear();
            Complete = true;
            _copyAskedAt = null;
        }
        else if (!Complete || batch.Sequence != Sequence + 1)
        {
            // Ids after a gap would be applied onto a table missing the lost batch's: wait for the copy.
            Complete = false;
            Sequence = batch.Sequence;
            if (_copyAskedAt is { } asked && now - asked < CopyWait) return true;
            _copyAskedAt = now;
            return false;
        }
        Sequence = batch.Sequence;
        foreach (var entry in batch.Opened) _live[entry.Id] = entry;
        foreach (var closed in batch.Closed) _live.Remove(closed.Id);
        return true;
    }
}
