using System.Net.Sockets;
using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Transport;

/// <summary>
/// What the two plain TCP transports share: the write side (a non-blocking send on the owner's thread, and what the
/// kernel will not take queued in an <see cref="OutboundQueue"/>), the socket's options and the output's shutdown. They
/// differ only in how input is waited for (<see cref="SocketTransport"/>: .NET's socket engine and zero-byte reads;
/// <see cref="EpollTransport"/>: an <see cref="EpollLoop"/>) and how a queued send completes.
/// </summary>
internal abstract class PlainTcpTransport : IConnectionTransport, IOutboundSink
{
    /// <summary>Room on the stack for a heartbeat response.</summary>
    private const int MaxLengthWithoutData = 112;

    protected readonly Socket Socket;
    private readonly int _maxFrameLength;
    // Made at the first write the kernel did not take (or at the output's shutdown): an idle connection holds none.
    private OutboundQueue? _outbound;
    private readonly int _maxPendingWrite;
    private long _sentDirectly;
    private volatile bool _disposed;

    /// <param name="remote">The peer as operators see it when not the socket's own address (the client a PROXY header named); null: the socket's.</param>
    protected PlainTcpTransport(Socket socket, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive, string? remote)
    {
        Socket = socket;
        _maxFrameLength = maxFrameLength;
        KeepAlive = keepAlive;
        Remote = remote ?? socket.RemoteEndPoint?.ToString() ?? "unknown";
        _maxPendingWrite = maxPendingWrite;
        Socket.NoDelay = true;
    }

    public string Remote { get; }
    public string Protocol => "tcp";
    public KeepAliveStatus KeepAlive { get; }
    public long BytesOut => _sentDirectly + (_outbound?.BytesSent ?? 0);
    public IInboundFrames Inbound => Frames!;
    public TransportFailure WriteFailure { get; private set; } = TransportFailure.Unspecified;

    /// <summary>The process-wide budget of unfinished frames this connection counts against; null: none.</summary>
    public PendingFrameMemory? FrameMemory { get; init; }

    /// <summary>The wire format (the listener's <c>codec</c>). Default json-lines.</summary>
    public IFrameCodec Codec { get; init; } = JsonLinesCodec.Instance;

    /// <summary>The connection actor, once started.</summary>
    protected IActorRef Owner { get; private set; } = ActorRefs.Nobody;

    /// <summary>The framer, once started.</summary>
    protected InboundFrames? Frames { get; private set; }

    /// <summary>Set once by <see cref="Dispose"/>: nothing is read or written from then on.</summary>
    protected bool Disposed => _disposed;

    /// <summary>Nothing is read or written from now on, without the owner's <see cref="Dispose"/> (the transport's own end).</summary>
    protected void MarkDisposed() => _disposed = true;

    public void Start(IActorRef owner)
    {
        Owner = owner;
        if (_outbound is not null) _outbound.Owner = owner;
        Frames = new InboundFrames(owner, _maxFrameLength, FrameMemory, Codec);
        StartReading();
    }

    /// <summary>Input starts to be read (and its end told to <see cref="Owner"/>).</summary>
    protected abstract void StartReading();

    public bool Write(Frame frame)
    {
        if (_disposed || _outbound is { Accepting: false }) return Refuse(TransportFailures.WrittenAfterClose);
        ReadOnlyMemory<byte> bytes = Codec.EncodeToArray(frame);
        if (_outbound is { IsIdle: false }) return Enqueue(bytes);

        if (!SendNow(bytes.Span, out var sent)) return false;
        return sent == bytes.Length || Enqueue(bytes[sent..]);
    }

    public bool OnWriteFinished(TransportEvents.WriteFinished finished)
    {
        if (_disposed) return Refuse(TransportFailures.WrittenAfterClose);
        return Outbound.OnWriteFinished(finished) || Refuse(new TransportFailure(finished.Reason, finished.Error ?? "write failed"));
    }

    /// <summary>Encoded on the stack and sent at once; only bytes the kernel would not take are copied to the heap.</summary>
    public bool WriteHeartbeatResponse(long timestamp, long? seq, int? interval = null)
    {
        if (_disposed || _outbound is { Accepting: false }) return Refuse(TransportFailures.WrittenAfterClose);
        Span<byte> line = stackalloc byte[MaxLengthWithoutData];
        // A codec that needs more room than the shipped ones (json-lines 104, binary 26) takes the general path.
        if (!Codec.TryEncodeWithoutData(FrameType.HeartbeatResponse, timestamp, seq, interval, line, out var length))
            return Write(Frame.HeartbeatResponse(timestamp, seq) with { Interval = interval });
        line = line[..length];
        if (_outbound is { IsIdle: false }) return Enqueue(line.ToArray());

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
            sent = SendOnce(bytes, out error);
        }
        catch (Exception e)
        {
            sent = 0;
            return Refuse(TransportFailures.Classify(e, "send"));
        }
        if (error != SocketError.Success && error != SocketError.WouldBlock) return Refuse(TransportFailures.FromSocketError(error));
        _sentDirectly += sent;
        return true;
    }

    /// <summary>One non-blocking send: the bytes the kernel took (0 when it would block or failed, with <paramref name="error"/> saying which).</summary>
    protected abstract int SendOnce(ReadOnlySpan<byte> bytes, out SocketError error);

    private bool Enqueue(ReadOnlyMemory<byte> bytes) => Outbound.Enqueue(bytes) || Refuse(Outbound.Refusal);

    private OutboundQueue Outbound => _outbound ??= new OutboundQueue(_maxPendingWrite, this) { Owner = Owner };

    private bool Refuse(TransportFailure failure)
    {
        WriteFailure = failure;
        return false;
    }

    /// <summary>
    /// The queue's send of what the kernel did not take at once: its completion (the bytes the kernel took; a short send
    /// leaves the rest to the queue) reaches the owner as WriteFinished.
    /// </summary>
    protected abstract Task<int> SendQueuedAsync(ReadOnlyMemory<byte> bytes);

    Task<int> IOutboundSink.SendQueuedAsync(ReadOnlyMemory<byte> bytes) => SendQueuedAsync(bytes);

    public TcpInfo? ReadTcpInfo() => _disposed ? null : TcpInfoReader.Read(Socket);

    public bool NudgeKeepAlive(int everySeconds, int probes) => !_disposed && SocketKeepAlive.Nudge(Socket, everySeconds, probes);

    public void RestoreKeepAlive()
    {
        if (!_disposed) SocketKeepAlive.Restore(Socket, KeepAlive);
    }

    public void ShutdownOutput() => Outbound.RequestShutdown();

    public void Close(CloseReason reason, string detail)
    {
        Write(Frame.ErrorNotice(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), reason.NoticeText(detail)));
        ShutdownOutput();
    }

    void IOutboundSink.ShutOutput()
    {
        if (_disposed) return;
        try
        {
            TransportFaults.At(FaultPoint.TcpShutdown, Remote);
            Socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException) { /* already gone; the read side reports how */ }
        catch (Exception e)
        {
            // Called on the owner's thread, which may be closing already: tell it rather than fail it.
            Owner.Tell(TransportFailures.Classify(e, "shutdown"));
        }
    }

    /// <summary>From the owner, once: nothing is read or written from now on; <see cref="Release"/> lets go of the socket.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Frames?.ReleaseReader();
        Release();
    }

    /// <summary>Closes the socket, or has it closed where that is safe (see the subclasses).</summary>
    protected abstract void Release();
}
