using Supervisor.Messages.Wire;

namespace Supervisor.Messages.Protocol;

/// <summary>Which side opened a connection: a peer that connected to a listener, or this process dialling out (a heartbeat client).</summary>
public enum ConnectionDirection
{
    /// <summary>A peer connected to one of this process's listeners: counted in the inbound totals (<c>accepted</c>, <c>active</c>, <c>closed</c>).</summary>
    Inbound,
    /// <summary>This process dialled out (a heartbeat client or pool member): counted in the outbound totals only.</summary>
    Outbound,
}

/// <summary>
/// One event of a connection's life. Every connection, inbound and outbound, over TCP, TLS or WebSocket, publishes its
/// events once, in order, on the actor system's EventStream (<see cref="ConnectionLifecycle"/>); the registry, the monitor,
/// the meter, the log, the cluster ledger and the application subscribe to them (DESIGN §3, "One lifecycle").
/// </summary>
public interface IConnectionLifecycleEvent
{
    /// <summary>Empty for <see cref="ConnectionLifecycle.Refused"/>: a refused socket never got an id.</summary>
    string ConnectionId { get; }

    /// <summary>Whether a peer connected to this process or this process dialled out; decides which totals the event moves.</summary>
    ConnectionDirection Direction { get; }

    /// <summary>When it happened, by the publisher's clock.</summary>
    DateTimeOffset At { get; }
}

/// <summary>
/// The lifecycle of a connection: <see cref="Opened"/>, any number of <see cref="StateChanged"/>, then <see cref="Closed"/>
/// (the close decided, with its one reason and final counters) and <see cref="Released"/> (its socket let go); or, for a
/// socket turned away before it was adopted, <see cref="Refused"/> alone. Heartbeats are not events: their counts are
/// read on demand from striped counters (DESIGN §3, "One lifecycle").
/// </summary>
public static class ConnectionLifecycle
{
    /// <summary>The connection got its actor: counted in <c>accepted</c> and <c>active</c>.</summary>
    public sealed record Opened(ConnectionStatus Status, ConnectionDirection Direction, DateTimeOffset At) : IConnectionLifecycleEvent
    {
        /// <summary>The connection's id, <see cref="ConnectionStatus.Id"/>.</summary>
        public string ConnectionId => Status?.Id ?? "";
    }

    /// <summary>The connection moved between <c>active</c> and <c>suspect</c> (<see cref="ConnectionStatus.State"/> is the new state).</summary>
    public sealed record StateChanged(ConnectionStatus Status, ConnectionDirection Direction, DateTimeOffset At) : IConnectionLifecycleEvent
    {
        /// <summary>The connection's id, <see cref="ConnectionStatus.Id"/>.</summary>
        public string ConnectionId => Status?.Id ?? "";
    }

    /// <summary>
    /// The close is decided: from this event on the connection is <c>closed</c> with <c>Reason</c>, no longer <c>active</c>.
    /// <c>Status</c> is in state <c>closing</c> and carries the final counters (the close notice included).
    /// </summary>
    public sealed record Closed(ConnectionStatus Status, ConnectionDirection Direction, CloseReason Reason, string Detail, DateTimeOffset At)
        : IConnectionLifecycleEvent
    {
        /// <summary>The connection's id, <see cref="ConnectionStatus.Id"/>.</summary>
        public string ConnectionId => Status?.Id ?? "";

        /// <summary>On a <c>heartbeat-timeout</c> close: why the peer went quiet, from TCP_INFO; null on every other close.</summary>
        public SilenceCause? Cause { get; init; }
    }

    /// <summary>The socket of a closed connection is released (after its linger for the peer's FIN): it leaves the connection table.</summary>
    public sealed record Released(string ConnectionId, ConnectionDirection Direction, DateTimeOffset At) : IConnectionLifecycleEvent;

    /// <summary>
    /// A socket turned away before it got a connection (over a limit, or during shutdown). Counted in <c>refused</c>, and,
    /// as it was taken from the listener's accept queue, in <c>accepted</c> and <c>closed</c> by its reason at once.
    /// </summary>
    /// <param name="Remote">The peer's address, <c>address:port</c>.</param>
    /// <param name="Listener">The name of the listener that took the socket.</param>
    /// <param name="Reason">Why, e.g. <see cref="CloseReason.RejectedCapacity"/> or <see cref="CloseReason.ServerShutdown"/>; announced to the peer where the transport can.</param>
    /// <param name="Detail">What happened, for a log line.</param>
    /// <param name="At">When it was refused.</param>
    public sealed record Refused(string Remote, string Listener, CloseReason Reason, string Detail, DateTimeOffset At) : IConnectionLifecycleEvent
    {
        /// <summary>Always empty: a refused socket never got an id.</summary>
        public string ConnectionId => "";

        /// <summary>Always <see cref="ConnectionDirection.Inbound"/>: only a listener refuses sockets.</summary>
        public ConnectionDirection Direction => ConnectionDirection.Inbound;
    }
}
