using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Registry;

/// <summary>
/// One shard of the connection table: the connections whose id hashes here, and the totals of their lifecycle events
/// (DESIGN §3, "One lifecycle"). Every event of one connection lands in the same shard, so each shard's books balance on their own
/// (accepted = active + closed) and so do their sums.
/// </summary>
internal sealed class RegistryShard : ReceiveActor
{
    public static Props Props() => Akka.Actor.Props.Create(() => new RegistryShard());

    // Open connections (inbound and outbound), refreshed in place, and closed ones whose socket is not yet released
    // (state closing: their last status, kept as is).
    private readonly Dictionary<string, RegistryRow> _live = [];
    private readonly Dictionary<string, ConnectionStatus> _closing = [];
    private readonly Dictionary<string, long> _closedByReason = [];
    private readonly Dictionary<string, long> _closedByCause = [];
    private long _accepted, _active, _refused;
    private long _outboundOpened, _outboundActive, _outboundClosed;

    public RegistryShard()
    {
        Receive<ConnectionLifecycle.Opened>(opened =>
        {
            if (!_live.TryAdd(opened.Status.Id, new RegistryRow(opened.Status))) return;
            if (opened.Direction == ConnectionDirection.Inbound)
            {
                _accepted++;
                _active++;
            }
            else
            {
                _outboundOpened++;
                _outboundActive++;
            }
        });
        Receive<ConnectionLifecycle.StateChanged>(changed => Update(changed.Status));
        Receive<RegistryProtocol.ConnectionUpdated>(updated => Update(updated.Status));
        Receive<ConnectionLifecycle.Closed>(closed =>
        {
            if (!_live.Remove(closed.Status.Id)) return;
            _closing[closed.Status.Id] = closed.Status;
            if (closed.Direction == ConnectionDirection.Inbound)
            {
                _active--;
                CountClose(closed.Reason);
                if (closed.Cause is { } cause)
                    _closedByCause[cause.ToWireName()] = _closedByCause.GetValueOrDefault(cause.ToWireName()) + 1;
            }
            else
            {
                _outboundActive--;
                _outboundClosed++;
            }
        });
        Receive<ConnectionLifecycle.Released>(released => _closing.Remove(released.ConnectionId));
        Receive<ConnectionLifecycle.Refused>(refused =>
        {
            _accepted++;
            _refused++;
            CountClose(refused.Reason);
        });
        Receive<RegistryProtocol.GetConnection>(query =>
            Sender.Tell(new RegistryProtocol.ConnectionFound(query.Id, _live.GetValueOrDefault(query.Id)?.Status ?? _closing.GetValueOrDefault(query.Id))));
        Receive<RegistryProtocol.GetConnections>(_ => Sender.Tell(new RegistryProtocol.Connections(Rows().ToArray())));
        Receive<RegistryProtocol.GetStats>(_ => Sender.Tell(Stats()));
        Receive<RegistryProtocol.QueryConnections>(query =>
        {
            var matching = Rows().Where(query.Filter.Matches).ToArray();
            IEnumerable<ConnectionStatus> items = matching.Order(ConnectionOrder.Instance);
            if (query.Take is { } take) items = items.Take(take);
            Sender.Tell(new RegistryProtocol.ConnectionsPage(matching.Length, items.ToArray(), []));
        });
    }

    /// <summary>A fresher row of an open connection; one racing behind its close must not bring it back.</summary>
    private void Update(ConnectionStatus status) => _live.GetValueOrDefault(status.Id)?.Refresh(status);

    private IEnumerable<ConnectionStatus> Rows() => _live.Values.Select(row => row.Status).Concat(_closing.Values);

    private void CountClose(CloseReason reason)
    {
        var name = reason.ToWireName();
        _closedByReason[name] = _closedByReason.GetValueOrDefault(name) + 1;
    }

    /// <summary>This shard's books; heartbeats and bytes are the registry's to add, from the live counters.</summary>
    private RegistryProtocol.Stats Stats() =>
        new(_active, _accepted, new Dictionary<string, long>(_closedByReason), 0, 0, 0)
        {
            Refused = _refused,
            ClosedByCause = new Dictionary<string, long>(_closedByCause),
            Outbound = new RegistryProtocol.OutboundTotals(_outboundOpened, _outboundActive, _outboundClosed),
        };
}
