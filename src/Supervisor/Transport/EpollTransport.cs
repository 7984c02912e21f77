using System.Net.Sockets;
using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Transport;

/// <summary>
/// Plain TCP on an <see cref="EpollLoop"/> (<c>tcp.transport = epoll</c>): the loop owns the socket's readiness
/// (edge-triggered), reads what is there in one <c>recv</c> into the loop's buffer and decodes it with the same
/// <see cref="InboundFrames"/> as <see cref="SocketTransport"/>; the owner writes straight to the socket (non-blocking
/// send), and what the kernel will not take waits in the same <see cref="OutboundQueue"/> for the socket to turn
/// writable. The socket stays a .NET <see cref="Socket"/> used only synchronously and non-blocking: no .NET async
/// operation ever runs on it, so .NET's own socket engine never registers it too.
/// <para>
/// Threads: reads, the framer and the socket's close run on the loop's thread only; writes, shutdown and the socket
/// options on the owner's (the connection dispatcher usually runs the owner on the loop's thread itself). The owner's
/// <see cref="Dispose"/> posts the close to the loop, so a descriptor leaves the epoll set before it can be reused,
/// and no read runs on a socket or framer being released.
/// </para>
/// </summary>
internal sealed class EpollTransport : IConnectionTransport
{
    /// <summary>Room on the stack for a heartbeat response.</summary>
    private const int MaxLengthWithoutData = 112;

    private readonly Socket _socket;
    private readonly int _fd;
    private readonly EpollLoop _loop;
    private readonly int _maxFrameLength;
    private IActorRef _owner = ActorRefs.Nobody;
    private InboundFrames? _inbound;
    private long _token;
    private volatile bool _disposed;

    // Read side: the loop's thread only.
    private bool _inputEnded;
    private bool _hungUp;
    private bool _resumeArmed;
    private int _retired;

    // Write side: the owner's thread, but for the queued send the loop finishes.
    private readonly OutboundQueue _outbound;
    private long _sentDirectly;
    private QueuedSend? _queued;

    /// <summary>A queued write waiting for the socket to take it; completed on the loop's thread.</summary>
    private sealed class QueuedSend(ReadOnlyMemory<byte> bytes)
    {
        public ReadOnlyMemory<byte> Bytes { get; } = bytes;
        public TaskCompletionSource<int> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public EpollTransport(Socket socket, EpollLoop loop, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive)
    {
        _socket = socket;
        _loop = loop;
        _maxFrameLength = maxFrameLength;
        KeepAlive = keepAlive;
        Remote = socket.RemoteEndPoint?.ToString() ?? "unknown";
        _outbound = new OutboundQueue(maxPendingWrite, SendQueuedAsync, ShutOutputNow);
        _socket.Blocking = false;
        _socket.NoDelay = true;
        _fd = (int)_socket.Handle;
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

    /// <summary>
    /// Registers the socket with the loop. Input already waiting is reported by the kernel at once and read on the
    /// loop's thread, not in the owner's PreStart.
    /// </summary>
    public void Start(IActorRef owner)
    {
        _owner = owner;
        _outbound.Owner = owner;
        _inbound = new InboundFrames(owner, _maxFrameLength, FrameMemory, Codec);
        var errno = _loop.Register(this, _fd, out _token);
        if (errno != 0)
            owner.Tell(new TransportEvents.InputEnded(CloseReason.InternalError, $"read loop failed: epoll_ctl refused the socket (errno {errno})"));
    }

    /// <summary>On the loop's thread: the kernel reported <paramref name="events"/> for the socket.</summary>
    internal void OnReady(uint events, byte[] buffer)
    {
        if ((events & Epoll.Out) != 0 && Volatile.Read(ref _queued) is not null) FlushQueued();
        if ((events & (Epoll.ReadHangUp | Epoll.Hup | Epoll.Err)) != 0) _hungUp = true;
        if ((events & (Epoll.In | Epoll.ReadHangUp | Epoll.Hup | Epoll.Err)) != 0) Read(buffer, resumed: false);
    }

    /// <summary>On the loop's thread: work another thread posted.</summary>
    internal void RunPosted(EpollWork work, byte[] buffer)
    {
        switch (work)
        {
            case EpollWork.ResumeRead:
                _resumeArmed = false;
                Read(buffer, resumed: true);
                break;
            case EpollWork.FlushQueued:
                FlushQueued();
                break;
            case EpollWork.Retire:
                Retire();
                break;
        }
    }

    /// <summary>
    /// Reads until the socket has nothing more (a short read: edge-triggered, the next input raises a new edge), the
    /// owner pauses reading, or the input ends; the end is told once. After the peer's FIN was seen the reads go on until
    /// it is read (a short read then is no proof that nothing follows).
    /// </summary>
    private void Read(byte[] buffer, bool resumed)
    {
        if (_disposed || _inputEnded) return;
        var inbound = _inbound!;
        try
        {
            // Backpressure: while the owner's handler is behind, or has not taken the last read's frames yet, the socket
            // is not read (the peer's sends fill the kernel's buffers and then block); the resume posts the read.
            if (inbound.ReadingPaused)
            {
                AwaitResume(inbound);
                return;
            }
            if (!resumed) TransportFaults.At(FaultPoint.TcpReceiveWait, Remote);
            while (true)
            {
                TransportFaults.At(FaultPoint.TcpReceive, Remote);
                var read = _socket.Receive(buffer, 0, buffer.Length, SocketFlags.None, out var error);
                if (error == SocketError.WouldBlock) return;
                if (error != SocketError.Success)
                {
                    EndInput(SocketTransport.InputEnded(error));
                    return;
                }
                if (read == 0)
                {
                    EndInput(new TransportEvents.InputEnded(CloseReason.PeerClosed, "peer closed the connection"));
                    return;
                }
                if (!inbound.Accept(buffer.AsSpan(0, read)))
                {
                    _inputEnded = true;
                    return;
                }
                if (_disposed) return;
                if (inbound.ReadingPaused)
                {
                    AwaitResume(inbound);
                    return;
                }
                if (read < buffer.Length && !_hungUp) return;
            }
        }
        catch (Exception e) when (!_disposed)
        {
            EndInput(TransportFailures.Classify(e, "read loop"));
        }
        catch (Exception)
        {
            // The owner let go meanwhile (the socket is being closed): nobody waits for this read, and the close is told.
        }
    }

    private void EndInput(TransportEvents.InputEnded ended)
    {
        _inputEnded = true;
        _owner.Tell(ended);
    }

    /// <summary>Once per pause: when reading is allowed again, the loop is asked to read (no new edge would come for input already there).</summary>
    private void AwaitResume(InboundFrames inbound)
    {
        if (_resumeArmed) return;
        _resumeArmed = true;
        inbound.WhenReadingAllowed().ContinueWith(static (_, state) =>
        {
            var transport = (EpollTransport)state!;
            transport._loop.Post(transport, EpollWork.ResumeRead);
        }, this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

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
        if (!Codec.TryEncodeWithoutData(FrameType.HeartbeatResponse, timestamp, seq, interval, line, out var length))
            return Write(Frame.HeartbeatResponse(timestamp, seq) with { Interval = interval });
        line = line[..length];
        if (!_outbound.IsIdle) return Enqueue(line.ToArray());

        if (!SendNow(line, out var sent)) return false;
        return sent == length || Enqueue(line[sent..].ToArray());
    }

    /// <summary>One non-blocking send on the owner's thread; false (with <see cref="WriteFailure"/> set) when it failed.</summary>
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
        if (error != SocketError.Success && error != SocketError.WouldBlock) return Refuse(SocketTransport.InputEnded(error));
        _sentDirectly += sent;
        return true;
    }

    private bool Enqueue(ReadOnlyMemory<byte> bytes) => _outbound.Enqueue(bytes) || Refuse(_outbound.Refusal);

    private bool Refuse(TransportFailure failure)
    {
        WriteFailure = failure;
        return false;
    }

    /// <summary>
    /// The queue's send: handed to the loop, which sends when the socket is writable and completes it with what the kernel
    /// took (a short send: the queue sends the rest next). Its completion reaches the owner as WriteFinished.
    /// </summary>
    private Task<int> SendQueuedAsync(ReadOnlyMemory<byte> bytes)
    {
        TransportFaults.At(FaultPoint.TcpSendQueued, Remote);
        var send = new QueuedSend(bytes);
        Volatile.Write(ref _queued, send);
        if (!_loop.Post(this, EpollWork.FlushQueued))
            Interlocked.Exchange(ref _queued, null)?.Completion.TrySetException(new SocketException((int)SocketError.OperationAborted));
        return send.Completion.Task;
    }

    /// <summary>On the loop's thread: tries the queued send; left waiting for the next writable edge when the kernel is full.</summary>
    private void FlushQueued()
    {
        if (Volatile.Read(ref _queued) is not { } send) return;
        int sent;
        SocketError error;
        try
        {
            sent = _socket.Send(send.Bytes.Span, SocketFlags.None, out error);
        }
        catch (Exception e)
        {
            if (Interlocked.CompareExchange(ref _queued, null, send) == send) send.Completion.TrySetException(e);
            return;
        }
        if (error == SocketError.WouldBlock) return;
        if (Interlocked.CompareExchange(ref _queued, null, send) != send) return;
        if (error != SocketError.Success) send.Completion.TrySetException(new SocketException((int)error));
        else send.Completion.TrySetResult(sent);
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
        catch (SocketException) { /* already gone; the read side reports how */ }
        catch (Exception e)
        {
            _owner.Tell(TransportFailures.Classify(e, "shutdown"));
        }
    }

    /// <summary>
    /// From the owner: nothing is read or written from now on; the loop closes the socket (see the class remarks), or
    /// this thread does when the loop has ended.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _inbound?.ReleaseReader();
        Interlocked.Exchange(ref _queued, null)?.Completion.TrySetException(new ObjectDisposedException(nameof(EpollTransport)));
        if (!_loop.Post(this, EpollWork.Retire)) Retire();
    }

    /// <summary>On the loop's thread (or the owner's once the loop has ended): out of the epoll set, then closed.</summary>
    private void Retire()
    {
        // Once: the loop's end and an owner letting go just then may both get here.
        if (Interlocked.Exchange(ref _retired, 1) != 0) return;
        _loop.Unregister(_token, _fd);
        _socket.Dispose();
        _inbound?.Dispose();
    }

    /// <summary>On the loop's thread as it ends: the owner is told (a connection must not wait on a loop that is gone), the socket closed.</summary>
    internal void LoopEnded()
    {
        if (!_disposed && !_inputEnded) EndInput(new TransportEvents.InputEnded(CloseReason.InternalError, "read loop failed: the epoll event loop stopped"));
        _disposed = true;
        Retire();
    }
}
