using Supervisor.Messages.Protocol;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Cluster;

/// <summary>
/// What this node knows of another member's connections: the ids it holds and its totals, rebuilt from that
/// member's numbered <see cref="LedgerBatch"/>es. Owned by one <see cref="ClusterRegistry"/>; kept apart so the
/// rules (in order, gaps, full copies) can be tested without a cluster.
/// </summary>
public sealed class LedgerReplica(long incarnation)
{
    private readonly Dictionary<string, LedgerEntry> _live = [];

    /// <summary>The member's incarnation (Akka's uid): a restarted member at the same address starts a new replica.</summary>
    public long Incarnation { get; } = incarnation;

    public long Sequence { get; private set; }

    /// <summary>False after a gap, until the next full copy: the ids may then be missing some.</summary>
    public bool Complete { get; private set; }

    public IReadOnlyDictionary<string, LedgerEntry> Live => _live;

    public RegistryProtocol.Stats Totals { get; private set; } = RegistryProtocol.Stats.Empty;

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
