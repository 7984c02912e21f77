using Supervisor.Messages.Wire;

namespace Supervisor.Messages.Protocol;

/// <summary>Which side opened a connection: a peer that connected to a listener, or this process dialling out (a heartbeat client).</summary>
public enum ConnectionDirection
{
    Inbound,
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

    ConnectionDirection Direction { get; }

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
        public string ConnectionId => Status?.Id ?? "";
    }

    /// <summary>The connection moved between <c>active</c> and <c>suspect</c> (<see cref="ConnectionStatus.State"/> is the new state).</summary>
    public sealed record StateChanged(ConnectionStatus Status, ConnectionDirection Direction, DateTimeOffset At) : IConnectionLifecycleEvent
    {
        public string ConnectionId => Status?.Id ?? "";
    }

    /// <summary>
    /// The close is decided: from this event on the connection is <c>closed</c> with <c>Reason</c>, no longer <c>active</c>.
    /// <c>Status</c> is in state <c>closing</c> and carries the final counters (the close notice included).
    /// </summary>
    public sealed record Closed(ConnectionStatus Status, ConnectionDirection Direction, CloseReason Reason, string Detail, DateTimeOffset At)
        : IConnectionLifecycleEvent
    {
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
    public sealed record Refused(string Remote, string Listener, CloseReason Reason, string Detail, DateTimeOffset At) : IConnectionLifecycleEvent
    {
        public string ConnectionId => "";

        public ConnectionDirection Direction => ConnectionDirection.Inbound;
    }
}
