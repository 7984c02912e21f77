using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Supervisor.Messages.Wire;

namespace Supervisor.Tests.WebSockets;

/// <summary>A real WebSocket peer of the service (<see cref="ClientWebSocket"/>), one JSON frame per text message.</summary>
public sealed class WsPeer : IDisposable
{
    private readonly byte[] _buffer = new byte[256 * 1024];

    private WsPeer(ClientWebSocket ws) => Socket = ws;

    public ClientWebSocket Socket { get; }

    public static async Task<WsPeer> ConnectAsync(int port, string path = "/ws", string? origin = null)
    {
        var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        // The client's own keep-alive would answer nothing here; the server's pings are answered by the runtime.
        ws.Options.KeepAliveInterval = TimeSpan.Zero;
        if (origin is not null) ws.Options.SetRequestHeader("Origin", origin);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{port}{path}"), timeout.Token);
        }
        catch
        {
            ws.Dispose();
            throw;
        }
        return new WsPeer(ws);
    }

    /// <summary>The HTTP status the server answered a handshake with, when it refused it.</summary>
    public static async Task<HttpStatusCode> RefusedStatusAsync(int port, string path = "/ws", string? origin = null)
    {
        using var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        if (origin is not null) ws.Options.SetRequestHeader("Origin", origin);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(new Uri($"ws://127.0.0.1:{port}{path}"), timeout.Token));
        return ws.HttpStatusCode;
    }

    public Task SendTextAsync(string text) =>
        Socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);

    public Task SendFrameAsync(Frame frame) => SendTextAsync(JsonLinesCodec.EncodeToString(frame).TrimEnd('\n'));

    /// <summary>The next text message, or null once the server's close frame arrived (and was answered).</summary>
    public async Task<string?> ReceiveTextAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(5));
        var length = 0;
        while (true)
        {
            var result = await Socket.ReceiveAsync(_buffer.AsMemory(length), cts.Token);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                // Complete the close handshake, as a well-behaved client does.
                if (Socket.State == WebSocketState.CloseReceived)
                    await Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", cts.Token);
                return null;
            }
            length += result.Count;
            if (result.EndOfMessage) return Encoding.UTF8.GetString(_buffer, 0, length);
        }
    }

    public async Task<Frame?> ReceiveFrameAsync(TimeSpan? timeout = null)
    {
        var text = await ReceiveTextAsync(timeout);
        if (text is null) return null;
        var decoded = JsonLinesCodec.Decode(Encoding.UTF8.GetBytes(text));
        return decoded.Frame ?? throw new InvalidDataException($"server sent an invalid frame: {decoded.Error}: {text}");
    }

    /// <summary>Reads until the server's close frame; the frames before it.</summary>
    public async Task<IReadOnlyList<Frame>> ReceiveUntilClosedAsync(TimeSpan? timeout = null)
    {
        var frames = new List<Frame>();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(5));
        while (await ReceiveFrameAsync(deadline - DateTime.UtcNow) is { } frame)
            frames.Add(frame);
        return frames;
    }

    public void Dispose() => Socket.Dispose();
}

/// <summary>
/// A WebSocket peer on a raw socket: it completes the handshake and then never reads what the server
/// sends, so it answers no ping (a frozen client, or one behind a dead path).
/// </summary>
public sealed class SilentWsPeer : IDisposable
{
    private SilentWsPeer(Socket socket) => Socket = socket;

    public Socket Socket { get; }

    public static async Task<SilentWsPeer> HandshakeAsync(int port, string path = "/ws")
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
            var request = $"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
            await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None);
            var response = new StringBuilder();
            var one = new byte[1];
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            // Byte by byte, so nothing after the handshake is consumed.
            while (!response.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
            {
                if (await socket.ReceiveAsync(one, SocketFlags.None, timeout.Token) == 0)
                    throw new InvalidDataException($"server closed during the handshake: {response}");
                response.Append((char)one[0]);
            }
            if (!response.ToString().StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
                throw new InvalidDataException($"handshake refused: {response}");
            return new SilentWsPeer(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads and discards what the server sends (its pings among it; none is answered) until the server
    /// closes the connection. The bytes read, or null when it was still open at the timeout.
    /// </summary>
    public async Task<int?> DiscardUntilClosedAsync(TimeSpan timeout)
    {
        var buffer = new byte[4096];
        var total = 0;
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var read = await Socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (read == 0) return total;
                total += read;
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return total;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Sends one text message as a client must, masked (with a zero key, which leaves the bytes as they are).</summary>
    public async Task SendMaskedTextAsync(string text, CancellationToken cancel)
    {
        var payload = Encoding.UTF8.GetBytes(text);
        var header = new List<byte> { 0x81 };
        if (payload.Length < 126) header.Add((byte)(0x80 | payload.Length));
        else if (payload.Length <= ushort.MaxValue) header.AddRange([0x80 | 126, (byte)(payload.Length >> 8), (byte)payload.Length]);
        else throw new ArgumentException("message too long for this test peer", nameof(text));
        header.AddRange([0, 0, 0, 0]);
        await Socket.SendAsync(header.Concat(payload).ToArray(), SocketFlags.None, cancel);
    }

    /// <summary>
    /// Reads what the server sends, answering nothing (no pong, no close), until the server closes the TCP
    /// connection or <paramref name="timeout"/> passes: every WebSocket frame, parsed, with when it arrived.
    /// </summary>
    public async Task<(IReadOnlyList<ServerWsFrame> Frames, bool Closed)> ReadFramesUntilClosedAsync(TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var frames = new List<ServerWsFrame>();
        var pending = new List<byte>();
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(timeout);
        var closed = false;
        try
        {
            while (true)
            {
                var read = await Socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (read == 0) { closed = true; break; }
                pending.AddRange(buffer.AsSpan(0, read).ToArray());
                while (ServerWsFrame.TryParse(pending, clock.Elapsed, out var frame, out var used))
                {
                    frames.Add(frame);
                    pending.RemoveRange(0, used);
                }
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            closed = true;
        }
        catch (OperationCanceledException)
        {
        }
        return (frames, closed);
    }

    public void Dispose() => Socket.Dispose();
}

/// <summary>One frame a server sent (unmasked, RFC 6455 §5.2), as a raw peer parses it.</summary>
public sealed record ServerWsFrame(int Opcode, byte[] Payload, TimeSpan ArrivedAfter)
{
    public const int Text = 1, Close = 8, Ping = 9;

    public string PayloadText => Encoding.UTF8.GetString(Payload);

    /// <summary>A close frame's status code; null for another frame or an empty close.</summary>
    public int? CloseStatus => Opcode == Close && Payload.Length >= 2 ? Payload[0] << 8 | Payload[1] : null;

    /// <summary>A close frame's reason text.</summary>
    public string CloseText => Opcode == Close && Payload.Length > 2 ? Encoding.UTF8.GetString(Payload, 2, Payload.Length - 2) : "";

    public static bool TryParse(List<byte> bytes, TimeSpan arrivedAfter, out ServerWsFrame frame, out int used)
    {
        frame = null!;
        used = 0;
        if (bytes.Count < 2) return false;
        var opcode = bytes[0] & 0x0F;
        long length = bytes[1] & 0x7F;
        var header = 2;
        if (length == 126)
        {
            if (bytes.Count < 4) return false;
            length = bytes[2] << 8 | bytes[3];
            header = 4;
        }
        else if (length == 127)
        {
            if (bytes.Count < 10) return false;
            length = 0;
            for (var i = 2; i < 10; i++) length = length << 8 | bytes[i];
            header = 10;
        }
        if (bytes.Count < header + length) return false;
        frame = new ServerWsFrame(opcode, bytes.GetRange(header, (int)length).ToArray(), arrivedAfter);
        used = header + (int)length;
        return true;
    }
}
