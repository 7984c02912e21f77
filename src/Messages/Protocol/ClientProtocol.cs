using Akka.Actor;
using Supervisor.Messages.Wire;

namespace Supervisor.Messages.Protocol;

/// <summary>Where an outbound heartbeat client is in its life.</summary>
public enum ClientState
{
    /// <summary>A connect is in flight (the first one, or one after a backoff).</summary>
    Connecting,
    /// <summary>Connected, and the server answered within the last heartbeat interval.</summary>
    Active,
    /// <summary>Connected, but the last heartbeat went unanswered for a whole interval.</summary>
    Suspect,
    /// <summary>Disconnected, waiting out a backoff delay before the next connect.</summary>
    Reconnecting,
}

/// <summary>What to do with a data frame sent while disconnected and the buffer is full.</summary>
public enum OverflowPolicy
{
    /// <summary>Drop the oldest buffered frame to make room (counted as dropped).</summary>
    DropOldest,
    /// <summary>Drop the frame being sent (counted as dropped).</summary>
    DropNewest,
    /// <summary>Refuse the frame being sent: its sender gets <see cref="ClientProtocol.SendRejected"/> (counted as rejected).</summary>
    Fail,
}

/// <summary>The commands a heartbeat client actor accepts (<see cref="ClientProtocol"/>).</summary>
public interface IClientMessage;

/// <summary>
/// The outbound heartbeat client (DESIGN §1 "client"): commands it takes, and the events it publishes
/// to its subscribers and (the lifecycle ones) on the actor system's EventStream.
/// </summary>
public static class ClientProtocol
{
    /// <summary>Send one data frame (type 2) to the server; buffered while disconnected.</summary>
    public sealed record Send(string Data) : IClientMessage;

    /// <summary>Answer to <see cref="Send"/> when the buffer is full and the overflow policy is <c>fail</c>.</summary>
    /// <param name="Client">The client's name.</param>
    /// <param name="Data">The data that was refused; it was not sent and is not kept.</param>
    /// <param name="Reason">Why, for a log line, e.g. <c>buffer full (1000 frames) while disconnected</c>.</param>
    public sealed record SendRejected(string Client, string Data, string Reason);

    /// <summary>The subscriber gets every <see cref="IClientEvent"/> of this client until it stops or unsubscribes.</summary>
    public sealed record Subscribe(IActorRef Subscriber) : IClientMessage;

    /// <summary>Stops sending this client's events to <c>Subscriber</c>, as <see cref="Subscribe"/> started it.</summary>
    public sealed record Unsubscribe(IActorRef Subscriber) : IClientMessage;

    /// <summary>Answered with <see cref="ClientStatus"/>.</summary>
    public sealed record GetStatus : IClientMessage
    {
        /// <summary>The message's one instance; it carries nothing.</summary>
        public static GetStatus Instance { get; } = new();
    }

    /// <summary>Something that happened to one client; <c>Client</c> is its name.</summary>
    public interface IClientEvent
    {
        /// <summary>The client's name (a pool member's is <c>POOL-INDEX</c>).</summary>
        string Client { get; }
    }

    /// <summary>Lifecycle events, also published on the EventStream.</summary>
    public interface ILifecycleEvent : IClientEvent;

    /// <summary>The socket is connected; <c>Attempt</c> is how many connects it took since the last stable period.</summary>
    /// <param name="Client">The client's name.</param>
    /// <param name="Remote">The server's address as connected, <c>address:port</c>.</param>
    /// <param name="Local">This end's address, <c>address:port</c>.</param>
    /// <param name="Attempt">Backoff delays waited since the last stable period: 0 when the client connected without waiting one.</param>
    public sealed record Connected(string Client, string Remote, string Local, int Attempt) : ILifecycleEvent;

    /// <summary>An established connection ended; exactly one reason per disconnect (DESIGN §3 names).</summary>
    /// <param name="Client">The client's name.</param>
    /// <param name="Reason">Why it ended, e.g. <see cref="CloseReason.HeartbeatTimeout"/> or <see cref="CloseReason.PeerClosed"/>.</param>
    /// <param name="Detail">What happened, for a log line; quotes the server's error notice when it sent one.</param>
    public sealed record Disconnected(string Client, CloseReason Reason, string Detail) : ILifecycleEvent;

    /// <summary>The next connect is due after <c>Delay</c>; <c>Attempt</c> counts from 1 since the last stable period.</summary>
    /// <param name="Client">The client's name.</param>
    /// <param name="Attempt">The number of failed connects counted so far (a wait the server asked for counts none).</param>
    /// <param name="Delay">The backoff, drawn with full jitter between <c>min-backoff</c> and the capped exponential bound; or the wait the server asked for.</param>
    /// <param name="LastError">Why the previous connect failed or the connection ended, for a log line.</param>
    public sealed record Reconnecting(string Client, int Attempt, TimeSpan Delay, string? LastError) : ILifecycleEvent
    {
        /// <summary>The delay is the one the server asked for (<c>reconnect-after</c> in its notice), not the backoff.</summary>
        public bool AsServerAsked { get; init; }

        /// <summary>The endpoint the next connect goes to (<c>host:port</c>): with several endpoints, not always the last one.</summary>
        public string? Endpoint { get; init; }
    }

    /// <summary>Active to suspect (a heartbeat went unanswered for an interval) and back.</summary>
    public sealed record StateChanged(string Client, ClientState State) : IClientEvent;

    /// <summary>The client wrote a heartbeat (type 0) to the server: right after connecting, then every heartbeat interval.</summary>
    /// <param name="Client">The client's name.</param>
    /// <param name="Seq">The heartbeat's seq, counting up from 1 over the client's life; null with <c>heartbeat.seq = off</c>.</param>
    public sealed record HeartbeatSent(string Client, long? Seq) : IClientEvent;

    /// <summary>A heartbeat response; <c>RttMs</c> is null when it matched no heartbeat still outstanding.</summary>
    public sealed record HeartbeatAnswered(string Client, long? Seq, double? RttMs) : IClientEvent;

    /// <summary>The server pinged (type 0) and was answered (type 1, its seq echoed).</summary>
    public sealed record ServerPinged(string Client, long? Seq) : IClientEvent;

    /// <summary>A data frame (type 2) or error notice (type 3) from the server.</summary>
    public sealed record FrameReceived(string Client, Frame Frame) : IClientEvent;

    /// <summary>A data frame was dropped by the overflow policy while disconnected.</summary>
    public sealed record FrameDropped(string Client, string Data, OverflowPolicy Policy) : IClientEvent;

    /// <summary>One client as of now: the answer to <see cref="GetStatus"/>.</summary>
    /// <param name="Client">The client's name.</param>
    /// <param name="Endpoint">The configured <c>host:port</c>.</param>
    /// <param name="State">Where the client is in its life.</param>
    /// <param name="Remote">The connected address, null while not connected.</param>
    /// <param name="Local">This end's address, <c>address:port</c>; null while not connected.</param>
    /// <param name="ConnectedAt">When the current connection was established; null while not connected.</param>
    /// <param name="Attempt">Connect attempts since the last stable period (0 once stable).</param>
    /// <param name="Connects">Connections established since the client started, every reconnect included.</param>
    /// <param name="RttMs">Round-trip time of the last answered heartbeat of the current (or last) connection, in milliseconds; null until one is answered.</param>
    /// <param name="MissedHeartbeats">Heartbeat intervals in a row that passed without a frame from the server; 0 while active.</param>
    /// <param name="Buffered">Data frames waiting for a connection.</param>
    /// <param name="BufferCapacity">How many data frames the buffer holds at most (<c>buffer.size</c>).</param>
    /// <param name="Dropped">Data frames dropped by the overflow policy (drop-oldest, drop-newest).</param>
    /// <param name="Rejected">Data frames refused by the <c>fail</c> policy.</param>
    /// <param name="DataSent">Data frames written to the server, buffered ones included once they went out.</param>
    /// <param name="FramesReceived">Data frames and error notices received from the server (heartbeat traffic is not counted).</param>
    public sealed record ClientStatus(
        string Client,
        string Endpoint,
        ClientState State,
        string? Remote,
        string? Local,
        DateTimeOffset? ConnectedAt,
        int Attempt,
        long Connects,
        double? RttMs,
        int MissedHeartbeats,
        int Buffered,
        int BufferCapacity,
        long Dropped,
        long Rejected,
        long DataSent,
        long FramesReceived);
}

/// <summary>The commands a heartbeat pool actor accepts (<see cref="PoolProtocol"/>).</summary>
public interface IPoolMessage;

/// <summary>A supervised pool of heartbeat clients to one endpoint, picked by consistent hashing.</summary>
public static class PoolProtocol
{
    /// <summary>Answered with <see cref="Lease"/>, or <see cref="NoHealthyConnection"/> when every member is suspect or down.</summary>
    public sealed record Get(string Key) : IPoolMessage;

    /// <summary>The healthy member for the key: its owner on the ring, or the next healthy one clockwise.</summary>
    /// <param name="Key">The key asked for.</param>
    /// <param name="Member">Index of the member in the pool, 0 to size - 1.</param>
    /// <param name="Client">The member's client name.</param>
    /// <param name="Connection">The member's client actor; tell it <see cref="ClientProtocol.Send"/>.</param>
    public sealed record Lease(string Key, int Member, string Client, IActorRef Connection);

    /// <summary>Answer to <see cref="Get"/> or <see cref="SendTo"/> when every member is suspect or reconnecting: nothing was leased or sent.</summary>
    /// <param name="Key">The key asked for.</param>
    /// <param name="Pool">The pool's name.</param>
    public sealed record NoHealthyConnection(string Key, string Pool);

    /// <summary>Sends data through the member <see cref="Get"/> would lease; answered with <see cref="NoHealthyConnection"/> only when there is none.</summary>
    public sealed record SendTo(string Key, string Data) : IPoolMessage;

    /// <summary>Answered with <see cref="PoolStats"/>.</summary>
    public sealed record GetStats : IPoolMessage
    {
        /// <summary>The message's one instance; it carries nothing.</summary>
        public static GetStats Instance { get; } = new();
    }

    /// <summary>How a member looks to the pool: healthy members are leased, the others are skipped.</summary>
    public enum MemberHealth
    {
        /// <summary>Connected and its heartbeats answered: leased.</summary>
        Healthy,
        /// <summary>Connected, but a heartbeat went unanswered for an interval: skipped until it answers again.</summary>
        Suspect,
        /// <summary>Not connected: connecting for the first time or reconnecting after a backoff.</summary>
        Reconnecting,
    }

    /// <summary>One member of a pool in <see cref="PoolStats"/>.</summary>
    /// <param name="Member">Index of the member in the pool, 0 to size - 1.</param>
    /// <param name="Client">The member's client name, <c>POOL-INDEX</c>.</param>
    /// <param name="Health">How the member looks to the pool now.</param>
    public sealed record MemberStatus(int Member, string Client, MemberHealth Health);

    /// <summary>Pool statistics, the answer to <see cref="GetStats"/>; <c>Reconnecting</c> counts every member without a connection.</summary>
    /// <param name="Pool">The pool's name.</param>
    /// <param name="Endpoint">The members' server, <c>host:port</c>.</param>
    /// <param name="Total">Members in the pool (<c>pool.size</c>).</param>
    /// <param name="Healthy">Members that are leased.</param>
    /// <param name="Suspect">Members connected whose last heartbeat went unanswered.</param>
    /// <param name="Reconnecting">Members without a connection.</param>
    /// <param name="Members">Every member, by index.</param>
    public sealed record PoolStats(string Pool, string Endpoint, int Total, int Healthy, int Suspect, int Reconnecting,
        IReadOnlyList<MemberStatus> Members);
}
