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
/// <see cref="PlainTcpTransport.Dispose"/> posts the close to the loop, so a descriptor leaves the epoll set before it can be reused,
/// and no read runs on a socket or framer being released.
/// </para>
/// </summary>
internal sealed class EpollTransport : PlainTcpTransport
{
    private readonly int _fd;
    private readonly EpollLoop _loop;
    private long _token;

    /// <summary>The loop's token for this socket (its slot and generation); 0 before it is registered.</summary>
    internal long Token => Volatile.Read(ref _token);

    // Read side: the loop's thread only.
    private bool _inputEnded;
    private bool _hungUp;
    private bool _resumeArmed;
    private int _retired;

    // The queued send the loop finishes (the rest of the write side is the owner's: PlainTcpTransport).
    private QueuedSend? _queued;

    /// <summary>A queued write waiting for the socket to take it; completed on the loop's thread.</summary>
    private sealed class QueuedSend(ReadOnlyMemory<byte> bytes)
    {
        public ReadOnlyMemory<byte> Bytes { get; } = bytes;
        public TaskCompletionSource<int> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public EpollTransport(Socket socket, EpollLoop loop, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive)
        : base(socket, maxFrameLength, maxPendingWrite, keepAlive, remote: null)
    {
        _loop = loop;
        _fd = (int)socket.Handle;
        // Not Socket.Blocking = false: .NET would build its async context for the socket (see NativeSockets).
        _nonBlockingErrno = NativeSockets.MakeNonBlocking(_fd);
    }

    /// <summary>Full buffers read from one socket per readiness (128 KiB), as Netty's <c>maxMessagesPerRead</c> (16).</summary>
    private const int MaxReadsPerTurn = 16;

    /// <summary>Nonzero when the descriptor could not be made non-blocking: the connection is closed at start, never read blocking.</summary>
    private readonly int _nonBlockingErrno;

    /// <summary>
    /// On the owner's thread. The descriptor is held while the call runs: the loop's thread closes it, and a loop that
    /// ends closes it without waiting for the owner (an ended socket's send then fails, it never reaches a reused number).
    /// </summary>
    protected override int SendOnce(ReadOnlySpan<byte> bytes, out SocketError error)
    {
        var handle = Socket.SafeHandle;
        var held = false;
        try
        {
            handle.DangerousAddRef(ref held);
            return NativeSockets.Send(_fd, bytes, out error);
        }
        finally
        {
            if (held) handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Registers the socket with the loop. Input already waiting is reported by the kernel at once and read on the
    /// loop's thread, not in the owner's PreStart.
    /// </summary>
    protected override void StartReading()
    {
        if (_nonBlockingErrno != 0)
        {
            Owner.Tell(new TransportEvents.InputEnded(CloseReason.InternalError, $"read loop failed: fcntl(O_NONBLOCK) refused the socket (errno {_nonBlockingErrno})"));
            return;
        }
        var errno = _loop.Register(this, _fd, out _token);
        if (errno != 0)
            Owner.Tell(new TransportEvents.InputEnded(CloseReason.InternalError, $"read loop failed: epoll_ctl refused the socket (errno {errno})"));
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
        if (Disposed || _inputEnded) return;
        var inbound = Frames!;
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
            for (var reads = 0; ; reads++)
            {
                // Fairness: a peer that keeps the socket full (a flood) gets this many reads per turn, then waits behind
                // the loop's other sockets (posted work runs after the batch; edge-triggered, no new edge would come).
                if (reads == MaxReadsPerTurn)
                {
                    _loop.Post(this, EpollWork.ResumeRead);
                    return;
                }
                TransportFaults.At(FaultPoint.TcpReceive, Remote);
                var read = NativeSockets.Receive(_fd, buffer, out var error);
                if (error == SocketError.WouldBlock) return;
                if (error != SocketError.Success)
                {
                    EndInput(TransportFailures.FromSocketError(error));
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
                if (Disposed) return;
                if (inbound.ReadingPaused)
                {
                    AwaitResume(inbound);
                    return;
                }
                if (read < buffer.Length && !_hungUp) return;
            }
        }
        catch (Exception e) when (!Disposed)
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
        Owner.Tell(ended);
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

    /// <summary>
    /// The queue's send: handed to the loop, which sends when the socket is writable and completes it with what the kernel
    /// took (a short send: the queue sends the rest next). Its completion reaches the owner as WriteFinished.
    /// </summary>
    protected override Task<int> SendQueuedAsync(ReadOnlyMemory<byte> bytes)
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
            // The loop's own thread closes the descriptor, so it cannot close under this call.
            sent = NativeSockets.Send(_fd, send.Bytes.Span, out error);
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

    /// <summary>
    /// The owner let go (Dispose): the loop closes the socket (see the class remarks), or
    /// this thread does when the loop has ended.
    /// </summary>
    protected override void Release()
    {
        Interlocked.Exchange(ref _queued, null)?.Completion.TrySetException(new ObjectDisposedException(nameof(EpollTransport)));
        if (!_loop.Post(this, EpollWork.Retire)) Retire();
    }

    /// <summary>On the loop's thread (or the owner's once the loop has ended): out of the epoll set, then closed.</summary>
    private void Retire()
    {
        // Once: the loop's end and an owner letting go just then may both get here.
        if (Interlocked.Exchange(ref _retired, 1) != 0) return;
        _loop.Unregister(_token, _fd);
        Socket.Dispose();
        Frames?.Dispose();
    }

    /// <summary>On the loop's thread as it ends: the owner is told (a connection must not wait on a loop that is gone), the socket closed.</summary>
    internal void LoopEnded()
    {
        if (!Disposed && !_inputEnded) EndInput(new TransportEvents.InputEnded(CloseReason.InternalError, "read loop failed: the epoll event loop stopped"));
        MarkDisposed();
        Retire();
    }
}
