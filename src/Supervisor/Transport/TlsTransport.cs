using System.Buffers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Transport;

/// <summary>
/// A TLS connection: the handshake and every read run on the read loop; writes are queued on the owner's
/// thread and sent one at a time once the handshake is done. Idle connections wait in a zero-byte read,
/// so they hold no receive buffer here either, and OpenSSL frees its record buffers between records
/// (<see cref="OpenSslBuffers"/>).
/// </summary>
internal sealed class TlsTransport : IConnectionTransport, IOutboundSink
{
    private const int ReceiveChunk = 16 * 1024;

    /// <summary>How long a handshake may take unless told otherwise (<c>tcp.tls.handshake-timeout</c>).</summary>
    public static readonly TimeSpan DefaultHandshakeTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket _socket;
    private readonly SslStream _ssl;
    private readonly TlsSocketStream _stream;
    // SslServerAuthenticationOptions (a listener's, shared) or SslClientAuthenticationOptions (the heartbeat client's).
    private readonly object _options;
    private readonly TimeSpan _handshakeTimeout;
    private readonly int _maxFrameLength;
    private readonly TaskCompletionSource _handshake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IActorRef _owner = ActorRefs.Nobody;
    private InboundFrames? _inbound;
    // Stopwatch timestamp of the handshake's end; 0 while it runs (see ReadyFor).
    private long _handshakeDoneAt;
    private volatile bool _disposed;

    // Write side: touched on the owner's thread only.
    private readonly OutboundQueue _outbound;

    /// <summary>The server end: presents the listener's certificate and chain.</summary>
    /// <param name="handshakeTimeout">A peer that has not completed the handshake this long after it connected is closed (<c>tcp.tls.handshake-timeout</c>).</param>
    /// <param name="remote">The peer as operators see it when not the socket's own address (the client a PROXY header named); null: the socket's.</param>
    /// <param name="options">The listener's options, shared by its connections (<see cref="ServerOptions"/>).</param>
    public TlsTransport(Socket socket, SslServerAuthenticationOptions options, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive, TimeSpan handshakeTimeout,
        string? remote = null)
        : this(socket, options, "tls", maxFrameLength, maxPendingWrite, keepAlive, handshakeTimeout, remote)
    {
    }

    /// <summary>The client end (the heartbeat client): validates the server as <paramref name="options"/> say.</summary>
    public TlsTransport(Socket socket, SslClientAuthenticationOptions options, string protocol, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive)
        : this(socket, options, protocol, maxFrameLength, maxPendingWrite, keepAlive, DefaultHandshakeTimeout, null)
    {
    }

    /// <summary>
    /// A TLS listener's handshake options, made once for all its connections. The certificate context is made here,
    /// with the chain from the certificate's file and no downloads (<c>offline</c>): given only a certificate, .NET
    /// built a context and its chain for every connection (about 400 B that stayed with each, and a chain build per
    /// handshake), and fetched missing intermediates from the network. As nginx and HAProxy do, the listener sends
    /// the chain its file holds.
    /// </summary>
    public static SslServerAuthenticationOptions ServerOptions(X509Certificate2 certificate, X509Certificate2Collection? intermediates) => new()
    {
        ServerCertificateContext = SslStreamCertificateContext.Create(certificate, intermediates, offline: true),
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        ClientCertificateRequired = false,
    };

    private TlsTransport(Socket socket, object options, string protocol, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive, TimeSpan handshakeTimeout,
        string? remote)
    {
        _socket = socket;
        _socket.NoDelay = true;
        _options = options;
        _handshakeTimeout = handshakeTimeout;
        Protocol = protocol;
        _maxFrameLength = maxFrameLength;
        KeepAlive = keepAlive;
        Remote = remote ?? socket.RemoteEndPoint?.ToString() ?? "unknown";
        _outbound = new OutboundQueue(maxPendingWrite, this);
        _stream = new TlsSocketStream(socket);
        _ssl = new SslStream(_stream, leaveInnerStreamOpen: false);
    }

    public string Remote { get; }
    public string Protocol { get; }
    public KeepAliveStatus KeepAlive { get; }
    public long BytesOut => _outbound.BytesSent;
    public IInboundFrames Inbound => _inbound!;
    public TransportFailure WriteFailure { get; private set; } = TransportFailure.Unspecified;

    /// <summary>The process-wide budget of unfinished frames this connection counts against; null: none.</summary>
    public PendingFrameMemory? FrameMemory { get; init; }

    /// <summary>
    /// The listener's limit on handshakes in progress (<c>tcp.tls.max-handshakes-in-progress</c>); null: none. A reconnect
    /// storm starts every handshake at once, each then takes as long as all of them, past every client's timeout, and the
    /// retries keep it so (bench/README: 17,100 at once on two cores never came back); waiting oldest first, each
    /// handshake runs at the machine's speed and a peer that left while it waited costs nothing.
    /// </summary>
    public SemaphoreSlim? HandshakeGate { get; init; }

    /// <summary>The wire format (the listener's <c>codec</c>). Default json-lines.</summary>
    public IFrameCodec Codec { get; init; } = JsonLinesCodec.Instance;

    public TcpInfo? ReadTcpInfo() => _disposed ? null : TcpInfoReader.Read(_socket);

    public bool NudgeKeepAlive(int everySeconds, int probes) => !_disposed && SocketKeepAlive.Nudge(_socket, everySeconds, probes);

    public void RestoreKeepAlive()
    {
        if (!_disposed) SocketKeepAlive.Restore(_socket, KeepAlive);
    }

    /// <summary>Since the handshake ended; null while it runs.</summary>
    public TimeSpan? ReadyFor => Volatile.Read(ref _handshakeDoneAt) is var at and not 0 ? System.Diagnostics.Stopwatch.GetElapsedTime(at) : null;


    public void Start(IActorRef owner)
    {
        _owner = owner;
        _outbound.Owner = owner;
        _inbound = new InboundFrames(owner, _maxFrameLength, FrameMemory, Codec);
        // On the thread pool (the handshake must not run in the owner's PreStart), without Task.Run's proxy task that
        // each connection would keep for its life (136 B).
        ThreadPool.UnsafeQueueUserWorkItem(static transport => _ = transport.ReadLoopAsync(), this, preferLocal: false);
    }

    /// <summary>
    /// The handshake, then reads until the input ends; how it ended (the peer, the kernel, the handshake
    /// deadline, or a bug of ours) is told to the owner once, so the loop's end never goes unobserved.
    /// </summary>
    private async Task ReadLoopAsync()
    {
        var owner = _owner;
        if (!await HandshakeAsync(owner).ConfigureAwait(false)) return;

        using var inbound = _inbound!;
        try
        {
            while (!_disposed)
            {
                // Backpressure: while the owner's handler is behind, nothing more is read.
                if (inbound.PausedByOwner)
                {
                    await inbound.WhenReadingAllowed().ConfigureAwait(false);
                    continue;
                }
                // Zero-byte read: waits for a record without holding a buffer.
                await _ssl.ReadAsync(Memory<byte>.Empty).ConfigureAwait(false);
                // Input is there, and the owner has not yet taken the last read's frames (it runs on another thread just
                // now): read no further ahead of it. Checked after the wait for input, so a peer that waits for its
                // answers (a heartbeat) never finds the owner behind and costs no wait.
                if (inbound.ReadingPaused) await inbound.WhenReadingAllowed().ConfigureAwait(false);
                TransportFaults.At(FaultPoint.TlsReceiveWait, Remote);
                var buffer = ArrayPool<byte>.Shared.Rent(ReceiveChunk);
                try
                {
                    var read = await _ssl.ReadAsync(buffer.AsMemory(0, ReceiveChunk)).ConfigureAwait(false);
                    TransportFaults.At(FaultPoint.TlsReceive, Remote);
                    if (read == 0)
                    {
                        if (_disposed) return;
                        owner.Tell(_stream.Failure is { } error
                            ? TransportFailures.FromSocketError(error)
                            : new TransportEvents.InputEnded(CloseReason.PeerClosed, "peer closed the connection"));
                        return;
                    }
                    if (!inbound.Accept(buffer.AsSpan(0, read))) return;
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }
        catch (Exception) when (!_disposed && _stream.Failure is { } error)
        {
            // The socket failed in the middle of a record: SslStream calls that an unexpected end of the stream.
            owner.Tell(TransportFailures.FromSocketError(error));
        }
        catch (IOException e) when (!_disposed && e.InnerException is not SocketException)
        {
            // A record that does not decrypt or parse: what the peer sent.
            owner.Tell(new TransportEvents.InputEnded(CloseReason.ProtocolError, $"TLS stream failed: {e.Message}"));
        }
        catch (Exception e) when (!_disposed)
        {
            owner.Tell(TransportFailures.Classify(e, "TLS read loop"));
        }
        catch (Exception)
        {
            // The owner closed the connection (disposed): nobody is waiting for this loop, and the close is told.
        }
    }

    /// <summary>
    /// Runs the handshake within its deadline; false (and the owner told why) when it failed. An RST is
    /// <c>peer-reset</c>, a FIN <c>peer-closed</c>, a deadline missed <c>first-frame-timeout</c> (the peer got
    /// no frame through: it did not even finish the handshake), and only bytes that are no TLS a
    /// <c>protocol-error</c>.
    /// </summary>
    private async Task<bool> HandshakeAsync(IActorRef owner)
    {
        using var timeout = new CancellationTokenSource(_handshakeTimeout);
        _handshakeDeadline = timeout;
        using var deadline = EndHandshakeReadsAt(timeout.Token);
        var gate = HandshakeGate;
        var entered = false;
        try
        {
            if (gate is not null)
            {
                var waiting = gate.WaitAsync(timeout.Token);
                var waited = !waiting.IsCompleted;
                await waiting.ConfigureAwait(false);
                entered = true;
                if (waited && LeftWhileWaiting())
                {
                    FailHandshake(new IOException("the peer left before its TLS handshake began"));
                    if (!_disposed) owner.Tell(new TransportEvents.InputEnded(CloseReason.PeerClosed, "peer left before its TLS handshake began (it waited for tcp.tls.max-handshakes-in-progress)"));
                    return false;
                }
            }
            await (_options is SslServerAuthenticationOptions server
                ? _ssl.AuthenticateAsServerAsync(server, timeout.Token)
                : _ssl.AuthenticateAsClientAsync((SslClientAuthenticationOptions)_options, timeout.Token)).ConfigureAwait(false);
            if (!FinishHandshake()) throw new OperationCanceledException(timeout.Token);
            TransportFaults.At(FaultPoint.TlsHandshake, Remote);
            // Before the first read or write after the handshake: OpenSSL's ~34 KB of record buffers are then held
            // only while a record is in them, not for the connection's life (bench/README.md, issue 16).
            OpenSslBuffers.Release(_ssl);
            HeapSettle.Process.ConnectionOpened();
            Volatile.Write(ref _handshakeDoneAt, System.Diagnostics.Stopwatch.GetTimestamp());
            _handshake.TrySetResult();
            return true;
        }
        catch (Exception e)
        {
            FailHandshake(e);
            HeapSettle.Process.ConnectionOpened();
            if (_disposed) return false;
            owner.Tell(e switch
            {
                // Whatever the deadline's end of the reads made SslStream throw.
                _ when timeout.IsCancellationRequested => new TransportEvents.InputEnded(CloseReason.FirstFrameTimeout,
                    $"TLS handshake not completed within tcp.tls.handshake-timeout ({_handshakeTimeout.ToHocon()}) of connecting"),
                _ when _stream.Failure is { } error => TransportFailures.FromSocketError(error),
                _ when _stream.PeerClosedDuringHandshake && !TransportFailures.CausedBySocket(e) => new TransportEvents.InputEnded(CloseReason.PeerClosed, "peer closed the connection during the TLS handshake"),
                IOException when !TransportFailures.CausedBySocket(e) => new TransportEvents.InputEnded(CloseReason.ProtocolError, $"TLS handshake failed: {e.Message}"),
                _ => TransportFailures.Classify(e, "TLS handshake"),
            });
            return false;
        }
        finally
        {
            if (entered) gate!.Release();
            _handshakeDeadline = null;
        }
    }

    // The running handshake's deadline, so that a close while it waits for the gate ends the wait (Dispose).
    private volatile CancellationTokenSource? _handshakeDeadline;

    /// <summary>
    /// Whether the peer closed or reset while its handshake waited for the gate: the kernel has its FIN (close-wait) or
    /// its RST (close), whatever it sent before. Such a peer's handshake is not begun.
    /// </summary>
    private bool LeftWhileWaiting() => TcpInfoReader.Read(_socket)?.State is "close-wait" or "close";

    private const int Handshaking = 0, HandshakeFinished = 1, HandshakeDeadlinePassed = 2;
    private int _handshakeState = Handshaking;

    /// <summary>
    /// Ends the handshake's reads at its deadline: the socket operations take no cancellation token, and a socket shut
    /// both ways wakes a pending read with the end of input (the connection is being closed for it anyway). A
    /// handshake finished first keeps its socket.
    /// </summary>
    private CancellationTokenRegistration EndHandshakeReadsAt(CancellationToken deadline) =>
        deadline.UnsafeRegister(static state =>
        {
            var transport = (TlsTransport)state!;
            if (Interlocked.CompareExchange(ref transport._handshakeState, HandshakeDeadlinePassed, Handshaking) != Handshaking) return;
            try
            {
                transport._socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Gone already: its read has ended.
            }
        }, this);

    /// <summary>
    /// Marks the handshake finished, unless its deadline came first and shut the socket: false then, and the
    /// handshake counts as not completed in time, whatever SslStream made of the shut socket.
    /// </summary>
    private bool FinishHandshake()
    {
        if (Interlocked.CompareExchange(ref _handshakeState, HandshakeFinished, Handshaking) != Handshaking) return false;
        _stream.HandshakeDone();
        return true;
    }

    /// <summary>
    /// Fails the sends waiting for the handshake. The failure is marked observed at once: a connection that
    /// never queued a send must not leave a faulted task for the finalizer to report.
    /// </summary>
    private void FailHandshake(Exception e)
    {
        if (_handshake.TrySetException(e)) _ = _handshake.Task.Exception;
    }

    public bool Write(Frame frame)
    {
        if (_disposed || !_outbound.Accepting) return Refuse(TransportFailures.WrittenAfterClose);
        return _outbound.Enqueue(Codec.EncodeToArray(frame)) || Refuse(_outbound.Refusal);
    }

    private bool Refuse(TransportFailure failure)
    {
        WriteFailure = failure;
        return false;
    }

    Task<int> IOutboundSink.SendQueuedAsync(ReadOnlyMemory<byte> bytes) => SendAsync(bytes);

    void IOutboundSink.ShutOutput() => _ = CloseNotifyAsync();

    private async Task<int> SendAsync(ReadOnlyMemory<byte> bytes)
    {
        await _handshake.Task.ConfigureAwait(false);
        TransportFaults.At(FaultPoint.TlsSend, Remote);
        await _ssl.WriteAsync(bytes).ConfigureAwait(false);
        return bytes.Length;
    }

    public bool OnWriteFinished(TransportEvents.WriteFinished finished)
    {
        if (_disposed) return Refuse(TransportFailures.WrittenAfterClose);
        return _outbound.OnWriteFinished(finished) || Refuse(new TransportFailure(finished.Reason, finished.Error ?? "write failed"));
    }

    public void ShutdownOutput() => _outbound.RequestShutdown();

    public void Close(CloseReason reason, string detail)
    {
        Write(Frame.ErrorNotice(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), reason.NoticeText(detail)));
        ShutdownOutput();
    }

    /// <summary>
    /// TLS close_notify, then FIN. A failure that means the peer is already gone is the read loop's to report;
    /// anything else is told to the owner, so this task never ends unobserved.
    /// </summary>
    private async Task CloseNotifyAsync()
    {
        if (_disposed) return;
        try
        {
            TransportFaults.At(FaultPoint.TlsCloseNotify, Remote);
            if (_handshake.Task.IsCompletedSuccessfully) await _ssl.ShutdownAsync().ConfigureAwait(false);
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
        }
        catch (Exception e)
        {
            if (!_disposed) _owner.Tell(TransportFailures.Classify(e, "TLS close"));
        }
    }

    /// <summary>
    /// The socket as SslStream's inner stream: reads go through one <see cref="SocketOperation"/> of its own, writes
    /// through the shared ones, so a socket error is a value, not an exception (.NET's NetworkStream turned a failure
    /// known at once into an exception carrying a stack trace formatted with file and line information, rethrown by
    /// each async layer of SslStream above it: a reset storm paid a tenth of the server's CPU for them). A failed read
    /// ends the input (it returns 0, and so does every read after it) and keeps the error in <see cref="Failure"/> for
    /// the handshake or the read loop to report; a failed write is an IOException around the SocketException, as
    /// NetworkStream's. It also notes whether the peer closed while the handshake ran: SslStream reports that as an
    /// IOException like any broken record, and the two have different reasons. The socket's own cached operations
    /// are never made, so a connection holds one operation where NetworkStream kept two.
    /// </summary>
    private sealed class TlsSocketStream(Socket socket) : NetworkStream(socket, ownsSocket: true)
    {
        private readonly SocketOperation _receive = new();
        private volatile bool _handshaking = true;

        public bool PeerClosedDuringHandshake { get; private set; }

        /// <summary>The socket error a read ended with; null while none has.</summary>
        public SocketError? Failure => _receive.Failure;

        public void HandshakeDone() => _handshaking = false;

        // One read at a time (SslStream's rule), so one operation serves them all. The token is the handshake's,
        // whose deadline EndHandshakeReadsAt enforces.
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_receive.Failure is not null) return new ValueTask<int>(0);
            var read = _receive.ReceiveAsync(Socket, buffer);
            return _handshaking && !buffer.IsEmpty ? ObserveAsync(read) : read;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            SocketOperation.Senders.SendAsync(Socket, buffer);

        private async ValueTask<int> ObserveAsync(ValueTask<int> read)
        {
            var count = await read.ConfigureAwait(false);
            if (count == 0 && _receive.Failure is null) PeerClosedDuringHandshake = true;
            return count;
        }

        protected override void Dispose(bool disposing)
        {
            base.Dispose(disposing);
            // After the socket: a pending receive completes (aborted) and its operation is freed then.
            if (disposing) _receive.Dispose();
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            _handshakeDeadline?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The handshake ended meanwhile.
        }
        _inbound?.ReleaseReader();
        FailHandshake(new ObjectDisposedException(nameof(TlsTransport)));
        _ssl.Dispose();
    }
}
