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
internal sealed class SocketTransport : IConnectionTransport
{
    private const int ReceiveChunk = 8 * 1024;

    /// <summary>Room on the stack for a heartbeat response.</summary>
    private const int MaxLengthWithoutData = 112;

    private readonly Socket _socket;
    private readonly int _maxFrameLength;
    private IActorRef _owner = ActorRefs.Nobody;
    private InboundFrames? _inbound;
    private volatile bool _disposed;

    // Write side: touched on the owner's thread only.
    private readonly OutboundQueue _outbound;
    private long _sentDirectly;

    /// <param name="remote">The peer as operators see it when not the socket's own address (the client a PROXY header named); null: the socket's.</param>
    public SocketTransport(Socket socket, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive, string? remote = null)
    {
        _socket = socket;
        _maxFrameLength = maxFrameLength;
        KeepAlive = keepAlive;
        Remote = remote ?? socket.RemoteEndPoint?.ToString() ?? "unknown";
        _outbound = new OutboundQueue(maxPendingWrite, SendQueuedAsync, ShutOutputNow);
        _socket.Blocking = false;
        _socket.NoDelay = true;
    }

    public string Remote { get; }
    public string Protocol => "tcp";
    public KeepAliveStatus KeepAlive { get; }
    public long BytesOut => _sentDirectly + _outbound.BytesSent;
    public IInboundFrames Inbound => _inbound!;
    public TransportFailure WriteFailure { get; private set; } = TransportFailure.Unspecified;

    /// <summary>The process-wide budget of unfinished frames this connection counts against; null: none.</summary>
    public PendingFrameMemory? FrameMemory { get; init; }

    /// <summary>The wire format (the listener's <c>codec</c>). Default json-lines.</summary>
    public IFrameCodec Codec { get; init; } = JsonLinesCodec.Instance;

    public void Start(IActorRef owner)
    {
        _owner = owner;
        _outbound.Owner = owner;
        _inbound = new InboundFrames(owner, _maxFrameLength, FrameMemory, Codec);
        // Started from the thread pool, not inline: a peer that is already sending must not keep the
        // owner's PreStart busy. Not Task.Run, whose proxy task each connection would keep (72 B).
        ThreadPool.UnsafeQueueUserWorkItem(static transport => _ = transport.ReadLoopAsync(), this, preferLocal: false);
    }

    /// <summary>
    /// Reads until the input ends, then tells the owner how; whatever ends it (the peer, the kernel, or a bug
    /// of ours) is told once, so the loop's end never goes unobserved.
    /// </summary>
    private async Task ReadLoopAsync()
    {
        var owner = _owner;
        using var inbound = _inbound!;
        try
        {
            while (!_disposed)
            {
                // Backpressure: while the owner's handler is behind, nothing more is read (the peer's sends fill the
                // kernel's buffers and then block).
                if (inbound.PausedByOwner)
                {
                    await inbound.WhenReadingAllowed().ConfigureAwait(false);
                    continue;
                }
                // Zero-byte read: completes when data (or EOF) is there, without holding a buffer.
                await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
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
                        if (read < buffer.Length || inbound.ReadingPaused) break;
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }
        catch (Exception e) when (!_disposed)
        {
            owner.Tell(TransportFailures.Classify(e, "read loop"));
        }
        catch (Exception)
        {
            // The owner closed the socket (disposed): nobody is waiting for this loop, and the close is told.
        }
    }

    public static TransportEvents.InputEnded InputEnded(SocketError error) => TransportFailures.FromSocketError(error);

    public bool Write(Frame frame)
    {
        if (_disposed || !_outbound.Accepting) return Refuse(TransportFailures.WrittenAfterClose);
        ReadOnlyMemory<byte> bytes = Codec.EncodeToArray(frame);
        if (!_outbound.IsIdle) return Enqueue(bytes);

        if (!SendNow(bytes.Span, out var sent)) return false;
        return sent == bytes.Length || Enqueue(bytes[sent..]);
    }

    public bool OnWriteFinished(TransportEvents.WriteFinished finished)
    {
        if (_disposed) return Refuse(TransportFailures.WrittenAfterClose);
        return _outbound.OnWriteFinished(finished) || Refuse(new TransportFailure(finished.Reason, finished.Error ?? "write failed"));
    }

    /// <summary>Encoded on the stack and sent at once; only bytes the kernel would not take are copied to the heap.</summary>
    public bool WriteHeartbeatResponse(long timestamp, long? seq, int? interval = null)
    {
        if (_disposed || !_outbound.Accepting) return Refuse(TransportFailures.WrittenAfterClose);
        Span<byte> line = stackalloc byte[MaxLengthWithoutData];
        // A codec that needs more room than the shipped ones (json-lines 104, binary 26) takes the general path.
        if (!Codec.TryEncodeWithoutData(FrameType.HeartbeatResponse, timestamp, seq, interval, line, out var length))
            return Write(Frame.HeartbeatResponse(timestamp, seq) with { Interval = interval });
        line = line[..length];
        if (!_outbound.IsIdle) return Enqueue(line.ToArray());

        if (!SendNow(line, out var sent)) return false;
        return sent == length || Enqueue(line[sent..].ToArray());
    }

    /// <summary>
    /// One non-blocking send on the owner's thread; false (with <see cref="WriteFailure"/> set) when it failed,
    /// a peer's reset included. Whatever it throws is refused too, not thrown at the owner.
    /// </summary>
    private bool SendNow(ReadOnlySpan<byte> bytes, out int sent)
    {
        SocketError error;
        try
        {
            TransportFaults.At(FaultPoint.TcpSend, Remote);
            sent = _socket.Send(bytes, SocketFlags.None, out error);
        }
        catch (Exception e)
        {
            sent = 0;
            return Refuse(TransportFailures.Classify(e, "send"));
        }
        if (error != SocketError.Success && error != SocketError.WouldBlock) return Refuse(InputEnded(error));
        _sentDirectly += sent;
        return true;
    }

    private bool Enqueue(ReadOnlyMemory<byte> bytes) => _outbound.Enqueue(bytes) || Refuse(_outbound.Refusal);

    private bool Refuse(TransportFailure failure)
    {
        WriteFailure = failure;
        return false;
    }

    private Task<int> SendQueuedAsync(ReadOnlyMemory<byte> bytes)
    {
        TransportFaults.At(FaultPoint.TcpSendQueued, Remote);
        return _socket.SendAsync(bytes, SocketFlags.None).AsTask();
    }

    public TcpInfo? ReadTcpInfo() => _disposed ? null : TcpInfoReader.Read(_socket);

    public bool NudgeKeepAlive(int everySeconds, int probes) => !_disposed && SocketKeepAlive.Nudge(_socket, everySeconds, probes);

    public void RestoreKeepAlive()
    {
        if (!_disposed) SocketKeepAlive.Restore(_socket, KeepAlive);
    }

    public void ShutdownOutput() => _outbound.RequestShutdown();

    public void Close(CloseReason reason, string detail)
    {
        Write(Frame.ErrorNotice(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), reason.NoticeText(detail)));
        ShutdownOutput();
    }

    private void ShutOutputNow()
    {
        if (_disposed) return;
        try
        {
            TransportFaults.At(FaultPoint.TcpShutdown, Remote);
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException) { /* already gone; the read loop reports how */ }
        catch (Exception e)
        {
            // Called on the owner's thread, which may be closing already: tell it rather than fail it.
            _owner.Tell(TransportFailures.Classify(e, "shutdown"));
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _inbound?.ReleaseReader();
        _socket.Dispose();
    }
}
