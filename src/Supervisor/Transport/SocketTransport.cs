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
    private readonly int _maxPendingWrite;
    private IActorRef _owner = ActorRefs.Nobody;
    private InboundFrames? _inbound;
    private volatile bool _disposed;

    // Write side: touched on the owner's thread only.
    private readonly Queue<ReadOnlyMemory<byte>> _pendingWrites = new();
    private int _pendingBytes;
    private bool _writeInFlight;
    private bool _shutdownRequested;
    private bool _outputShut;

    public SocketTransport(Socket socket, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive)
    {
        _socket = socket;
        _maxFrameLength = maxFrameLength;
        _maxPendingWrite = maxPendingWrite;
        KeepAlive = keepAlive;
        Remote = socket.RemoteEndPoint?.ToString() ?? "unknown";
        _socket.Blocking = false;
        _socket.NoDelay = true;
    }

    public string Remote { get; }
    public string Protocol => "tcp";
    public KeepAliveStatus KeepAlive { get; }
    public long BytesOut { get; private set; }
    public IInboundFrames? Inbound => _inbound;

    public void Start(IActorRef owner)
    {
        _owner = owner;
        _inbound = new InboundFrames(owner, _maxFrameLength);
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
        if (_disposed || _outputShut || _shutdownRequested) return false;
        ReadOnlyMemory<byte> bytes = JsonLinesCodec.Encode(frame);
        if (_writeInFlight || _pendingWrites.Count > 0)
            return Enqueue(bytes);

        var sent = _socket.Send(bytes.Span, SocketFlags.None, out var error);
        if (error == SocketError.Success || error == SocketError.WouldBlock)
        {
            BytesOut += sent;
            return sent == bytes.Length || Enqueue(bytes[sent..]);
        }
        return false;
    }

    /// <summary>Encoded on the stack and sent at once; only bytes the kernel would not take are copied to the heap.</summary>
    public bool WriteHeartbeatResponse(long timestamp, long? seq)
    {
        if (_disposed || _outputShut || _shutdownRequested) return false;
        Span<byte> line = stackalloc byte[JsonLinesCodec.MaxLengthWithoutData];
        JsonLinesCodec.TryEncodeWithoutData(FrameType.HeartbeatResponse, timestamp, seq, line, out var length);
        line = line[..length];
        if (_writeInFlight || _pendingWrites.Count > 0)
            return Enqueue(line.ToArray());

        var sent = _socket.Send(line, SocketFlags.None, out var error);
        if (error == SocketError.Success || error == SocketError.WouldBlock)
        {
            BytesOut += sent;
            return sent == length || Enqueue(line[sent..].ToArray());
        }
        return false;
    }

    private bool Enqueue(ReadOnlyMemory<byte> bytes)
    {
        if (_pendingBytes + bytes.Length > _maxPendingWrite) return false;
        _pendingWrites.Enqueue(bytes);
        _pendingBytes += bytes.Length;
        if (!_writeInFlight) SendNextQueued();
        return true;
    }

    private void SendNextQueued()
    {
        var next = _pendingWrites.Peek();
        _writeInFlight = true;
        _socket.SendAsync(next, SocketFlags.None).AsTask().PipeTo(_owner,
            success: sent => new TransportEvents.WriteFinished(sent, null),
            failure: e => new TransportEvents.WriteFinished(0, e.GetBaseException().Message));
    }

    public bool OnWriteFinished(TransportEvents.WriteFinished finished)
    {
        _writeInFlight = false;
        if (finished.Error is not null || _disposed) return false;
        BytesOut += finished.Bytes;
        var head = _pendingWrites.Dequeue();
        _pendingBytes -= head.Length;
        if (finished.Bytes < head.Length)
        {
            // A short async send: put the rest back at the front.
            var rest = head[finished.Bytes..];
            var remaining = _pendingWrites.ToArray();
            _pendingWrites.Clear();
            _pendingWrites.Enqueue(rest);
            foreach (var item in remaining) _pendingWrites.Enqueue(item);
            _pendingBytes += rest.Length;
        }
        if (_pendingWrites.Count > 0) SendNextQueued();
        else if (_shutdownRequested) ShutOutputNow();
        return true;
    }

    public void ShutdownOutput()
    {
        _shutdownRequested = true;
        if (!_writeInFlight && _pendingWrites.Count == 0) ShutOutputNow();
    }

    private void ShutOutputNow()
    {
        if (_outputShut || _disposed) return;
        _outputShut = true;
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
