using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Connections;

/// <summary>
/// The application's side of every supervised connection, in the spirit of Kestrel's <c>ConnectionHandler</c> and a
/// SignalR hub: the supervisor owns the socket, the heartbeat and the close; the handler gets the connection's
/// lifecycle and its data frames (type 2), and may await what it likes in each callback.
/// <list type="bullet">
/// <item>One instance serves every connection (a DI singleton), so it must be safe to call from many at once.</item>
/// <item>Per connection, calls come one at a time and in order: <see cref="OnConnectedAsync"/>, then each data
/// frame as read, each call only after the task of the one before it completed. A heartbeat never waits for the
/// handler: it is answered when it is read.</item>
/// <item>Data frames read but not yet handled are bounded (<c>handler.max-frames-in-flight</c>); past the bound the
/// connection stops reading its socket until the handler catches up (backpressure: the peer's sends block).</item>
/// <item>A callback that throws, or whose task faults or runs longer than <c>handler.timeout</c>, closes only its
/// connection, with <c>internal-error</c>.</item>
/// <item>A callback that completes synchronously costs no allocation of its own; the echo handler is such a one.
/// Its synchronous part runs on the connection's thread, which may be the socket engine's
/// (<see cref="ConnectionDispatcher"/>): never block there, await instead.</item>
/// </list>
/// </summary>
public abstract class ConnectionHandler
{
    /// <summary>The connection was accepted; no data frame is handed over before this completes.</summary>
    public virtual ValueTask OnConnectedAsync(IConnection connection) => default;

    /// <summary>A data frame from the peer.</summary>
    public abstract ValueTask OnDataAsync(IConnection connection, Frame frame);

    /// <summary>
    /// The connection closed with <paramref name="reason"/> (the one reason every close has, DESIGN §3). It is called
    /// once, when the close is decided, possibly while an <see cref="OnDataAsync"/> is still awaiting; the connection
    /// accepts no more sends. Its failure is logged and changes nothing.
    /// </summary>
    public virtual ValueTask OnClosedAsync(IConnection connection, CloseReason reason, string detail) => default;
}

/// <summary>
/// A handle on one supervised connection, safe to use from any thread and after any await (Netty's
/// <c>Channel.writeAndFlush</c>): what a handler gets in every callback, and what <see cref="IConnectionHub"/> finds by id.
/// </summary>
public interface IConnection
{
    /// <summary>The connection's id, as in the registry and the operator API (<c>c17</c>, <c>c17@host:port</c> in a cluster).</summary>
    string Id { get; }

    /// <summary>The peer's address as <c>host:port</c> (the client's, behind a PROXY protocol balancer).</summary>
    string Remote { get; }

    /// <summary>The name of the listener that accepted it (<c>tcp</c>, <c>ws</c>, or a name from <c>supervisor.listeners</c>).</summary>
    string Listener { get; }

    /// <summary>The connection's clock (the actor system's scheduler: virtual in tests and simulations).</summary>
    DateTimeOffset Now { get; }

    /// <summary>
    /// Queues a frame for the peer; false once the connection is closing or closed. A frame the peer does not read
    /// counts against <c>max-pending-write</c>, past which the connection closes with <c>write-failed</c>.
    /// </summary>
    bool Send(Frame frame);

    /// <summary>Closes the connection: the peer gets the notice <c>"&lt;reason&gt;: &lt;detail&gt;"</c>. False when it was closing already.</summary>
    bool Close(CloseReason reason, string detail);

    /// <summary>The connection's status as of now (counters, state, the handler's backlog in <see cref="ConnectionStatus.Handler"/>); null once it is gone.</summary>
    Task<ConnectionStatus?> GetStatusAsync(CancellationToken cancel = default);
}

/// <summary>The source document's echo server: a data frame comes back as a data frame, stamped with the server's time.</summary>
public sealed class EchoHandler : ConnectionHandler
{
    /// <summary>Sends the frame back with the server's time as its timestamp; completes synchronously.</summary>
    public override ValueTask OnDataAsync(IConnection connection, Frame frame)
    {
        connection.Send(frame with { Timestamp = connection.Now.ToUnixTimeSeconds() });
        return default;
    }
}

/// <summary>How the application's <see cref="ConnectionHandler"/> is run (<c>supervisor.handler</c>).</summary>
/// <param name="MaxFramesInFlight">Data frames read and not yet handled, per connection, past which it stops reading its socket.</param>
/// <param name="Timeout">The longest one callback may run before its connection is closed with <c>internal-error</c>; null: no limit.</param>
internal sealed record HandlerSettings(int MaxFramesInFlight, TimeSpan? Timeout)
{
    public static HandlerSettings Default { get; } = new(64, TimeSpan.FromSeconds(30));
}
