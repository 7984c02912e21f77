using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Registry;

/// <summary>One shard of the connection table: the live connections whose id hashes here, plus totals.</summary>
internal sealed class RegistryShard : ReceiveActor
{
    /// <param name="changes">Told every open and close (not updates), in order: the cluster's replication, or null.</param>
    public static Props Props(IActorRef? changes = null) => Akka.Actor.Props.Create(() => new RegistryShard(changes));

    private readonly Dictionary<string, ConnectionStatus> _live = [];
    private readonly Dictionary<string, long> _closedByReason = [];
    private long _accepted;
    // Counters of connections that have closed; live ones are summed from their latest status.
    private long _closedHeartbeats, _closedBytesIn, _closedBytesOut;

    public RegistryShard(IActorRef? changes)
    {
        Receive<RegistryProtocol.ConnectionOpened>(opened =>
        {
            _accepted++;
            _live[opened.Status.Id] = opened.Status;
            changes?.Tell(opened);
        });
        Receive<RegistryProtocol.ConnectionUpdated>(updated =>
        {
            // An update racing behind the close must not resurrect the connection.
            if (_live.ContainsKey(updated.Status.Id)) _live[updated.Status.Id] = updated.Status;
        });
        Receive<RegistryProtocol.ConnectionClosed>(closed =>
        {
            _live.Remove(closed.Status.Id);
            CountClose(closed.Reason);
            _closedHeartbeats += closed.Status.HeartbeatsReceived;
            _closedBytesIn += closed.Status.BytesIn;
            _closedBytesOut += closed.Status.BytesOut;
            changes?.Tell(closed);
        });
        Receive<RegistryProtocol.ConnectionRejected>(rejected =>
        {
            _accepted++;
            CountClose(rejected.Reason);
        });
        Receive<RegistryProtocol.GetConnection>(query =>
            Sender.Tell(new RegistryProtocol.ConnectionFound(query.Id, _live.GetValueOrDefault(query.Id))));
        Receive<RegistryProtocol.GetConnections>(_ =>
            Sender.Tell(new RegistryProtocol.Connections(_live.Values.ToArray())));
        Receive<RegistryProtocol.GetStats>(_ => Sender.Tell(Stats()));
        Receive<RegistryProtocol.QueryConnections>(query =>
        {
            var matching = _live.Values.Where(query.Filter.Matches).ToArray();
            IEnumerable<ConnectionStatus> items = matching.Order(ConnectionOrder.Instance);
            if (query.Take is { } take) items = items.Take(take);
            Sender.Tell(new RegistryProtocol.ConnectionsPage(matching.Length, items.ToArray(), []));
        });
    }

    private void CountClose(CloseReason reason)
    {
        var name = reason.ToWireName();
        _closedByReason[name] = _closedByReason.GetValueOrDefault(name) + 1;
    }

    private RegistryProtocol.Stats Stats()
    {
        long heartbeats = _closedHeartbeats, bytesIn = _closedBytesIn, bytesOut = _closedBytesOut;
        foreach (var status in _live.Values)
        {
            heartbeats += status.HeartbeatsReceived;
            bytesIn += status.BytesIn;
            bytesOut += status.BytesOut;
        }
        return new RegistryProtocol.Stats(_live.Count, _accepted, new Dictionary<string, long>(_closedByReason), heartbeats, bytesIn, bytesOut);
    }
}
