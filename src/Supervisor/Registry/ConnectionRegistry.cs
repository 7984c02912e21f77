using Akka.Actor;
using Akka.Event;
using Supervisor.Messages.Protocol;

namespace Supervisor.Registry;

/// <summary>
/// The connection table, split into shards by a stable hash of the connection id (the source
/// document's sharded connection pool). Updates go to one shard; table-wide queries are
/// gathered from every shard by a short-lived <see cref="ShardGather{TReply}"/>. The registry subscribes to the
/// connections' lifecycle events (<see cref="IConnectionLifecycleEvent"/> on the EventStream) and routes each to the
/// shard of its connection; heartbeats and bytes are not events, but the connections' <see cref="Connections.LiveTraffic"/>,
/// read when the totals are asked for.
/// </summary>
internal sealed class ConnectionRegistry : ReceiveActor
{
    /// <summary>The registry; deploy it with <see cref="Connections.ConnectionDispatcher.Deploy"/>'s dispatcher to keep updates off the thread pool.</summary>
    /// <param name="traffic">The live heartbeat and byte counters the totals report; null: none (zeros).</param>
    public static Props Props(int shards, Connections.LiveTraffic? traffic = null) => Akka.Actor.Props.Create(() => new ConnectionRegistry(shards, traffic));

    private static readonly TimeSpan GatherTimeout = TimeSpan.FromSeconds(5);
    private readonly IActorRef[] _shards;

    public ConnectionRegistry(int shards, Connections.LiveTraffic? traffic)
    {
        // Shards apply updates on the thread of the connection that sent them (the inline connection
        // dispatcher; the router itself is deployed there too): an update is a dictionary write, and
        // waking a thread-pool thread for each cost more than the write (bench/README.md, issue 7).
        var inline = Connections.ConnectionDispatcher.Deploy(Context.System);
        _shards = Enumerable.Range(0, shards)
            .Select(i => Context.ActorOf(RegistryShard.Props().WithDispatcher(inline.Dispatcher), $"shard-{i}"))
            .ToArray();

        // A restart of this router would restart the shards and lose the table and the totals, so a
        // malformed message is dropped here with a warning instead of failing the actor.
        Receive<ConnectionLifecycle.Refused>(m => Route(m.Remote, m));
        Receive<IConnectionLifecycleEvent>(m => Route(m.ConnectionId, m));
        Receive<RegistryProtocol.ConnectionUpdated>(m => Route(m.Status?.Id, m));
        Receive<RegistryProtocol.GetConnection>(m => Route(m.Id, m));
        Receive<RegistryProtocol.GetConnections>(m => Gather<RegistryProtocol.Connections>(m,
            parts => new RegistryProtocol.Connections(parts.SelectMany(p => p.Items).Order(ConnectionOrder.Instance).ToArray())));
        Receive<RegistryProtocol.QueryConnections>(m => Gather<RegistryProtocol.ConnectionsPage>(m,
            parts => RegistryProtocol.ConnectionsPage.Merge(parts, m.Take)));
        Receive<RegistryProtocol.GetStats>(m => Gather<RegistryProtocol.Stats>(m,
            parts => WithTraffic(parts.Aggregate(RegistryProtocol.Stats.Empty, (sum, part) => sum + part), traffic)));
    }

    protected override void PreStart() => Context.System.EventStream.Subscribe(Self, typeof(IConnectionLifecycleEvent));

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);

    /// <summary>The shards' books with the live heartbeat and byte counters, read now (current to the frame).</summary>
    private static RegistryProtocol.Stats WithTraffic(RegistryProtocol.Stats books, Connections.LiveTraffic? traffic)
    {
        if (traffic is null) return books;
        var (heartbeats, bytesIn, bytesOut) = traffic.Read();
        return books with { Heartbeats = heartbeats, BytesIn = bytesIn, BytesOut = bytesOut };
    }

    /// <summary>
    /// A shard that fails on one message keeps its table: a restart would forget every live connection
    /// and the totals, and the books (accepted = active + closed) would no longer balance.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Resume);

    /// <summary>Stable across processes and nodes, unlike <see cref="string.GetHashCode()"/>.</summary>
    public static int ShardIndex(string key, int shards)
    {
        // FNV-1a over the UTF-16 code units.
        var hash = 2166136261u;
        foreach (var c in key)
            hash = (hash ^ c) * 16777619u;
        return (int)(hash % (uint)shards);
    }

    private void Route(string? key, object message)
    {
        if (string.IsNullOrEmpty(key))
        {
            Context.GetLogger().Warning("Registry dropped a malformed {0}", message.GetType().Name);
            return;
        }
        _shards[ShardIndex(key, _shards.Length)].Forward(message);
    }

    private void Gather<TReply>(object query, Func<IReadOnlyList<TReply>, object> combine) =>
        Context.ActorOf(ShardGather<TReply>.Props(_shards, query, combine, Sender, GatherTimeout));
}

/// <summary>Asks every shard the same question and answers the original sender with the combined replies.</summary>
internal sealed class ShardGather<TReply> : ReceiveActor
{
    public static Props Props(IReadOnlyList<IActorRef> shards, object query, Func<IReadOnlyList<TReply>, object> combine, IActorRef replyTo, TimeSpan timeout) =>
        Akka.Actor.Props.Create(() => new ShardGather<TReply>(shards, query, combine, replyTo, timeout));

    private readonly List<TReply> _replies;

    public ShardGather(IReadOnlyList<IActorRef> shards, object query, Func<IReadOnlyList<TReply>, object> combine, IActorRef replyTo, TimeSpan timeout)
    {
        _replies = new List<TReply>(shards.Count);
        foreach (var shard in shards) shard.Tell(query);
        Context.SetReceiveTimeout(timeout);

        Receive<TReply>(reply =>
        {
            _replies.Add(reply);
            if (_replies.Count < shards.Count) return;
            replyTo.Tell(combine(_replies));
            Context.Stop(Self);
        });
        Receive<ReceiveTimeout>(_ =>
        {
            replyTo.Tell(new Status.Failure(new TimeoutException($"{shards.Count - _replies.Count} of {shards.Count} registry shards did not answer")));
            Context.Stop(Self);
        });
    }
}
