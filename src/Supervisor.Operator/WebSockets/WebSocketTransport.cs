using System.Buffers;
using System.Net.Sockets;
using System.Net.WebSockets;
using Akka.Actor;
using Microsoft.AspNetCore.Connections;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Transport;

namespace Supervisor.WebSockets;

/// <summary>
/// One accepted WebSocket behind the connection-actor seam: each message carries one frame of the listener's
/// codec: a text message one <c>json-lines</c> frame (a trailing newline is accepted), a binary message one
/// <c>binary</c> frame without its length prefix (<see cref="IFrameCodec.MessageBody"/>).
/// The WebSocket's own ping/pong (<c>ping-interval</c>, <c>pong-timeout</c>) is the heartbeat. The runtime
/// sends the pings; the pong deadline is this transport's own (<see cref="SilenceLimit"/>), so a peer that
/// misses its pong gets the <c>heartbeat-timeout</c> notice and a close frame, where the runtime would
/// only abort the socket. A close the server decides ends with the error notice as a text message, then a
/// close frame whose status follows the reason. Like <see cref="SocketTransport"/>, every member but the receive loop runs
/// on the owning actor's thread; <see cref="Completion"/> lets the HTTP request that carries the WebSocket
/// end once the owner has disposed it.
/// </summary>
internal sealed class WebSocketTransport : IConnectionTransport, IOutboundSink
{
    private const int ReceiveChunk = 4 * 1024;

    private readonly WebSocket _ws;
    private readonly Socket? _socket;
    private readonly int _maxFrameLength;
    private readonly IFrameCodec _codec;
    private readonly WebSocketMessageType _messageType;
    private readonly TimeSpan _closeLinger;
    private readonly TimeSpan _pongTimeout;
    private readonly TimeSpan _silenceLimit;
    private Timer? _pongDeadline;
    private int _pongMissed;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IActorRef _owner = ActorRefs.Nobody;
    private InboundFrames? _inbound;
    private int _disposeRequested;
    private int _finished;
    private volatile bool _disposed;
    private volatile bool _inputEnded;
    private bool _closing;
    private bool _receiving;

    // Receive side: touched by the receive loop only.
    private byte[]? _message;
    private int _messageLength;
    private bool _draining;
    // When the message being received began (Environment.TickCount64), 0 between messages: written by the receive
    // loop, read by the pong deadline, which closes a peer that holds a message open (see CheckPongDeadline).
    private long _messageStartedAt;
    // The runtime refused input and sent its own close frame: nothing more is read or written here.
    private volatile bool _runtimeClosed;
    // One message at a time: the next receive waits until the owner has taken and handled the frame before it. The
    // runtime checks a text message's UTF-8 inside ReceiveAsync and answers a bad one with a close frame at
    // once; waiting keeps the answers to earlier frames ahead of that close frame.
    private readonly SemaphoreSlim _ownerCaughtUp = new(0, int.MaxValue);
    // After a refused frame the drain waits for our close frame to be sent (notice first), for the same reason.
    private readonly TaskCompletionSource _closeFrameSent = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Write side: touched on the owner's thread only.
    private readonly OutboundQueue _outbound;
    private long _sentDirectly;
    private Task? _closeOutput;
    private WebSocketCloseStatus _closeStatus = WebSocketCloseStatus.NormalClosure;
    private string _closeDescription = "";

    /// <param name="ws">The accepted WebSocket, with keep-alive ping/pong configured.</param>
    /// <param name="remote">The peer's address as operators see it.</param>
    /// <param name="socket">The TCP socket under it, for TCP_INFO; null when the server does not expose one.</param>
    /// <param name="keepAlive">Kernel keep-alive as applied to that socket and read back.</param>
    /// <param name="listener">The WebSocket listener's settings (frame length, pending writes, close linger).</param>
    /// <param name="pingInterval">The configured ping interval (the runtime pings after this long without input).</param>
    /// <param name="pongTimeout">The configured pong timeout, named in the close detail.</param>
    public WebSocketTransport(WebSocket ws, string remote, Socket? socket, KeepAliveStatus keepAlive, ListenerSettings listener, TimeSpan pingInterval, TimeSpan pongTimeout)
    {
        _ws = ws;
        _socket = socket;
        _maxFrameLength = listener.MaxFrameLength;
        _codec = listener.Codec;
        _messageType = _codec.IsText ? WebSocketMessageType.Text : WebSocketMessageType.Binary;
        _outbound = new OutboundQueue(listener.MaxPendingWrite, this);
        _closeLinger = listener.CloseLinger;
        _pongTimeout = pongTimeout;
        _silenceLimit = SilenceLimit(pingInterval, pongTimeout);
        Remote = remote;
        KeepAlive = keepAlive;
    }

    /// <summary>
    /// The runtime's keep-alive timeout to configure when this transport keeps the pong deadline itself (it
    /// needs the TCP socket for that): far enough past <see cref="SilenceLimit"/> that the runtime's abort,
    /// which would reach the peer as an RST without the notice, only ever backs up the deadline here
    /// (a peer that sends data but never answers a ping). Without a socket the runtime keeps the deadline.
    /// </summary>
    public static TimeSpan RuntimePongTimeout(TimeSpan pongTimeout, bool deadlineKeptHere) =>
        deadlineKeptHere ? pongTimeout * 2 + TimeSpan.FromSeconds(2) : pongTimeout;

    /// <summary>
    /// How long the peer may send nothing at all before it is closed with <c>heartbeat-timeout</c>: the
    /// runtime pings once <paramref name="pingInterval"/> passed without input, checking on its own tick
    /// (a quarter of the shorter of its interval and timeout, at least 1 s), and a pong is input. So a peer
    /// silent this long was pinged at least <paramref name="pongTimeout"/> ago and did not answer.
    /// </summary>
    public static TimeSpan SilenceLimit(TimeSpan pingInterval, TimeSpan pongTimeout)
    {
        var runtimeTimeout = RuntimePongTimeout(pongTimeout, deadlineKeptHere: true);
        var tick = TimeSpan.FromMilliseconds(Math.Max(1000, Math.Min(pingInterval.TotalMilliseconds, runtimeTimeout.TotalMilliseconds) / 4));
        return pingInterval + tick + pongTimeout;
    }

    public string Remote { get; }
    public string Protocol => "ws";
    public KeepAliveStatus KeepAlive { get; }
    public long BytesOut => _sentDirectly + _outbound.BytesSent;
    public TransportFailure WriteFailure { get; private set; } = TransportFailure.Unspecified;
    public IInboundFrames Inbound => _inbound!;

    /// <summary>Completes once the transport is disposed and the WebSocket is closed or aborted.</summary>
    public Task Completion => _completion.Task;

    public void Start(IActorRef owner)
    {
        _owner = owner;
        _outbound.Owner = owner;
        _inbound = new InboundFrames(owner, _maxFrameLength, codec: _codec) { Drained = () => _ownerCaughtUp.Release() };
        _receiving = true;
        if (_socket is not null)
            _pongDeadline = new Timer(static state => ((WebSocketTransport)state!).CheckPongDeadline(), this, _silenceLimit, Timeout.InfiniteTimeSpan);
        _ = Task.Run(ReceiveLoopAsync);
    }

    /// <summary>
    /// The pong deadline's timer callback: the kernel knows when the peer last sent anything (a pong
    /// included), so the callback reads that and either closes (told to the owner as
    /// <c>heartbeat-timeout</c>, which sends the notice and the close frame) or sleeps until the deadline
    /// could next pass. Whatever fails here is told to the owner too.
    /// </summary>
    private void CheckPongDeadline()
    {
        try
        {
            if (_disposed || Volatile.Read(ref _closing)) return;
            TransportFaults.At(FaultPoint.WsPongCheck, Remote);
            if (TcpInfoReader.ReadLastDataReceived(_socket!) is not { } silent) return; // the socket is gone: the receive loop says how
            // Pongs keep a peer alive, and a peer may answer them while it holds a message open for ever: so a message
            // must also complete within the silence limit, as a TCP frame must within the heartbeat timeout (its bytes
            // are not liveness either). Otherwise a few bytes and a pong now and then would hold a slot for good.
            var started = Volatile.Read(ref _messageStartedAt);
            var unfinished = started == 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Environment.TickCount64 - started);
            if (unfinished >= _silenceLimit)
            {
                if (Interlocked.Exchange(ref _pongMissed, 1) == 0)
                    _owner.Tell(new TransportEvents.InputEnded(CloseReason.HeartbeatTimeout,
                        $"a message unfinished for {unfinished.TotalMilliseconds:F0} ms (a message must complete within {_silenceLimit.ToHocon()}; pongs do not count while one is open)"));
                return;
            }
            if (silent < _silenceLimit)
            {
                var next = _silenceLimit - silent;
                if (started != 0 && _silenceLimit - unfinished < next) next = _silenceLimit - unfinished;
                _pongDeadline?.Change(next, Timeout.InfiniteTimeSpan);
                return;
            }
            if (Interlocked.Exchange(ref _pongMissed, 1) == 0)
                _owner.Tell(new TransportEvents.InputEnded(CloseReason.HeartbeatTimeout,
                    $"no pong within {_pongTimeout.ToHocon()} of a ping (nothing received for {silent.TotalMilliseconds:F0} ms)"));
        }
        catch (Exception e)
        {
            if (!_disposed) _owner.Tell(TransportFailures.Classify(e, "pong deadline"));
        }
    }

    private async Task ReceiveLoopAsync()
    {
        var owner = _owner;
        var inbound = _inbound!;
        byte[]? chunk = null;
        var inMessage = false;
        try
        {
            while (true)
            {
                // Backpressure: while the owner's handler is behind, no next message is received (between messages only).
                if (!inMessage && inbound.ReadingPaused && !_draining)
                {
                    await inbound.WhenReadingAllowed().ConfigureAwait(false);
                    if (_disposed) return;
                    continue;
                }
                // Between messages, a zero-byte receive: an idle peer costs no receive buffer.
                Memory<byte> target = inMessage ? (chunk ??= ArrayPool<byte>.Shared.Rent(ReceiveChunk)) : Memory<byte>.Empty;
                var result = await _ws.ReceiveAsync(target, CancellationToken.None).ConfigureAwait(false);
                TransportFaults.At(FaultPoint.WsReceive, Remote);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    _inputEnded = true;
                    owner.Tell(new TransportEvents.InputEnded(CloseReason.PeerClosed, ClosedByPeerDetail()));
                    return;
                }
                var wasInMessage = inMessage;
                inMessage = !result.EndOfMessage;
                if (inMessage != wasInMessage) Volatile.Write(ref _messageStartedAt, inMessage ? Math.Max(1, Environment.TickCount64) : 0);
                var told = !_draining && OnReceived(owner, inbound, result, target.Span[..result.Count]);
                if (!inMessage && chunk is not null)
                {
                    ArrayPool<byte>.Shared.Return(chunk);
                    chunk = null;
                }
                if (told) await _ownerCaughtUp.WaitAsync().ConfigureAwait(false);
                else if (_draining) await _closeFrameSent.Task.ConfigureAwait(false);
            }
        }
        catch (Exception e) when (!_disposed && e is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            if (e is WebSocketException { WebSocketErrorCode: WebSocketError.Faulted or WebSocketError.InvalidMessageType }
                && _ws.State is WebSocketState.CloseSent or WebSocketState.Aborted)
            {
                // Input the runtime refused (a text message that is not UTF-8, say): it has sent its own close frame
                // (1007, unless ours went first) and reads no more. The owner closes with protocol-error, once, and
                // lets go of the socket after its close-linger, so that the peer can read what was sent before
                // (the answers, our notice) first; ending it at once would reset the socket under them.
                _runtimeClosed = true;
                if (!Volatile.Read(ref _closing))
                    owner.Tell(new TransportEvents.FrameRejected(CloseReason.ProtocolError, $"invalid WebSocket input: {e.Message}"));
                return;
            }
            _inputEnded = true;
            owner.Tell(Classify(e));
        }
        catch (Exception e) when (!_disposed)
        {
            // Not the peer's doing: a bug of ours (internal-error) ends this connection, and only it.
            _inputEnded = true;
            owner.Tell(TransportFailures.Classify(e, "WebSocket receive loop"));
        }
        catch (Exception)
        {
            // The owner disposed the transport: nobody is waiting for this loop, and the close is told.
            _inputEnded = true;
        }
        finally
        {
            if (chunk is not null) ArrayPool<byte>.Shared.Return(chunk);
            ReleaseMessage();
        }
    }

    /// <summary>Assembles one message from its pieces and decodes it once complete; true when a frame was told to the owner. Receive loop only.</summary>
    private bool OnReceived(IActorRef owner, InboundFrames inbound, ValueWebSocketReceiveResult result, ReadOnlySpan<byte> data)
    {
        if (result.MessageType != _messageType)
        {
            Reject(owner, CloseReason.ProtocolError, _codec.IsText
                ? (_codec is JsonLinesCodec ? "binary message; frames are JSON text messages" : $"binary message; frames are {_codec.Name} text messages")
                : $"text message; this listener speaks {_codec.Name} frames in binary messages");
            return false;
        }
        // One byte of slack each for a trailing "\r\n", as on TCP.
        if (_messageLength + data.Length > _maxFrameLength + 2)
        {
            Reject(owner, CloseReason.FrameTooLarge, FrameCodecs.TooLargeDetail(_maxFrameLength));
            return false;
        }
        if (data.Length > 0)
        {
            _message = Append(_message, _messageLength, data);
            _messageLength += data.Length;
        }
        if (!result.EndOfMessage) return false;

        var wireBytes = _messageLength;
        // Decoded by the listener's codec and queued like a TCP frame (the owner is told FramesReady), or refused
        // (frame-too-large, protocol-error) with the owner told why.
        var told = inbound.AcceptMessage(_message is null ? ReadOnlySpan<byte>.Empty : _message.AsSpan(0, _messageLength), wireBytes);
        ReleaseMessage();
        if (!told) _draining = true;
        return told;
    }

    /// <summary>Input that breaks the protocol: report it once, then drain and discard until the close.</summary>
    private void Reject(IActorRef owner, CloseReason reason, string error)
    {
        _draining = true;
        ReleaseMessage();
        owner.Tell(new TransportEvents.FrameRejected(reason, error));
    }

    private void ReleaseMessage()
    {
        if (_message is not null) ArrayPool<byte>.Shared.Return(_message);
        _message = null;
        _messageLength = 0;
    }

    private static byte[] Append(byte[]? buffer, int length, ReadOnlySpan<byte> bytes)
    {
        var needed = length + bytes.Length;
        if (buffer is null || buffer.Length < needed)
        {
            var grown = ArrayPool<byte>.Shared.Rent(Math.Max(needed, 256));
            if (buffer is not null)
            {
                buffer.AsSpan(0, length).CopyTo(grown);
                ArrayPool<byte>.Shared.Return(buffer);
            }
            buffer = grown;
        }
        bytes.CopyTo(buffer.AsSpan(length));
        return buffer;
    }

    private string ClosedByPeerDetail()
    {
        var status = _ws.CloseStatus is { } code ? $"{(int)code}" : "no status";
        return string.IsNullOrEmpty(_ws.CloseStatusDescription)
            ? $"peer closed the WebSocket ({status})"
            : $"peer closed the WebSocket ({status} {_ws.CloseStatusDescription})";
    }

    /// <summary>Why a receive failed, as a close reason (DESIGN §3).</summary>
    private TransportEvents.InputEnded Classify(Exception e)
    {
        if (IsKeepAliveTimeout(e))
            return new(CloseReason.HeartbeatTimeout, $"no pong within {_pongTimeout.ToHocon()} of a ping");
        for (var cause = (Exception?)e; cause is not null; cause = cause.InnerException)
        {
            if (cause is ConnectionResetException || cause is SocketException { SocketErrorCode: SocketError.ConnectionReset })
                return new(CloseReason.PeerReset, "connection reset by peer");
            if (cause is SocketException { SocketErrorCode: SocketError.TimedOut })
                return new(CloseReason.KeepaliveFailed, "kernel keep-alive or user timeout gave up on the peer");
        }
        if (e is WebSocketException { WebSocketErrorCode: WebSocketError.ConnectionClosedPrematurely })
            return new(CloseReason.PeerClosed, "peer closed the connection without a WebSocket close");
        if (e is WebSocketException && _ws.CloseStatus is WebSocketCloseStatus.InvalidPayloadData or WebSocketCloseStatus.ProtocolError)
            return new(CloseReason.ProtocolError, $"invalid WebSocket input: {e.Message}");
        return new(CloseReason.PeerReset, $"WebSocket failed: {e.GetBaseException().Message}");
    }

    /// <summary>
    /// The runtime aborts a WebSocket whose peer missed a pong (KeepAliveTimeout); the pending receive then
    /// fails with the server's <see cref="ConnectionAbortedException"/>, or with a <see cref="WebSocketException"/>
    /// naming the timeout. Nothing else aborts it while it is open: this transport aborts only once disposed
    /// or while closing, and a peer's reset or end of stream fails the receive differently.
    /// </summary>
    private bool IsKeepAliveTimeout(Exception e)
    {
        if (_ws.State != WebSocketState.Aborted || Volatile.Read(ref _closing)) return false;
        for (var cause = (Exception?)e; cause is not null; cause = cause.InnerException)
        {
            if (cause is ConnectionAbortedException) return true;
            if (cause is WebSocketException && cause.Message.Contains("KeepAliveTimeout", StringComparison.Ordinal)) return true;
        }
        return false;
    }

    public bool Write(Frame frame)
    {
        if (_disposed || !_outbound.Accepting) return Refuse(TransportFailures.WrittenAfterClose);
        // One message per frame: the message boundary is the frame's, no newline or length prefix.
        ReadOnlyMemory<byte> text = _codec.EncodeMessageToArray(frame);
        if (!_outbound.IsIdle) return _outbound.Enqueue(text) || Refuse(_outbound.Refusal);
        return SendNow(text);
    }

    public void Close(CloseReason reason, string detail)
    {
        // The close frame follows the notice that announced the close: its status says why, its text names the reason.
        _closeDescription = reason.ToWireName();
        _closeStatus = reason switch
        {
            CloseReason.ProtocolError or CloseReason.HeartbeatTimeout => WebSocketCloseStatus.PolicyViolation,
            CloseReason.FrameTooLarge => WebSocketCloseStatus.MessageTooBig,
            CloseReason.ServerShutdown => WebSocketCloseStatus.EndpointUnavailable,
            CloseReason.InternalError => WebSocketCloseStatus.InternalServerError,
            CloseReason.RejectedCapacity => (WebSocketCloseStatus)1013, // try again later
            _ => WebSocketCloseStatus.NormalClosure,
        };
        Write(Frame.ErrorNotice(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), reason.NoticeText(detail)));
        ShutdownOutput();
    }

    private bool Refuse(TransportFailure failure)
    {
        WriteFailure = failure;
        return false;
    }

    /// <summary>Sends at once when the runtime completes the send synchronously; else the queue owns it until it completes.</summary>
    private bool SendNow(ReadOnlyMemory<byte> text)
    {
        ValueTask send;
        try
        {
            TransportFaults.At(FaultPoint.WsSend, Remote);
            send = _ws.SendAsync(text, _messageType, endOfMessage: true, CancellationToken.None);
            if (send.IsCompletedSuccessfully)
            {
                send.GetAwaiter().GetResult();
                _sentDirectly += text.Length;
                return true;
            }
        }
        catch (Exception e)
        {
            return Refuse(TransportFailures.Classify(e, "send"));
        }
        _outbound.Started(text, CompleteSendAsync(send, text.Length));
        return true;
    }

    Task<int> IOutboundSink.SendQueuedAsync(ReadOnlyMemory<byte> bytes) => SendQueuedAsync(bytes);

    void IOutboundSink.ShutOutput() => StartCloseOutput();

    private Task<int> SendQueuedAsync(ReadOnlyMemory<byte> text)
    {
        TransportFaults.At(FaultPoint.WsSend, Remote);
        return CompleteSendAsync(_ws.SendAsync(text, WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None), text.Length);
    }

    private async Task<int> CompleteSendAsync(ValueTask send, int bytes)
    {
        await send.ConfigureAwait(false);
        TransportFaults.At(FaultPoint.WsSendCompleted, Remote);
        return bytes;
    }

    public bool OnWriteFinished(TransportEvents.WriteFinished finished)
    {
        if (_disposed) return Refuse(TransportFailures.WrittenAfterClose);
        return _outbound.OnWriteFinished(finished) || Refuse(new TransportFailure(finished.Reason, finished.Error ?? "write failed"));
    }

    public void ShutdownOutput()
    {
        if (!_outbound.Accepting) return;
        // Nothing left to wait for: the owner is told now instead of lingering (its close frame, if any, is out already).
        var alreadyClosed = !_runtimeClosed && (_inputEnded || _ws.State is WebSocketState.Aborted or WebSocketState.Closed);
        _outbound.RequestShutdown();
        if (alreadyClosed) _owner.Tell(new TransportEvents.InputEnded(CloseReason.PeerClosed, "the WebSocket is already closed"));
    }

    public TcpInfo? ReadTcpInfo() => _socket is null || _disposed ? null : TcpInfoReader.Read(_socket);

    /// <summary>Once everything queued is sent: the close frame (not after the runtime sent its own, nor once the WebSocket is gone).</summary>
    private void StartCloseOutput()
    {
        if (_closeOutput is not null || _runtimeClosed) return;
        if (_inputEnded || _ws.State is WebSocketState.Aborted or WebSocketState.Closed) return;
        Volatile.Write(ref _closing, true);
        _closeOutput = _receiving
            ? CloseOutputAsync(_closeStatus, _closeDescription)
            : CloseAndAwaitPeerAsync(_closeStatus, _closeDescription);
    }

    /// <summary>Sends the close frame, bounded by <c>close-linger</c>; a peer that does not read gets aborted.</summary>
    private async Task CloseOutputAsync(WebSocketCloseStatus status, string description)
    {
        using var timeout = new CancellationTokenSource(_closeLinger);
        try
        {
            TransportFaults.At(FaultPoint.WsCloseOutput, Remote);
            await _ws.CloseOutputAsync(status, description, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // The peer is gone or not reading; Finish aborts what is left.
        }
        catch (Exception e)
        {
            CloseOutputFailed(e);
        }
        finally
        {
            _closeFrameSent.TrySetResult();
        }
    }

    /// <summary>
    /// For a transport refused before anyone read from it: sends the close frame and reads (discarding) until
    /// the peer's close frame, bounded by <c>close-linger</c>, so the peer reads the notice before the TCP close.
    /// </summary>
    private async Task CloseAndAwaitPeerAsync(WebSocketCloseStatus status, string description)
    {
        using var timeout = new CancellationTokenSource(_closeLinger);
        try
        {
            TransportFaults.At(FaultPoint.WsCloseOutput, Remote);
            await _ws.CloseAsync(status, description, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // The peer is gone or silent; Finish aborts what is left.
        }
        catch (Exception e)
        {
            CloseOutputFailed(e);
        }
    }

    /// <summary>A close that failed for a reason of ours: the owner (closing already) is told, so it lets go now rather than after its linger.</summary>
    private void CloseOutputFailed(Exception e)
    {
        if (!_disposed) _owner.Tell(TransportFailures.Classify(e, "WebSocket close"));
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposeRequested, 1) == 1) return;
        _disposed = true;
        _pongDeadline?.Dispose();
        // A receive loop waiting for the owner, the read gate or the close frame must see the end, not wait forever.
        _inbound?.ReleaseReader();
        _ownerCaughtUp.Release();
        _closeFrameSent.TrySetResult();
        // A peer that closed first is owed the close handshake's answer.
        if (_closeOutput is null && _ws.State == WebSocketState.CloseReceived)
        {
            Volatile.Write(ref _closing, true);
            _closeOutput = CloseOutputAsync(_ws.CloseStatus ?? WebSocketCloseStatus.NormalClosure, "");
        }
        if (_closeOutput is { IsCompleted: false } closing)
            closing.ContinueWith(_ => Finish(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        else
            Finish();
    }

    /// <summary>Lets go of the WebSocket; the request that carries it ends whatever happens, so Kestrel releases the socket.</summary>
    private void Finish()
    {
        if (Interlocked.Exchange(ref _finished, 1) == 1) return;
        try
        {
            // Once a close frame went out (ours, or the runtime's 1007 for input that is not UTF-8) the socket ends
            // with a FIN when the request ends; an abort would reset it, and an RST destroys what the peer has not
            // read yet: the answers before the bad input, the notice.
            if (_ws.State is not (WebSocketState.Closed or WebSocketState.CloseSent)) _ws.Abort();
            _ws.Dispose();
        }
        finally
        {
            _completion.TrySetResult();
        }
    }
}
