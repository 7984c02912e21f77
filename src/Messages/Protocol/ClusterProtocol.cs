namespace Supervisor.Messages.Protocol;

/// <summary>The messages cluster nodes send each other about their connection ledgers and totals (<see cref="ClusterProtocol"/>).</summary>
public interface IClusterMessage;

/// <summary>
/// What the nodes of one cluster tell each other about their connections (DESIGN §8). Each node keeps
/// supervising its own sockets; the others keep a replica of its connection ledger, so that when the node
/// is lost they can report its connections with <c>node-down</c> and keep the cluster's totals balanced.
/// </summary>
public static class ClusterProtocol
{
    /// <summary>A live connection as the other nodes remember it: enough to report it when its node is lost.</summary>
    /// <param name="Id">The connection's id, <c>c123@host:port</c> in a cluster.</param>
    /// <param name="Remote">The peer's address, <c>address:port</c>.</param>
    /// <param name="Listener">The name of the listener that accepted it.</param>
    /// <param name="Protocol"><c>tcp</c>, <c>tls</c> or <c>ws</c>.</param>
    /// <param name="ConnectedAt">When it was accepted.</param>
    public sealed record LedgerEntry(string Id, string Remote, string Listener, string Protocol, DateTimeOffset ConnectedAt);

    /// <summary>A connection of the sender's ledger whose close was decided since its previous batch.</summary>
    /// <param name="Id">The connection's id.</param>
    /// <param name="Reason">The close reason's wire name, e.g. <c>heartbeat-timeout</c> (<see cref="Wire.CloseReasons.ToWireName"/>).</param>
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

    /// <summary>Asks this node's cluster registry for its <see cref="ClusterView"/> (<c>GET /api/cluster</c>).</summary>
    public sealed record GetClusterView : IClusterMessage
    {
        /// <summary>The message's one instance; it carries nothing.</summary>
        public static GetClusterView Instance { get; } = new();
    }

    /// <summary>One member of the cluster in a <see cref="ClusterView"/>.</summary>
    /// <param name="Node">The member's <c>host:port</c> (its connection ids end in <c>@host:port</c>).</param>
    /// <param name="Status">Akka's member status, lower case: <c>joining</c>, <c>up</c>, <c>leaving</c>, <c>exiting</c>, <c>down</c>, …; <c>not-joined</c> for this node before it joined.</param>
    /// <param name="Reachable">False while this node's failure detector holds the member unreachable.</param>
    /// <param name="Roles">The member's cluster roles, sorted.</param>
    /// <param name="Connections">Live connections held by the member: its own count, or this node's replica for the others.</param>
    /// <param name="IsSelf">True for the node that answers.</param>
    public sealed record MemberView(string Node, string Status, bool Reachable, IReadOnlyList<string> Roles, long Connections, bool IsSelf);

    /// <summary>A member that left the cluster: <c>Reason</c> is <c>node-down</c> (lost) or <c>left</c> (graceful).</summary>
    /// <param name="Node">The member's <c>host:port</c>.</param>
    /// <param name="At">When this node saw it go.</param>
    /// <param name="Reason"><c>node-down</c> or <c>left</c>.</param>
    /// <param name="Lost">Connections its last reported totals still held, closed now as <c>node-down</c> (lost) or <c>server-shutdown</c> (left).</param>
    public sealed record Departure(string Node, DateTimeOffset At, string Reason, long Lost);

    /// <summary>Membership as this node sees it: the answer to <see cref="GetClusterView"/>, shown by <c>GET /api/cluster</c>.</summary>
    /// <param name="Enabled">False for a single node without cluster configuration, which answers with itself (<c>local</c>) as the one member.</param>
    /// <param name="Self">This node's <c>host:port</c> (<c>local</c> on a single node).</param>
    /// <param name="Leader">The cluster leader's <c>host:port</c>, null while there is none.</param>
    /// <param name="Singleton">Where the cluster singletons (the cluster monitor) run: the oldest member that is up; null while none is.</param>
    /// <param name="Members">Every member, sorted by <c>host:port</c>.</param>
    /// <param name="Departures">Members that left, newest first (a bounded history).</param>
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
