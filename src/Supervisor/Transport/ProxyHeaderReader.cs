using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Supervisor.Configuration;
using Supervisor.Messages.Wire;

namespace Supervisor.Transport;

/// <summary>What reading a connection's PROXY header came to: the client's address, or why the connection is refused.</summary>
/// <param name="Source">Accepted: the client's address; null when the header says to keep the socket's (LOCAL, UNKNOWN, UNIX, UNSPEC).</param>
/// <param name="Description">Accepted: what the header said (<c>v2 PROXY TCP4</c>); refused: the close detail.</param>
/// <param name="Refusal">Null when accepted; else the close reason.</param>
internal sealed record ProxyHeaderOutcome(IPEndPoint? Source, string Description, CloseReason? Refusal)
{
    public static ProxyHeaderOutcome Accepted(IPEndPoint? source, string description) => new(source, description, null);

    public static ProxyHeaderOutcome Refused(CloseReason reason, string detail) => new(null, detail, reason);
}

/// <summary>
/// Reads the PROXY header off a freshly accepted socket before any transport exists, taking exactly the
/// header's bytes: what follows (the peer's first frame, or its TLS ClientHello) stays in the socket for the
/// transport. Each time input arrives it peeks at up to <see cref="ProxyProtocol.MaxV2Length"/> bytes, parses
/// everything seen so far, and consumes either the whole header (complete) or what was peeked (incomplete:
/// then every byte is header, <see cref="ProxyProtocol.Parse"/> guarantees it), so a header dripped a byte at
/// a time costs one wake-up a byte, never a busy loop, and never more than one 536-byte pooled buffer.
/// </summary>
internal static class ProxyHeaderReader
{
    /// <param name="socket">The accepted socket; left open in every case (the caller closes or adopts it).</param>
    /// <param name="timeout">The whole header must have arrived this long after the read starts.</param>
    /// <param name="abandon">Cancelled when the caller no longer waits (shutdown); the outcome is then not looked at.</param>
    /// <returns>Never throws: every end, a bug of ours included, is an outcome.</returns>
    public static async Task<ProxyHeaderOutcome> ReadAsync(Socket socket, TimeSpan timeout, CancellationToken abandon)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ProxyProtocol.MaxV2Length);
        var held = 0;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(abandon);
        deadline.CancelAfter(timeout);
        try
        {
            // Non-blocking while the header is read: a receive must never hold the thread (with inline socket
            // completions, the socket engine's own). Blocking again after, as accepted sockets come (TLS needs it).
            socket.Blocking = false;
            while (true)
            {
                // Zero-byte receive: completes when input (or the end of it) is there, holding no buffer.
                await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, deadline.Token).ConfigureAwait(false);
                var peeked = socket.Receive(buffer, held, ProxyProtocol.MaxV2Length - held, SocketFlags.Peek, out var error);
                if (error != SocketError.Success && error != SocketError.WouldBlock)
                    return FromSocketError(error, held);
                if (error == SocketError.WouldBlock) continue;
                if (peeked == 0)
                    return ProxyHeaderOutcome.Refused(CloseReason.PeerClosed,
                        $"peer closed the connection before its PROXY header was complete ({held} bytes received)");

                var parse = ProxyProtocol.Parse(buffer.AsSpan(0, held + peeked));
                switch (parse.Status)
                {
                    case ProxyHeaderStatus.Invalid:
                        return ProxyHeaderOutcome.Refused(CloseReason.ProtocolError, parse.Error!);
                    case ProxyHeaderStatus.Incomplete:
                        if (Consume(socket, buffer, held, peeked) is { } failed) return failed;
                        held += peeked;
                        break;
                    default:
                        if (Consume(socket, buffer, held, parse.Length - held) is { } unread) return unread;
                        socket.Blocking = true;
                        return ProxyHeaderOutcome.Accepted(parse.Source, parse.Description!);
                }
            }
        }
        catch (OperationCanceledException) when (!abandon.IsCancellationRequested)
        {
            // Too slow, like a TLS handshake that does not finish: the peer got no frame through in time.
            return ProxyHeaderOutcome.Refused(CloseReason.FirstFrameTimeout,
                $"PROXY header not complete within {timeout.ToHocon()} of connecting ({held} bytes received)");
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            return ProxyHeaderOutcome.Refused(CloseReason.ServerShutdown, "the server stopped waiting for the PROXY header");
        }
        catch (Exception e)
        {
            var failure = TransportFailures.Classify(e, "PROXY header read");
            return ProxyHeaderOutcome.Refused(failure.Reason, failure.Detail);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Takes <paramref name="count"/> bytes already peeked off the socket; null when they all came, else why not.</summary>
    private static ProxyHeaderOutcome? Consume(Socket socket, byte[] buffer, int offset, int count)
    {
        while (count > 0)
        {
            var read = socket.Receive(buffer, offset, count, SocketFlags.None, out var error);
            if (error != SocketError.Success) return FromSocketError(error, offset);
            // Peeked bytes stay queued until taken; none arriving means the socket lost them (reset meanwhile).
            if (read == 0) return ProxyHeaderOutcome.Refused(CloseReason.PeerReset, "the PROXY header vanished from the socket while it was read");
            offset += read;
            count -= read;
        }
        return null;
    }

    private static ProxyHeaderOutcome FromSocketError(SocketError error, int held)
    {
        var failure = TransportFailures.FromSocketError(error);
        return ProxyHeaderOutcome.Refused(failure.Reason, $"{failure.Detail} before the PROXY header was complete ({held} bytes received)");
    }
}
