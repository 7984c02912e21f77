using System.Net.Sockets;

namespace LoadGen;

/// <summary>
/// One client connection. Sends happen on one thread at a time (the connecting task for the first
/// heartbeat, then the sender thread); the receive loop reads what the sender published through
/// volatile fields. Times are <see cref="System.Diagnostics.Stopwatch"/> ticks.
/// </summary>
internal sealed class Peer(int index, Socket socket)
{
    public int Index { get; } = index;
    public Socket Socket { get; } = socket;

    // Published by the sender, read by the receive loop.
    public long HeartbeatSeq;
    public long HeartbeatSentAt;
    public long DataSeq;
    public long DataSentAt;
    public long LastSentAt;

    /// <summary>When the sender next heartbeats this peer (sender thread only).</summary>
    public long NextDue;

    /// <summary>Set once: the peer stops sending anything from now on.</summary>
    public volatile bool Silent;

    public volatile bool Closed;
    public long ClosedAt;
    public long FirstAnsweredAt;

    /// <summary>Heartbeat answers read so far (receive loop only): with --protocol source-doc, answer k is heartbeat k's.</summary>
    public long Answered;
    public long NoticeAt;
    public string? NoticeReason;

    /// <summary>1 once this peer has given back its slot of the connect window.</summary>
    public int WindowReleased;
}
