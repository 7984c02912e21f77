using Supervisor.Messages.Wire;

namespace Supervisor.Messages.Protocol;

/// <summary>The commands the connection supervisor and its connection actors accept (<see cref="ConnectionCommands"/>).</summary>
public interface IConnectionCommand;

/// <summary>Commands any part of the system may send to the connection supervisor or to one connection.</summary>
public static class ConnectionCommands
{
    /// <summary>Close one connection (by id, through the supervisor) with the given reason.</summary>
    public sealed record CloseConnection(string Id, CloseReason Reason) : IConnectionCommand
    {
        /// <summary>When the peer should come back, told in the notice (<see cref="CloseReasons.WithReconnectHint"/>); null: no hint.</summary>
        public TimeSpan? ReconnectAfter { get; init; }
    }

    /// <summary>Answer to <see cref="CloseConnection"/>: false when no such connection is live.</summary>
    public sealed record CloseAccepted(string Id, bool Found);

    /// <summary>Close every live connection with the reason and answer <see cref="AllClosed"/> once all are gone.</summary>
    public sealed record CloseAll(CloseReason Reason) : IConnectionCommand
    {
        /// <summary>
        /// Tell every peer when to come back, each a different moment spread evenly over this window from now
        /// (<c>shutdown.reconnect-hint.spread</c>), so that they do not all reconnect at once; null: no hint.
        /// </summary>
        public TimeSpan? ReconnectSpread { get; init; }
    }

    /// <summary>Answer to <see cref="CloseAll"/> once every connection actor has stopped (the host's shutdown waits for it).</summary>
    /// <param name="Count">How many connections were live when <see cref="CloseAll"/> arrived (0 when there were none).</param>
    public sealed record AllClosed(int Count);

    /// <summary>Ask one live connection for its status as of now.</summary>
    public sealed record GetStatus(string Id) : IConnectionCommand;

    /// <summary>Ask one live connection for the kernel's TCP_INFO of its socket; answered with <see cref="TcpInfoReport"/>.</summary>
    public sealed record GetTcpInfo(string Id) : IConnectionCommand;

    /// <summary>Answer to <see cref="GetTcpInfo"/>; <c>Info</c> is null where the transport has no TCP socket to ask.</summary>
    /// <param name="Id">The connection's id.</param>
    /// <param name="Protocol">The connection's protocol, e.g. <c>tcp</c>, <c>tls</c> or <c>ws</c>.</param>
    /// <param name="Info">The kernel's figures; null where there is no TCP socket to ask.</param>
    public sealed record TcpInfoReport(string Id, string Protocol, TcpInfo? Info);
}

/// <summary>
/// The kernel's view of one TCP socket (Linux <c>getsockopt(IPPROTO_TCP, TCP_INFO)</c>, as <c>ss -ti</c> shows it).
/// Times are milliseconds; counts are segments.
/// </summary>
/// <param name="State">TCP state, e.g. <c>established</c>, <c>close-wait</c>.</param>
/// <param name="Retransmits">Consecutive retransmissions of the current unacknowledged segment (tcpi_retransmits).</param>
/// <param name="Probes">Unanswered zero-window or keep-alive probes (tcpi_probes).</param>
/// <param name="RtoMs">Retransmission timeout.</param>
/// <param name="RttMs">Smoothed round-trip time.</param>
/// <param name="RttVarMs">Round-trip time variance.</param>
/// <param name="Unacked">Segments sent and not yet acknowledged.</param>
/// <param name="Lost">Segments the kernel counts as lost.</param>
/// <param name="TotalRetrans">Retransmissions over the connection's life.</param>
/// <param name="SendCongestionWindow">Congestion window, in segments.</param>
/// <param name="LastDataSentMs">Since the last data was sent.</param>
/// <param name="LastDataReceivedMs">Since the last data was received.</param>
/// <param name="LastAckReceivedMs">Since the last acknowledgement was received.</param>
public sealed record TcpInfo(
    string State,
    int Retransmits,
    int Probes,
    double RtoMs,
    double RttMs,
    double RttVarMs,
    long Unacked,
    long Lost,
    long TotalRetrans,
    long SendCongestionWindow,
    long LastDataSentMs,
    long LastDataReceivedMs,
    long LastAckReceivedMs);
