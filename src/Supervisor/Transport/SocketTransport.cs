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
public sealed class SocketTransport : IConnectionTransport
{
    private const int ReceiveChunk = 8 * 1024;

    private readonly Socket _socket;
    private readonly int _maxFrameLength;
    private IActorRef _owner = ActorRefs.Nobody;
    private InboundFrames? _inbound;
    private volatile bool _disposed;

    // Write side: touched on the owner's thread only.
    private readonly OutboundQueue _outbound;
    private long _sentDirectly;

    public SocketTransport(Socket socket, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive)
    {
        _socket = socket;
        _maxFrameLength = maxFrameLength;
        KeepAlive = keepAlive;
        _outbound = new OutboundQueue(maxPendingWrite, bytes => _socket.SendAsync(bytes, SocketFlags.None).AsTask(), ShutOutputNow);
        Remote = socket.RemoteEndPoint?.ToString() ?? "unknown";
        _socket.Blocking = false;
        _socket.NoDelay = true;
    }

    public string Remote { get; }
    public string Protocol => "tcp";
    public KeepAliveStatus KeepAlive { get; }
    public long BytesOut => _sentDirectly + _outbound.BytesSent;
    public IInboundFrames? Inbound => _inbound;

    /// <summary>The process-wide budget of unfinished frames this connection counts against; null: none.</summary>
    public PendingFrameMemory? FrameMemory { get; init; }

    public void Start(IActorRef owner)
    {
        _owner = owner;
        _outbound.Owner = owner;
        _inbound = new InboundFrames(owner, _maxFrameLength, FrameMemory);
        // Started from the thread pool, not inline: a peer that is already sending must not keep the
        // owner's PreStart busy. Not Task.Run, whose proxy task each connection would keep (72 B).
        ThreadPool.UnsafeQueueUserWorkItem(static transport => _ = transport.ReadLoopAsync(), this, preferLocal: false);
    }

    private async Task ReadLoopAsync()
    {
        var owner = _owner;
        using var inbound = _inbound!;
        try
        {
            while (!_disposed)
            {
                // Zero-byte read: completes when data (or EOF) is there, without holding a buffer.
                await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                var buffer = ArrayPool<byte>.Shared.Rent(ReceiveChunk);
                try
                {
                    while (true)
                    {
                        var read = _socket.Receive(buffer, 0, buffer.Length, SocketFlags.None, out var error);
                        if (error == SocketError.WouldBlock) break;
                        if (error != SocketError.Success)
                        {
                            owner.Tell(InputEnded(error));
                            return;
                        }
                        if (read == 0)
                        {
                            owner.Tell(new TransportEvents.InputEnded(CloseReason.PeerClosed, "peer closed the connection"));
                            return;
                        }
                        if (!inbound.Accept(buffer.AsSpan(0, read))) return;
                        if (read < buffer.Length) break;
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }
        catch (SocketException e) when (!_disposed)
        {
            owner.Tell(InputEnded(e.SocketErrorCode));
        }
        catch (Exception e) when (_disposed && e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The owner closed the socket; nobody is waiting for this loop.
        }
    }

    public static TransportEvents.InputEnded InputEnded(SocketError error) => error switch
    {
        SocketError.ConnectionReset => new(CloseReason.PeerReset, "connection reset by peer"),
        // ETIMEDOUT on a socket is the kernel giving up: keep-alive probes or TCP_USER_TIMEOUT.
        SocketError.TimedOut => new(CloseReason.KeepaliveFailed, "kernel keep-alive or user timeout gave up on the peer"),
        SocketError.HostUnreachable or SocketError.NetworkUnreachable => new(CloseReason.KeepaliveFailed, $"peer unreachable ({error})"),
        _ => new(CloseReason.PeerReset, $"socket error {error}"),
    };

    public bool Write(Frame frame)
    {
        if (_disposed || !_outbound.Accepting) return false;
        ReadOnlyMemory<byte> bytes = JsonLinesCodec.Encode(frame);
        if (!_outbound.IsIdle) return _outbound.Enqueue(bytes);

        var sent = _socket.Send(bytes.Span, SocketFlags.None, out var error);
        if (error != SocketError.Success && error != SocketError.WouldBlock) return false;
        _sentDirectly += sent;
        return sent == bytes.Length || _outbound.Enqueue(bytes[sent..]);
    }

    public bool OnWriteFinished(TransportEvents.WriteFinished finished) => !_disposed && _outbound.OnWriteFinished(finished);

    /// <summary>Encoded on the stack and sent at once; only bytes the kernel would not take are copied to the heap.</summary>
    public bool WriteHeartbeatResponse(long timestamp, long? seq)
    {
        if (_disposed || !_outbound.Accepting) return false;
        Span<byte> line = stackalloc byte[JsonLinesCodec.MaxLengthWithoutData];
        JsonLinesCodec.TryEncodeWithoutData(FrameType.HeartbeatResponse, timestamp, seq, line, out var length);
        line = line[..length];
        if (!_outbound.IsIdle) return _outbound.Enqueue(line.ToArray());

        var sent = _socket.Send(line, SocketFlags.None, out var error);
        if (error != SocketError.Success && error != SocketError.WouldBlock) return false;
        _sentDirectly += sent;
        return sent == length || _outbound.Enqueue(line[sent..].ToArray());
    }

    public TcpInfo? ReadTcpInfo() => _disposed ? null : TcpInfoReader.Read(_socket);

    public void ShutdownOutput() => _outbound.RequestShutdown();

    private void ShutOutputNow()
    {
        if (_disposed) return;
        try { _socket.Shutdown(SocketShutdown.Send); }
        catch (SocketException) { /* already gone; the read loop reports how */ }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _socket.Dispose();
    }
}
