using Supervisor.Messages.Wire;

namespace Supervisor.Messages.Protocol;

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

    public sealed record GetConnections : IRegistryMessage
    {
        public static GetConnections Instance { get; } = new();
    }

    public sealed record Connections(IReadOnlyList<ConnectionStatus> Items);

    /// <summary>
    /// The connections that match <c>Filter</c>: how many, and the first <c>Take</c> of them in <see cref="ConnectionOrder"/>
    /// (all when null). Filtering and the page bound travel to the data, so a page of 50 from a table of 95,000 spread
    /// over five nodes moves 50 rows per node, not the table.
    /// </summary>
    public sealed record QueryConnections(ConnectionFilter Filter, int? Take) : IRegistryMessage;

    /// <summary>
    /// Answer to <see cref="QueryConnections"/>. <c>Unanswered</c> names the cluster nodes that did not answer in time:
    /// their connections are neither counted in <c>Matching</c> nor listed (empty on a single node).
    /// </summary>
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

    public sealed record GetConnection(string Id) : IRegistryMessage;

    /// <summary>Answer to <see cref="GetConnection"/>; <c>Status</c> is null for an unknown id.</summary>
    public sealed record ConnectionFound(string Id, ConnectionStatus? Status);

    public sealed record GetStats : IRegistryMessage
    {
        public static GetStats Instance { get; } = new();
    }

    /// <summary>
    /// Totals over the process's life, of inbound connections (DESIGN §3, "One lifecycle"): <c>Accepted</c> = <c>Active</c> + every close in
    /// <c>ClosedByReason</c>, refusals included (<see cref="Refused"/> of them). <c>Heartbeats</c> and bytes cover live and
    /// closed connections. Outbound connections have their own totals, <see cref="Outbound"/>.
    /// </summary>
    public sealed record Stats(
        long Active,
        long Accepted,
        IReadOnlyDictionary<string, long> ClosedByReason,
        long Heartbeats,
        long BytesIn,
        long BytesOut)
    {
        public long Closed(CloseReason reason) => ClosedByReason.TryGetValue(reason.ToWireName(), out var n) ? n : 0;

        /// <summary>Sockets refused before they got a connection; each is also in <c>Accepted</c> and in <c>ClosedByReason</c>.</summary>
        public long Refused { get; init; }

        /// <summary>Connections this process dialled (heartbeat clients and pools): counted here, not in the inbound totals.</summary>
        public OutboundTotals Outbound { get; init; } = OutboundTotals.None;

        /// <summary>The <c>heartbeat-timeout</c> closes of <c>ClosedByReason</c> by their <see cref="SilenceCause"/> (wire names).</summary>
        public IReadOnlyDictionary<string, long> ClosedByCause { get; init; } = new Dictionary<string, long>();

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

        public static Stats Empty { get; } = new(0, 0, new Dictionary<string, long>(), 0, 0, 0);
    }

    /// <summary>Outbound connections: <c>Opened</c> = <c>Active</c> + <c>Closed</c>, every reconnect an open.</summary>
    public sealed record OutboundTotals(long Opened, long Active, long Closed)
    {
        public static OutboundTotals None { get; } = new(0, 0, 0);

        public static OutboundTotals operator +(OutboundTotals a, OutboundTotals b) =>
            new(a.Opened + b.Opened, a.Active + b.Active, a.Closed + b.Closed);
    }
}
