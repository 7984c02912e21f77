using System.Net;
using System.Net.Security;
using System.Net.Sockets;

namespace StormGen;

/// <summary>
/// One client. <see cref="Generation"/> numbers its connections: a heartbeat, a read loop or a retry of an older
/// connection sees a different number and does nothing. Times are <see cref="System.Diagnostics.Stopwatch"/> ticks.
/// </summary>
internal sealed class Peer(int index, IPAddress source)
{
    public int Index { get; } = index;
    public IPAddress Source { get; } = source;

    public int Generation;
    public Socket? Socket;
    public SslStream? Tls;

    /// <summary>Connected and answered at least once on the current connection.</summary>
    public volatile bool Up;

    /// <summary>Never lost its connection in the storm (the untouched peers whose RTT is measured through it).</summary>
    public bool Untouched = true;

    /// <summary>1 once counted back in the storm: a peer that comes back, drops again and returns counts once.</summary>
    public int CountedBack;

    /// <summary>Failed attempts since the connection was lost (the backoff's exponent).</summary>
    public int Attempt;

    /// <summary>The last error notice on the current connection (its text, <c>reason: detail</c>).</summary>
    public string? Notice;

    // Heartbeat in flight: published by the sender, read by the read loop.
    public long Seq;
    public long SentAt;
}
