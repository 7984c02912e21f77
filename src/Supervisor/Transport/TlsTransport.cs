using System.Buffers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Transport;

/// <summary>
/// A TLS connection: the handshake and every read run on the read loop; writes are queued on the owner's
/// thread and sent one at a time once the handshake is done. Idle connections wait in a zero-byte read,
/// so they hold no receive buffer here either.
/// </summary>
public sealed class TlsTransport : IConnectionTransport
{
    private const int ReceiveChunk = 16 * 1024;
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket _socket;
    private readonly SslStream _ssl;
    private readonly Func<SslStream, CancellationToken, Task> _authenticate;
    private readonly int _maxFrameLength;
    private readonly TaskCompletionSource _handshake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IActorRef _owner = ActorRefs.Nobody;
    private InboundFrames? _inbound;
    private volatile bool _disposed;

    // Write side: touched on the owner's thread only.
    private readonly OutboundQueue _outbound;

    /// <summary>The server end: presents <paramref name="certificate"/>.</summary>
    public TlsTransport(Socket socket, X509Certificate2 certificate, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive)
        : this(socket, (ssl, cancel) => ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
        {
            ServerCertificate = certificate,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            ClientCertificateRequired = false,
        }, cancel), "tls", maxFrameLength, maxPendingWrite, keepAlive)
    {
    }

    /// <summary>The client end (the heartbeat client): validates the server as <paramref name="options"/> say.</summary>
    public TlsTransport(Socket socket, SslClientAuthenticationOptions options, string protocol, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive)
        : this(socket, (ssl, cancel) => ssl.AuthenticateAsClientAsync(options, cancel), protocol, maxFrameLength, maxPendingWrite, keepAlive)
    {
    }

    private TlsTransport(Socket socket, Func<SslStream, CancellationToken, Task> authenticate, string protocol, int maxFrameLength, int maxPendingWrite, KeepAliveStatus keepAlive)
    {
        _socket = socket;
        _socket.NoDelay = true;
        _authenticate = authenticate;
        Protocol = protocol;
        _maxFrameLength = maxFrameLength;
        KeepAlive = keepAlive;
        _outbound = new OutboundQueue(maxPendingWrite, SendAsync, () => _ = CloseNotifyAsync());
        Remote = socket.RemoteEndPoint?.ToString() ?? "unknown";
        _ssl = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
    }

    public string Remote { get; }
    public string Protocol { get; }
    public KeepAliveStatus KeepAlive { get; }
    public long BytesOut => _outbound.BytesSent;
    public IInboundFrames? Inbound => _inbound;

    /// <summary>The process-wide budget of unfinished frames this connection counts against; null: none.</summary>
    public PendingFrameMemory? FrameMemory { get; init; }

    public TcpInfo? ReadTcpInfo() => _disposed ? null : TcpInfoReader.Read(_socket);


    public void Start(IActorRef owner)
    {
        _owner = owner;
        _outbound.Owner = owner;
        _inbound = new InboundFrames(owner, _maxFrameLength, FrameMemory);
        _ = Task.Run(ReadLoopAsync);
    }

    private async Task ReadLoopAsync()
    {
        var owner = _owner;
        try
        {
            using (var timeout = new CancellationTokenSource(HandshakeTimeout))
            {
                await _authenticate(_ssl, timeout.Token).ConfigureAwait(false);
            }
            _handshake.TrySetResult();
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException or SocketException)
        {
            _handshake.TrySetException(e);
            if (!_disposed)
                owner.Tell(new TransportEvents.InputEnded(CloseReason.ProtocolError, $"TLS handshake failed: {e.GetBaseException().Message}"));
            return;
        }
        catch (ObjectDisposedException e)
        {
            _handshake.TrySetException(e);
            return;
        }

        using var inbound = _inbound!;
        try
        {
            while (!_disposed)
            {
                // Zero-byte read: waits for a record without holding a buffer.
                await _ssl.ReadAsync(Memory<byte>.Empty).ConfigureAwait(false);
                var buffer = ArrayPool<byte>.Shared.Rent(ReceiveChunk);
                try
                {
                    var read = await _ssl.ReadAsync(buffer.AsMemory(0, ReceiveChunk)).ConfigureAwait(false);
                    if (read == 0)
                    {
                        owner.Tell(new TransportEvents.InputEnded(CloseReason.PeerClosed, "peer closed the connection"));
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
        catch (IOException e) when (!_disposed)
        {
            owner.Tell(e.InnerException is SocketException s
                ? SocketTransport.InputEnded(s.SocketErrorCode)
                : new TransportEvents.InputEnded(CloseReason.ProtocolError, $"TLS stream failed: {e.Message}"));
        }
        catch (Exception e) when (_disposed && e is IOException or ObjectDisposedException or OperationCanceledException)
        {
            // The owner closed the connection; nobody is waiting for this loop.
        }
    }

    public bool Write(Frame frame) => !_disposed && _outbound.Accepting && _outbound.Enqueue(JsonLinesCodec.Encode(frame));

    private async Task<int> SendAsync(ReadOnlyMemory<byte> bytes)
    {
        await _handshake.Task.ConfigureAwait(false);
        await _ssl.WriteAsync(bytes).ConfigureAwait(false);
        return bytes.Length;
    }

    public bool OnWriteFinished(TransportEvents.WriteFinished finished) => !_disposed && _outbound.OnWriteFinished(finished);

    public void ShutdownOutput() => _outbound.RequestShutdown();

    /// <summary>TLS close_notify, then FIN; failures mean the peer is already gone, which the read loop reports.</summary>
    private async Task CloseNotifyAsync()
    {
        if (_disposed) return;
        try
        {
            if (_handshake.Task.IsCompletedSuccessfully) await _ssl.ShutdownAsync().ConfigureAwait(false);
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _handshake.TrySetException(new ObjectDisposedException(nameof(TlsTransport)));
        _ssl.Dispose();
    }
}
