using System.Net;
using System.Net.Sockets;
using System.Text;
using Supervisor.Messages.Wire;

namespace Supervisor.Tests.Support;

/// <summary>A real TCP peer of the service, speaking json-lines (or the codec it is given) with a plain socket.</summary>
public sealed class TestPeer : IDisposable
{
    private readonly Socket _socket;
    private readonly IFrameCodec _codec;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private readonly MemoryStream _pending = new();

    private TestPeer(Socket socket, IFrameCodec codec)
    {
        _socket = socket;
        _codec = codec;
    }

    public Socket Socket => _socket;

    public IFrameCodec Codec => _codec;

    /// <summary>The codec called <paramref name="name"/> (json-lines, binary), for theories over both.</summary>
    public static IFrameCodec CodecNamed(string name) =>
        FrameCodecs.TryGet(name, out var codec) ? codec : throw new ArgumentException($"no codec {name}", nameof(name));

    public static Task<TestPeer> ConnectAsync(int port, string codec) => ConnectAsync(port, CodecNamed(codec));

    /// <param name="port">The service's port on loopback.</param>
    /// <param name="from">The local address to connect from (any of 127.0.0.0/8 works on loopback).</param>
    public static Task<TestPeer> ConnectAsync(int port, IPAddress from) => ConnectAsync(port, null, from);

    /// <param name="port">The service's port on loopback.</param>
    /// <param name="codec">The codec the peer speaks; null: JSON lines.</param>
    /// <param name="from">The local address to connect from (any of 127.0.0.0/8 works on loopback); null: the kernel's choice.</param>
    public static async Task<TestPeer> ConnectAsync(int port, IFrameCodec? codec = null, IPAddress? from = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (from is not null) socket.Bind(new IPEndPoint(from, 0));
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new TestPeer(socket, codec ?? JsonLinesCodec.Instance);
    }

    public Task SendAsync(string text) => SendAsync(Encoding.UTF8.GetBytes(text));

    public async Task SendAsync(byte[] bytes) => await _socket.SendAsync(bytes, SocketFlags.None);

    public Task SendFrameAsync(Frame frame) => SendAsync(_codec.EncodeToArray(frame));

    public Task SendHeartbeatAsync(long? seq = null) => SendFrameAsync(new Frame(FrameType.Heartbeat, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), null, seq));

    /// <summary>The next frame from the server, or null when the server closed the connection first.</summary>
    public async Task<Frame?> ReceiveFrameAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(5));
        while (true)
        {
            var bytes = _pending.ToArray();
            if (_codec.Scan(bytes, 1 << 30, out var found) == FrameScan.Complete)
            {
                _pending.SetLength(0);
                _pending.Write(bytes, found.WireLength, bytes.Length - found.WireLength);
                return _codec.TryDecode(bytes.AsSpan(found.BodyStart, found.BodyLength), out var frame, out var error)
                    ? frame.ToFrame()
                    : throw new InvalidDataException($"server sent an invalid frame: {error}");
            }
            int read;
            try
            {
                read = await _socket.ReceiveAsync(_buffer, SocketFlags.None, cts.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException("no frame from the server in time");
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                return null;
            }
            if (read == 0) return null;
            _pending.Write(_buffer, 0, read);
        }
    }

    /// <summary>Reads until the server closes; returns the frames that came before the close.</summary>
    public async Task<IReadOnlyList<Frame>> ReceiveUntilClosedAsync(TimeSpan? timeout = null)
    {
        var frames = new List<Frame>();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(5));
        while (await ReceiveFrameAsync(deadline - DateTime.UtcNow) is { } frame)
            frames.Add(frame);
        return frames;
    }

    /// <summary>Closes with an RST instead of a FIN (SO_LINGER 0).</summary>
    public void Abort()
    {
        _socket.LingerState = new LingerOption(true, 0);
        _socket.Close();
    }

    public void Dispose() => _socket.Dispose();
}
