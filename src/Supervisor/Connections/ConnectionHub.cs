using System.Threading.Channels;
using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Connections;

/// <summary>
/// Reaches this node's connections by id from anywhere in the application, outside any handler callback (SignalR's
/// <c>IHubContext.Clients.Client(id)</c>), and tells the application when connections open and close. Safe to use
/// from any thread; resolve it from DI.
/// </summary>
public interface IConnectionHub
{
    /// <summary>
    /// Hands a frame to a connection of this node; false when there is none with that id. One whose close is decided
    /// (lingering for its peer's FIN, already counted closed) is still found until its socket is released, and drops it.
    /// </summary>
    bool Send(string connectionId, Frame frame);

    /// <summary>Closes a live connection of this node with a reason its peer is told; false when there is none.</summary>
    bool Close(string connectionId, CloseReason reason, string detail);

    /// <summary>A connection's status as of now; null when no connection of this node has that id.</summary>
    Task<ConnectionStatus?> GetStatusAsync(string connectionId, CancellationToken cancel = default);

    /// <summary>
    /// Opens and closes of this node's connections from now on, in the order each connection saw them, until
    /// <paramref name="cancel"/>. A reader that falls more than <see cref="ConnectionHub.EventBuffer"/> events behind
    /// loses the oldest (counted in <see cref="ConnectionEvents.Skipped"/>), so a slow reader never grows memory.
    /// </summary>
    IAsyncEnumerable<ConnectionEvent> Events(CancellationToken cancel = default);
}

/// <summary>Where an application finds the hub of the connection supervisor running in its actor system.</summary>
public static class ConnectionHubs
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<ActorSystem, ConnectionHub> Hubs = new();

    /// <summary>
    /// The hub of the connection supervisor that <c>WithConnectionSupervisor</c> started in this actor system (resolve
    /// the <see cref="ActorSystem"/> from DI, as Akka.Hosting registers it). Throws when none was started in it.
    /// </summary>
    public static IConnectionHub ConnectionHub(this ActorSystem system) =>
        Hubs.TryGetValue(system, out var hub)
            ? hub
            : throw new InvalidOperationException($"no connection supervisor runs in actor system {system.Name}: call WithConnectionSupervisor on its AkkaConfigurationBuilder");

    internal static ConnectionHub Bind(ActorSystem system, ConnectionHub hub)
    {
        Hubs.AddOrUpdate(system, hub);
        return hub;
    }
}

/// <summary>What <see cref="IConnectionHub.Events"/> tells.</summary>
public abstract record ConnectionEvent(string ConnectionId);

/// <summary>The events <see cref="IConnectionHub.Events"/> tells.</summary>
public static class ConnectionEvents
{
    /// <summary>A connection was accepted and is supervised.</summary>
    public sealed record Opened(ConnectionStatus Status) : ConnectionEvent(Status.Id);

    /// <summary>A connection's close was decided, with its one reason; its status carries its final counters.</summary>
    public sealed record Closed(ConnectionStatus Status, CloseReason Reason, string Detail) : ConnectionEvent(Status.Id);

    /// <summary>The reader fell behind and <c>Count</c> events before this one were dropped.</summary>
    public sealed record Skipped(long Count) : ConnectionEvent("");
}

/// <summary>The hub over the connection supervisor's children: finding one is a read of its child table, no per-connection index.</summary>
internal sealed class ConnectionHub : IConnectionHub
{
    /// <summary>
    /// How long a status question waits for its connection. A live connection answers at once; one that stopped between
    /// being found and being asked never does (the question goes to dead letters), and an Ask without a timeout then
    /// waits forever (seen: a test polling a closing connection's status hung its whole run).
    /// </summary>
    internal static readonly TimeSpan StatusAskTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Events buffered per <see cref="Events"/> reader before the oldest are dropped.</summary>
    public const int EventBuffer = 4096;

    private volatile IActorRef? _supervisor;
    private readonly object _readersLock = new();
    private volatile Reader[] _readers = [];

    /// <summary>The connection supervisor whose children this hub reaches; set once it is started.</summary>
    internal void Attach(IActorRef supervisor) => _supervisor = supervisor;

    public bool Send(string connectionId, Frame frame) => Tell(connectionId, new ConnectionActor.Push(frame));

    public bool Close(string connectionId, CloseReason reason, string detail) =>
        Tell(connectionId, new ConnectionActor.CloseWith(reason, detail));

    public async Task<ConnectionStatus?> GetStatusAsync(string connectionId, CancellationToken cancel = default)
    {
        if (Find(connectionId) is not { } connection) return null;
        try
        {
            var found = await connection.Ask<RegistryProtocol.ConnectionFound>(new ConnectionCommands.GetStatus(connectionId),
                StatusAskTimeout, cancel).ConfigureAwait(false);
            return found.Status;
        }
        catch (AskTimeoutException)
        {
            return null; // it stopped meanwhile
        }
    }

    private bool Tell(string connectionId, object message)
    {
        if (Find(connectionId) is not { } connection) return false;
        connection.Tell(message);
        return true;
    }

    private IActorRef? Find(string connectionId)
    {
        // The supervisor's child table is an immutable container read without a lock, as ActorSelection reads it.
        if (_supervisor is not ActorRefWithCell supervisor || string.IsNullOrEmpty(connectionId)) return null;
        var child = supervisor.GetSingleChild(connectionId);
        return child.IsNobody() || child is ActorRefWithCell { IsTerminated: true } ? null : child;
    }

    /// <summary>Whether anyone reads <see cref="Events"/>: connections build no event otherwise.</summary>
    internal bool Observed => _readers.Length > 0;

    /// <summary>A connection's lifecycle event, as its application sees it: opens and closes (state changes and releases are not told).</summary>
    internal void Observe(IConnectionLifecycleEvent lifecycle)
    {
        ConnectionEvent? e = lifecycle switch
        {
            ConnectionLifecycle.Opened opened => new ConnectionEvents.Opened(opened.Status),
            ConnectionLifecycle.Closed closed => new ConnectionEvents.Closed(closed.Status, closed.Reason, closed.Detail),
            _ => null,
        };
        if (e is null) return;
        foreach (var reader in _readers) reader.Write(e);
    }

    public async IAsyncEnumerable<ConnectionEvent> Events([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancel = default)
    {
        var reader = new Reader();
        lock (_readersLock) _readers = [.. _readers, reader];
        try
        {
            while (await reader.Channel.Reader.WaitToReadAsync(cancel).ConfigureAwait(false))
            {
                var skipped = Interlocked.Exchange(ref reader.Skipped, 0);
                if (skipped > 0) yield return new ConnectionEvents.Skipped(skipped);
                while (reader.Channel.Reader.TryRead(out var e)) yield return e;
            }
        }
        finally
        {
            lock (_readersLock) _readers = _readers.Where(r => r != reader).ToArray();
        }
    }

    private sealed class Reader
    {
        public long Skipped;
        public readonly Channel<ConnectionEvent> Channel;

        public Reader() => Channel = System.Threading.Channels.Channel.CreateBounded<ConnectionEvent>(
            new BoundedChannelOptions(EventBuffer) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            _ => Interlocked.Increment(ref Skipped));

        // DropOldest never refuses a write; what it drops is counted by the callback above.
        public void Write(ConnectionEvent e) => Channel.Writer.TryWrite(e);
    }
}
