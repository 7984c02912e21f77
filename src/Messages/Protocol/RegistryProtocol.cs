using Supervisor.Messages.Wire;

namespace Supervisor.Messages.Protocol;

/// <summary>The messages the connection registry and its shards accept (<see cref="RegistryProtocol"/>).</summary>
public interface IRegistryMessage;

/// <summary>
/// What the connection registry accepts and answers. Status reaches it only by these messages,
/// so its shards can live on any node.
/// </summary>
public static class RegistryProtocol
{
    /// <summary>
    /// Fresher counters of a live connection, at most every <c>registry.status-refresh</c>, for the connection table. Opens,
    /// state changes and closes reach the registry as <see cref="IConnectionLifecycleEvent"/>s; totals of heartbeats and
    /// bytes are read from the live counters, not summed from these rows.
    /// </summary>
    public sealed record ConnectionUpdated(ConnectionStatus Status) : IRegistryMessage;

    /// <summary>
    /// Answered with <see cref="Connections"/>: the whole table, unfiltered and unbounded. <see cref="QueryConnections"/>
    /// filters and pages where the rows live, and is the one to use on a large table.
    /// </summary>
    public sealed record GetConnections : IRegistryMessage
    {
        /// <summary>The message's one instance; it carries nothing.</summary>
        public static GetConnections Instance { get; } = new();
    }

    /// <summary>Answer to <see cref="GetConnections"/>.</summary>
    /// <param name="Items">Every connection in the table, live ones and those closing (lingering for the peer's FIN), in <see cref="ConnectionOrder"/>.</param>
    public sealed record Connections(IReadOnlyList<ConnectionStatus> Items);

    /// <summary>
    /// The connections that match <c>Filter</c>: how many, and the first <c>Take</c> of them in <see cref="ConnectionOrder"/>
    /// (all when null). Filtering and the page bound travel to the data, so a page of 50 from a table of 95,000 spread
    /// over five nodes moves 50 rows per node, not the table.
    /// </summary>
    /// <param name="Filter">Which connections count; <see cref="ConnectionFilter.All"/> for every one.</param>
    /// <param name="Take">How many of the matches to list at most; null for all of them.</param>
    public sealed record QueryConnections(ConnectionFilter Filter, int? Take) : IRegistryMessage;

    /// <summary>
    /// Answer to <see cref="QueryConnections"/>. <c>Unanswered</c> names the cluster nodes that did not answer in time:
    /// their connections are neither counted in <c>Matching</c> nor listed (empty on a single node).
    /// </summary>
    /// <param name="Matching">How many connections match the filter, however many are listed.</param>
    /// <param name="Items">The first matches in <see cref="ConnectionOrder"/>, at most <c>Take</c>.</param>
    /// <param name="Unanswered">The <c>host:port</c> of each cluster node that did not answer in time.</param>
    public sealed record ConnectionsPage(int Matching, IReadOnlyList<ConnectionStatus> Items, IReadOnlyList<string> Unanswered)
    {
        /// <summary>Several parts (shards, nodes) as one answer: counts added, items merged in order and cut to <paramref name="take"/>.</summary>
        public static ConnectionsPage Merge(IEnumerable<ConnectionsPage> parts, int? take, IEnumerable<string>? unanswered = null)
        {
            var all = parts.ToArray();
            IEnumerable<ConnectionStatus> items = all.SelectMany(p => p.Items).Order(ConnectionOrder.Instance);
            if (take is { } n) items = items.Take(n);
            return new ConnectionsPage(all.Sum(p => p.Matching), items.ToArray(),
                all.SelectMany(p => p.Unanswered).Concat(unanswered ?? []).ToArray());
        }
    }

    /// <summary>Answered with <see cref="ConnectionFound"/>: the registry's row for one connection.</summary>
    /// <param name="Id">The connection's id, e.g. <c>c123</c>.</param>
    public sealed record GetConnection(string Id) : IRegistryMessage;

    /// <summary>Answer to <see cref="GetConnection"/>; <c>Status</c> is null for an unknown id.</summary>
    public sealed record ConnectionFound(string Id, ConnectionStatus? Status);

    /// <summary>Answered with <see cref="Stats"/> (what <c>GET /api/stats</c> shows).</summary>
    public sealed record GetStats : IRegistryMessage
    {
        /// <summary>The message's one instance; it carries nothing.</summary>
        public static GetStats Instance { get; } = new();
    }

    /// <summary>
    /// Totals over the process's life, of inbound connections (DESIGN §3, "One lifecycle"): <c>Accepted</c> = <c>Active</c> + every close in
    /// <c>ClosedByReason</c>, refusals included (<see cref="Refused"/> of them). <c>Heartbeats</c> and bytes cover live and
    /// closed connections. Outbound connections have their own totals, <see cref="Outbound"/>.
    /// </summary>
    /// <param name="Active">Inbound connections opened whose close is not decided yet.</param>
    /// <param name="Accepted">Inbound sockets taken from a listener's accept queue: every open and every refusal.</param>
    /// <param name="ClosedByReason">Closes and refusals by reason wire name, e.g. <c>heartbeat-timeout</c>; a reason never seen may be missing.</param>
    /// <param name="Heartbeats">Heartbeats received from inbound peers.</param>
    /// <param name="BytesIn">Bytes received from inbound peers, as on the wire.</param>
    /// <param name="BytesOut">Bytes sent to inbound peers.</param>
    public sealed record Stats(
        long Active,
        long Accepted,
        IReadOnlyDictionary<string, long> ClosedByReason,
        long Heartbeats,
        long BytesIn,
        long BytesOut)
    {
        /// <summary>Closes with <paramref name="reason"/> (refusals included); 0 for a reason not in <see cref="ClosedByReason"/>.</summary>
        public long Closed(CloseReason reason) => ClosedByReason.TryGetValue(reason.ToWireName(), out var n) ? n : 0;

        /// <summary>Sockets refused before they got a connection; each is also in <c>Accepted</c> and in <c>ClosedByReason</c>.</summary>
        public long Refused { get; init; }

        /// <summary>Connections this process dialled (heartbeat clients and pools): counted here, not in the inbound totals.</summary>
        public OutboundTotals Outbound { get; init; } = OutboundTotals.None;

        /// <summary>The <c>heartbeat-timeout</c> closes of <c>ClosedByReason</c> by their <see cref="SilenceCause"/> (wire names).</summary>
        public IReadOnlyDictionary<string, long> ClosedByCause { get; init; } = new Dictionary<string, long>();

        /// <summary>The totals of two parts (registry shards, cluster nodes) as one: every count added, reason by reason.</summary>
        public static Stats operator +(Stats a, Stats b)
        {
            return new Stats(a.Active + b.Active, a.Accepted + b.Accepted, Sum(a.ClosedByReason, b.ClosedByReason),
                a.Heartbeats + b.Heartbeats, a.BytesIn + b.BytesIn, a.BytesOut + b.BytesOut)
            {
                Refused = a.Refused + b.Refused,
                Outbound = a.Outbound + b.Outbound,
                ClosedByCause = Sum(a.ClosedByCause ?? new Dictionary<string, long>(), b.ClosedByCause ?? new Dictionary<string, long>()),
            };
        }

        private static Dictionary<string, long> Sum(IReadOnlyDictionary<string, long> a, IReadOnlyDictionary<string, long> b)
        {
            var sum = new Dictionary<string, long>(a);
            foreach (var (key, count) in b)
                sum[key] = sum.GetValueOrDefault(key) + count;
            return sum;
        }

        /// <summary>All zero, no reasons: the start of a sum.</summary>
        public static Stats Empty { get; } = new(0, 0, new Dictionary<string, long>(), 0, 0, 0);
    }

    /// <summary>Outbound connections: <c>Opened</c> = <c>Active</c> + <c>Closed</c>, every reconnect an open.</summary>
    /// <param name="Opened">Connections established by heartbeat clients, every reconnect included.</param>
    /// <param name="Active">Outbound connections up now.</param>
    /// <param name="Closed">Outbound connections that ended.</param>
    public sealed record OutboundTotals(long Opened, long Active, long Closed)
    {
        /// <summary>All zero: a process without heartbeat clients.</summary>
        public static OutboundTotals None { get; } = new(0, 0, 0);

        /// <summary>The totals of two parts as one: every count added.</summary>
        public static OutboundTotals operator +(OutboundTotals a, OutboundTotals b) =>
            new(a.Opened + b.Opened, a.Active + b.Active, a.Closed + b.Closed);
    }
}
