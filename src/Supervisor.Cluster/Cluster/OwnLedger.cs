using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Cluster;

/// <summary>
/// This node's own connection ledger, the one the other members replicate: the inbound connections it holds, what
/// opened and closed since it last sent them, and its registry's totals as last asked. A subscriber to the
/// connections' lifecycle (DESIGN §3, "One lifecycle"): an id joins at <c>Opened</c> and leaves at <c>Closed</c>, when its
/// close is decided, as it leaves <c>active</c>. Owned by one <see cref="ClusterRegistry"/>.
/// </summary>
internal sealed class OwnLedger
{
    private readonly Dictionary<string, LedgerEntry> _live = [];
    private List<LedgerEntry> _opened = [];
    private List<ClosedEntry> _closed = [];

    /// <summary>The node's registry totals as last asked (the totals come from the registry, not from counting here).</summary>
    public RegistryProtocol.Stats Totals { get; set; } = RegistryProtocol.Stats.Empty;

    public int Count => _live.Count;

    /// <summary>Outbound connections are not in the ledger: they are not among the peers this node serves.</summary>
    public void Apply(ConnectionLifecycle.Opened opened)
    {
        if (opened.Direction != ConnectionDirection.Inbound) return;
        var s = opened.Status;
        var entry = new LedgerEntry(s.Id, s.Remote, s.Listener, s.Protocol, s.ConnectedAt);
        _live[s.Id] = entry;
        _opened.Add(entry);
    }

    public void Apply(ConnectionLifecycle.Closed closed)
    {
        if (closed.Direction != ConnectionDirection.Inbound) return;
        _live.Remove(closed.Status.Id);
        _closed.Add(new ClosedEntry(closed.Status.Id, closed.Reason.ToWireName()));
    }

    /// <summary>A full copy, for a member that has none or lost track.</summary>
    public IReadOnlyList<LedgerEntry> Live() => _live.Values.ToArray();

    /// <summary>What opened and closed since the last call; the next call starts empty.</summary>
    public (IReadOnlyList<LedgerEntry> Opened, IReadOnlyList<ClosedEntry> Closed) TakeChanges()
    {
        var changes = (_opened, _closed);
        _opened = [];
        _closed = [];
        return changes;
    }
}
