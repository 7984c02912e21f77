using System.Buffers;
using System.Net.Sockets;
using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Transport;

/// <summary>
/// A raw non-blocking socket read with zero-byte reads: while the peer is idle the connection holds
/// no receive buffer, only the socket and one pending read (see bench/README.md for why).
/// </summary>
internal sealed class SocketTransport : PlainTcpTransport
{
    private const int ReceiveChunk = 8 * 1024;

    /// <param name="remote">The peer as operators see it when not the socket's own address (the client a PROXY header named); null: the socket's.</param>
    public SocketTransport(Socket socket, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive, string? remote = null)
        : base(socket, maxFrameLength, maxPendingWrite, keepAlive, remote)
    {
        socket.Blocking = false;
    }

    protected override int SendOnce(ReadOnlySpan<byte> bytes, out SocketError error) => Socket.Send(bytes, SocketFlags.None, out error);

    protected override void StartReading() =>
        // Started from the thread pool, not inline: a peer that is already sending must not keep the
        // owner's PreStart busy. Not Task.Run, whose proxy task each connection would keep (72 B).
        ThreadPool.UnsafeQueueUserWorkItem(static transport => _ = transport.ReadLoopAsync(), this, preferLocal: false);

    /// <summary>
    /// Reads until the input ends, then tells the owner how; whatever ends it (the peer, the kernel, or a bug
    /// of ours) is told once, so the loop's end never goes unobserved.
    /// </summary>
    private async Task ReadLoopAsync()
    {
        var owner = Owner;
        using var inbound = Frames!;
        try
        {
            while (!Disposed)
            {
                // Backpressure: while the owner's handler is behind, nothing more is read (the peer's sends fill the
                // kernel's buffers and then block).
                if (inbound.PausedByOwner)
                {
                    await inbound.WhenReadingAllowed().ConfigureAwait(false);
                    continue;
                }
                // Zero-byte read: completes when data (or EOF) is there, without holding a buffer.
                await Socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                // Input is there, and the owner has not yet taken the last read's frames (it runs on another thread just
                // now): read no further ahead of it. Checked after the wait for input, so a peer that waits for its
                // answers (a heartbeat) never finds the owner behind and costs no wait.
                if (inbound.ReadingPaused) await inbound.WhenReadingAllowed().ConfigureAwait(false);
                TransportFaults.At(FaultPoint.TcpReceiveWait, Remote);
                var buffer = ArrayPool<byte>.Shared.Rent(ReceiveChunk);
                try
                {
                    while (true)
                    {
                        TransportFaults.At(FaultPoint.TcpReceive, Remote);
                        var read = Socket.Receive(buffer, 0, buffer.Length, SocketFlags.None, out var error);
                        if (error == SocketError.WouldBlock) break;
                        if (error != SocketError.Success)
                        {
                            owner.Tell(TransportFailures.FromSocketError(error));
                            return;
                        }
                        if (read == 0)
                        {
                            owner.Tell(new TransportEvents.InputEnded(CloseReason.PeerClosed, "peer closed the connection"));
                            return;
                        }
                        if (!inbound.Accept(buffer.AsSpan(0, read))) return;
                        if (read < buffer.Length || inbound.ReadingPaused) break;
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }
        catch (Exception e) when (!Disposed)
        {
            owner.Tell(TransportFailures.Classify(e, "read loop"));
        }
        catch (Exception)
        {
            // The owner closed the socket (disposed): nobody is waiting for this loop, and the close is told.
        }
    }

    protected override Task<int> SendQueuedAsync(ReadOnlyMemory<byte> bytes)
    {
        TransportFaults.At(FaultPoint.TcpSendQueued, Remote);
        return Socket.SendAsync(bytes, SocketFlags.None).AsTask();
    }

    /// <summary>The pending read fails with the socket's close, and the read loop ends quietly (see its catch).</summary>
    protected override void Release() => Socket.Dispose();
}
