using Akka.Actor;
using Supervisor.Messages.Protocol;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Cluster;

/// <summary>
/// Both directions of ledger replication between members: the numbered <see cref="LedgerBatch"/>es this node sends
/// each peer (one sequence per peer), and the <see cref="LedgerReplica"/> it keeps of each other member from the
/// batches it receives. It decides what to send and what was received; the owning <see cref="ClusterRegistry"/>
/// does the sending, and decides whose batches to take (membership and losses are not this class's business).
/// </summary>
internal sealed class LedgerReplication(Address self, string selfName, long incarnation)
{
    private readonly Dictionary<Address, long> _sentSequence = [];
    private readonly Dictionary<string, LedgerReplica> _replicas = [];

    /// <summary>A member this node sends batches to: one it has sent a full copy, until it is removed.</summary>
    public bool IsPeer(Address address) => address != self && _sentSequence.ContainsKey(address);

    /// <summary>What changed, for one peer, numbered on from what it last got.</summary>
    public IReadOnlyList<LedgerBatch> Changes(Address to, IReadOnlyList<LedgerEntry> opened, IReadOnlyList<ClosedEntry> closed, RegistryProtocol.Stats totals) =>
        Number(to, reset: false, opened, closed, totals);

    /// <summary>A full copy of the ledger; the first to a member also makes it a peer.</summary>
    public IReadOnlyList<LedgerBatch> Copy(Address to, IReadOnlyList<LedgerEntry> live, RegistryProtocol.Stats totals)
    {
        _sentSequence.TryAdd(to, 0);
        return Number(to, reset: true, live, [], totals);
    }

    private IReadOnlyList<LedgerBatch> Number(Address to, bool reset, IReadOnlyList<LedgerEntry> opened, IReadOnlyList<ClosedEntry> closed, RegistryProtocol.Stats totals)
    {
        // Split yields at least one batch: the totals go every time, changes or not.
        var batches = LedgerReplica.Split(selfName, incarnation, _sentSequence[to], reset, opened, closed, totals).ToArray();
        _sentSequence[to] = batches[^1].Sequence;
        return batches;
    }

    /// <summary>A removed member gets nothing more; if it comes back, seeing it up starts a new copy.</summary>
    public void ForgetPeer(Address address) => _sentSequence.Remove(address);

    /// <summary>
    /// Applies a batch to its member's replica (a new incarnation starts a new one); false when the replica has a gap
    /// and the sender should be asked for a full copy now.
    /// </summary>
    public bool Receive(LedgerBatch batch, DateTimeOffset now)
    {
        if (!_replicas.TryGetValue(batch.Node, out var replica) || replica.Incarnation != batch.Incarnation)
            _replicas[batch.Node] = replica = new LedgerReplica(batch.Incarnation);
        return replica.Apply(batch, now);
    }

    public LedgerReplica? Replica(string node) => _replicas.GetValueOrDefault(node);

    /// <summary>The replica of a member that departed, handed over once and dropped.</summary>
    public LedgerReplica? Take(string node) => _replicas.Remove(node, out var replica) ? replica : null;
}
