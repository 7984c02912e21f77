using System.Net;
using System.Net.Sockets;
using System.Text;
using Supervisor.Messages.Wire;

namespace Supervisor.Tests.Support;

/// <summary>A real TCP peer of the service, speaking json-lines with a plain socket.</summary>
public sealed class TestPeer : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private readonly MemoryStream _pending = new();

    private TestPeer(Socket socket) => _socket = socket;

    public Socket Socket => _socket;

    /// <param name="from">The local address to connect from (any of 127.0.0.0/8 works on loopback); null: the kernel's choice.</param>
    public static async Task<TestPeer> ConnectAsync(int port, IPAddress? from = null)
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
        return new TestPeer(socket);
    }

    public Task SendAsync(string text) => SendAsync(Encoding.UTF8.GetBytes(text));

    public async Task SendAsync(byte[] bytes) => await _socket.SendAsync(bytes, SocketFlags.None);

    public Task SendFrameAsync(Frame frame) => SendAsync(JsonLinesCodec.Encode(frame));

    public Task SendHeartbeatAsync(long? seq = null) => SendFrameAsync(new Frame(FrameType.Heartbeat, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), null, seq));

    /// <summary>The next frame from the server, or null when the server closed the connection first.</summary>
    public async Task<Frame?> ReceiveFrameAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(5));
        while (true)
        {
            var bytes = _pending.ToArray();
            var newline = Array.IndexOf(bytes, (byte)'\n');
            if (newline >= 0)
            {
                _pending.SetLength(0);
                _pending.Write(bytes, newline + 1, bytes.Length - newline - 1);
                var decoded = JsonLinesCodec.Decode(bytes.AsSpan(0, newline));
                return decoded.Frame ?? throw new InvalidDataException($"server sent an invalid frame: {decoded.Error}");
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
