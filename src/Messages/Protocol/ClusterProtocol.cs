namespace Supervisor.Messages.Protocol;

public interface IClusterMessage;

/// <summary>
/// What the nodes of one cluster tell each other about their connections (DESIGN §8). Each node keeps
/// supervising its own sockets; the others keep a replica of its connection ledger, so that when the node
/// is lost they can report its connections with <c>node-down</c> and keep the cluster's totals balanced.
/// </summary>
public static class ClusterProtocol
{
    /// <summary>A live connection as the other nodes remember it: enough to report it when its node is lost.</summary>
    public sealed record LedgerEntry(string Id, string Remote, string Listener, string Protocol, DateTimeOffset ConnectedAt);

    public sealed record ClosedEntry(string Id, string Reason);

    /// <summary>
    /// One batch of a node's ledger, sent to every other member. <c>Sequence</c> counts from 1 per incarnation of the
    /// sender; a receiver that sees a gap asks for a <see cref="ResendLedger"/>. A batch with <c>Reset</c> replaces
    /// what the receiver knew (the first batch of a full copy; the copy's further batches follow with <c>Reset</c>
    /// false). <c>Totals</c> are the node's own registry totals as of this batch (what <c>/api/stats</c> on that node alone would say),
    /// absolute, so a lost batch never skews them.
    /// </summary>
    public sealed record LedgerBatch(
        string Node,
        long Incarnation,
        long Sequence,
        bool Reset,
        IReadOnlyList<LedgerEntry> Opened,
        IReadOnlyList<ClosedEntry> Closed,
        RegistryProtocol.Stats Totals) : IClusterMessage;

    /// <summary>A receiver missed a batch: the sender answers with a full copy of its ledger.</summary>
    public sealed record ResendLedger(string Node) : IClusterMessage;

    /// <summary>A node's totals, sent to the singleton monitor after every change (and periodically).</summary>
    public sealed record NodeCounts(string Node, long Incarnation, RegistryProtocol.Stats Totals) : IClusterMessage;

    /// <summary>
    /// A survivor saw a node removed after being marked down; <c>Lost</c> is how many connections its replica still held,
    /// <c>Totals</c> the node's books as the replica last had them (a monitor that never heard from the node counts them in).
    /// Every survivor sends one; the singleton monitor takes the first and answers each with <see cref="ReportLoss"/>.
    /// </summary>
    public sealed record NodeLost(string Node, long Incarnation, long Lost, RegistryProtocol.Stats? Totals = null) : IClusterMessage;

    /// <summary><c>Report</c> is true for exactly one survivor: it logs and counts the lost connections.</summary>
    public sealed record ReportLoss(string Node, long Incarnation, bool Report) : IClusterMessage;

    public sealed record GetClusterView : IClusterMessage
    {
        public static GetClusterView Instance { get; } = new();
    }

    /// <param name="Node">The member's <c>host:port</c> (its connection ids end in <c>@host:port</c>).</param>
    /// <param name="Status">Akka's member status, lower case: <c>joining</c>, <c>up</c>, <c>leaving</c>, <c>exiting</c>, <c>down</c>, …</param>
    /// <param name="Connections">Live connections held by the member: its own count, or this node's replica for the others.</param>
    public sealed record MemberView(string Node, string Status, bool Reachable, IReadOnlyList<string> Roles, long Connections, bool IsSelf);

    /// <summary>A member that left the cluster: <c>Reason</c> is <c>node-down</c> (lost) or <c>left</c> (graceful).</summary>
    public sealed record Departure(string Node, DateTimeOffset At, string Reason, long Lost);

    /// <summary>Membership as this node sees it. <c>Enabled</c> is false for a single node without cluster configuration.</summary>
    public sealed record ClusterView(
        bool Enabled,
        string Self,
        string? Leader,
        string? Singleton,
        IReadOnlyList<MemberView> Members,
        IReadOnlyList<Departure> Departures)
    {
        /// <summary>
        /// The singleton cluster monitor's counters, the books its cluster rules run on; null on a single node, and while
        /// the singleton moves or does not answer within <c>cluster.query-timeout</c>.
        /// </summary>
        public MonitorCounts? Monitor { get; init; }
    }

    /// <summary>
    /// The cluster monitor's counters (DESIGN §8, "Cluster monitor"): every node's inbound totals added up as each node counts
    /// them, a lost node's books included, so once the nodes' latest totals have reached it they equal <c>/api/stats</c>.
    /// </summary>
    public sealed record MonitorCounts(long Active, long Accepted, IReadOnlyDictionary<string, long> ClosedByReason, long Refused)
    {
        /// <summary>Every close, refusals included (accepted = active + closed, as in <c>/api/stats</c>).</summary>
        public long Closed => ClosedByReason.Values.Sum();
    }
}
