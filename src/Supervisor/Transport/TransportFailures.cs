using System.Net.Sockets;
using System.Security.Authentication;
using Supervisor.Messages.Wire;

namespace Supervisor.Transport;

/// <summary>
/// Why a transport gave up, in close-reason terms (DESIGN §3): the one place that turns what a socket, a TLS
/// stream or a WebSocket threw into the reason its connection closes with. What the network or the peer did
/// keeps its name (an RST is <c>peer-reset</c> wherever it lands: handshake, read or write); anything else
/// that escapes a loop, a handshake, a send or a timer callback is a bug of ours, <c>internal-error</c>, and
/// never blamed on the peer.
/// </summary>
internal static class TransportFailures
{
    /// <summary>
    /// Kestrel's <c>ConnectionResetException</c> (the WebSocket transport, in the operator package), known by its name
    /// so that the core package needs no ASP.NET Core reference.
    /// </summary>
    private static bool IsKestrelConnectionReset(Exception e) => e.GetType().FullName == "Microsoft.AspNetCore.Connections.ConnectionResetException";

    /// <summary>What the owner is told when a loop, handshake or timer of a transport ended with <paramref name="e"/>.</summary>
    /// <param name="where">The part that failed, as operators read it in the close detail (<c>read loop</c>, <c>TLS handshake</c>).</param>
    public static TransportEvents.InputEnded Classify(Exception e, string where)
    {
        for (var cause = (Exception?)e; cause is not null; cause = cause.InnerException)
        {
            if (cause is SocketException socket) return FromSocketError(socket.SocketErrorCode);
            if (IsKestrelConnectionReset(cause)) return new(CloseReason.PeerReset, "connection reset by peer");
            if (cause is AuthenticationException) return new(CloseReason.ProtocolError, $"{where} failed: {cause.Message}");
        }
        return new(CloseReason.InternalError, $"{where} failed: {e.GetType().Name}: {e.Message}");
    }

    /// <summary>Whether a socket error lies anywhere in <paramref name="e"/>'s causes (the network's doing, not the TLS exchange's).</summary>
    public static bool CausedBySocket(Exception e)
    {
        for (var cause = (Exception?)e; cause is not null; cause = cause.InnerException)
            if (cause is SocketException) return true;
        return false;
    }

    /// <summary>
    /// A socket error as a close reason. On Linux a send to a peer that reset the connection fails with
    /// ECONNRESET or EPIPE (<see cref="SocketError.Shutdown"/>): the peer's doing, not a slow consumer.
    /// </summary>
    public static TransportEvents.InputEnded FromSocketError(SocketError error) => error switch
    {
        SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown => new(CloseReason.PeerReset, "connection reset by peer"),
        // ETIMEDOUT on a socket is the kernel giving up: keep-alive probes or TCP_USER_TIMEOUT.
        SocketError.TimedOut => new(CloseReason.KeepaliveFailed, "kernel keep-alive or user timeout gave up on the peer"),
        SocketError.HostUnreachable or SocketError.NetworkUnreachable => new(CloseReason.KeepaliveFailed, $"peer unreachable ({error})"),
        _ => new(CloseReason.PeerReset, $"socket error {error}"),
    };

    /// <summary>The completion of a queued write that failed, with the reason the connection closes with.</summary>
    public static TransportEvents.WriteFinished WriteFailed(Exception e)
    {
        var failure = Classify(e, "send");
        return new TransportEvents.WriteFinished(0, failure.Detail) { Reason = failure.Reason };
    }

    /// <summary>Why the connection ends when its peer lets more than <paramref name="maxPendingWrite"/> bytes pile up: the one true <c>write-failed</c>.</summary>
    public static TransportFailure NotReading(int maxPendingWrite) =>
        new(CloseReason.WriteFailed, $"peer is not reading: more than max-pending-write ({maxPendingWrite} bytes) waiting to be sent");

    /// <summary>A write after the transport was disposed or its output shut: the connection's own bookkeeping failed.</summary>
    public static readonly TransportFailure WrittenAfterClose = new(CloseReason.InternalError, "a frame was written after the connection's output was shut");
}

/// <summary>Why a write was refused, as the connection's close reason and detail.</summary>
internal readonly record struct TransportFailure(CloseReason Reason, string Detail)
{
    /// <summary>What a transport that does not say more reports: the peer stopped reading or the socket failed.</summary>
    public static readonly TransportFailure Unspecified = new(CloseReason.WriteFailed, "peer is not reading or the socket failed");

    public static implicit operator TransportFailure(TransportEvents.InputEnded ended) => new(ended.Reason, ended.Detail);
}
