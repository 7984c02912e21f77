using Akka.Cluster;
using Microsoft.Extensions.Logging;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Cluster;

/// <summary>
/// What departed members leave behind: their books folded into the cluster's (accepted and closed stay, what they
/// still held closes with <c>node-down</c> when lost or <c>server-shutdown</c> when they left), the recent
/// departures <c>/api/cluster</c> lists, and, for a lost member, its connections kept until the singleton monitor
/// says whether this survivor is the one to write their close lines. Owned by one <see cref="ClusterRegistry"/>,
/// which decides when a member departed and does the telling and the timers.
/// </summary>
internal sealed class LossReports(SupervisorMetrics metrics, ILogger log)
{
    private const int DeparturesKept = 50;

    private readonly LinkedList<Departure> _departures = new();
    private readonly Dictionary<string, IReadOnlyList<LedgerEntry>> _awaitingReport = [];
    // One entry per departed incarnation (few over a cluster's life): downed and removed both arrive for a lost node.
    private readonly HashSet<UniqueAddress> _departedMembers = [];

    /// <summary>Every departed member's books, as the cluster's totals count them.</summary>
    public RegistryProtocol.Stats Departed { get; private set; } = RegistryProtocol.Stats.Empty;

    public IReadOnlyList<Departure> Departures => _departures.ToArray();

    /// <summary>True the first time for an incarnation, false after: its books are folded in once.</summary>
    public bool FirstDeparture(UniqueAddress member) => _departedMembers.Add(member);

    /// <summary>An incarnation already folded in: anything more it sends is a straggler.</summary>
    public bool HasDeparted(UniqueAddress member) => _departedMembers.Contains(member);

    /// <summary>
    /// Folds a departed member's books into the cluster's, from this node's replica of its ledger (null: none came).
    /// For a lost member, returns what the singleton monitor must be told; its connections wait for the answer.
    /// </summary>
    public NodeLost? Depart(string node, LedgerReplica? replica, bool lost)
    {
        var totals = replica?.Totals ?? RegistryProtocol.Stats.Empty;
        // The node's books as it last reported them; what it still held closes now, with node-down when it was
        // lost, or as server-shutdown when it left gracefully (its shutdown closed them; the last batch was in flight).
        var remainder = Math.Max(0, totals.Active);
        var reason = lost ? CloseReason.NodeDown : CloseReason.ServerShutdown;
        var closedNow = new RegistryProtocol.Stats(0, 0, new Dictionary<string, long> { [reason.ToWireName()] = remainder }, 0, 0, 0);
        Departed = Departed + (totals with { Active = 0 }) + closedNow;

        _departures.AddFirst(new Departure(node, DateTimeOffset.UtcNow, lost ? CloseReason.NodeDown.ToWireName() : "left", remainder));
        while (_departures.Count > DeparturesKept) _departures.RemoveLast();

        if (!lost)
        {
            log.LogInformation("Cluster member {Node} left gracefully; {Remaining} connections it still held are counted server-shutdown", node, remainder);
            return null;
        }
        log.LogWarning("Cluster member {Node} was marked down; {Lost} connections it held are lost (node-down)", node, remainder);
        _awaitingReport[node] = replica?.Live.Values.ToArray() ?? [];
        return new NodeLost(node, replica?.Incarnation ?? 0, remainder, totals);
    }

    /// <summary>The monitor answered: the one survivor it chose logs each lost connection's close and counts them.</summary>
    public void Reported(ReportLoss report)
    {
        if (!_awaitingReport.Remove(report.Node, out var entries) || !report.Report) return;
        var now = DateTimeOffset.UtcNow;
        foreach (var entry in entries)
            ClusterLog.ConnectionLost(log, entry.Id, report.Node, entry.Remote, entry.Listener, (now - entry.ConnectedAt).TotalSeconds);
        metrics.ConnectionsLost(entries.Count);
    }

    /// <summary>The monitor never answered: the connections are dropped unlogged (they are counted all the same).</summary>
    public void Forget(string node)
    {
        if (_awaitingReport.Remove(node))
            log.LogWarning("The cluster monitor never answered for lost node {Node}; its connections were not logged one by one", node);
    }
}
