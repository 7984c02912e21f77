using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Supervisor.Tests.Hardening.Fuzz;

/// <summary>What a fuzz peer saw: every frame the server sent (raw, one per line or message) and how its input ended.</summary>
internal sealed record PeerRun(string Remote, IReadOnlyList<byte[]> Received, string Ending, bool ServerCloseFrame);

/// <summary>
/// A hostile peer on a byte stream (plain TCP, or TLS when a certificate to pin is given): sends a script's bytes
/// in its write boundaries while reading everything the server sends, then ends as the script says.
/// </summary>
internal sealed class StreamFuzzPeer : IDisposable
{
    private readonly Socket _socket;
    private readonly Stream _stream;

    private StreamFuzzPeer(Socket socket, Stream stream)
    {
        _socket = socket;
        _stream = stream;
        Remote = socket.LocalEndPoint!.ToString()!;
    }

    /// <summary>The peer's address as the server logs it.</summary>
    public string Remote { get; }

    public static async Task<StreamFuzzPeer> ConnectAsync(int port, X509Certificate2? pinned)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
            Stream stream = new NetworkStream(socket, ownsSocket: false);
            if (pinned is not null)
            {
                var tls = new SslStream(stream, leaveInnerStreamOpen: false,
                    (_, presented, _, _) => presented is not null && presented.GetCertHashString() == pinned.GetCertHashString());
                try
                {
                    await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" }, timeout.Token);
                }
                catch (Exception e)
                {
                    // The address lets the test find what the server logged about this connection.
                    throw new PeerFailedException(socket.LocalEndPoint!.ToString()!, "TLS handshake", e);
                }
                stream = tls;
            }
            return new StreamFuzzPeer(socket, stream);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <param name="answersBeforeReset">For <see cref="Ending.Reset"/>: the frames to wait for before the RST.</param>
    public async Task<PeerRun> RunAsync(StreamScript script, int answersBeforeReset, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        var received = new List<byte[]>();
        var reading = ReadLinesAsync(received, deadline.Token);
        var offset = 0;
        foreach (var cut in script.WriteCuts.Append(script.Bytes.Length))
        {
            if (cut <= offset) continue;
            // The server may close mid-script (a refusal) and reset what is still coming: that is its right.
            if (!await TryWriteAsync(script.Bytes.AsMemory(offset, cut - offset), deadline.Token)) break;
            offset = cut;
        }
        switch (script.Ending)
        {
            case Ending.Finish:
                try
                {
                    if (_stream is SslStream tls) await tls.ShutdownAsync();
                }
                catch (Exception)
                {
                    // Our own close_notify: the server may have closed first (its close_notify already read, so
                    // OpenSSL refuses with SSL_ERROR_ZERO_RETURN, or a record half read). That is this peer's
                    // end of the TLS session, not the server's behaviour, which the answers and the log show.
                }
                try { _socket.Shutdown(SocketShutdown.Send); }
                catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
                break;
            case Ending.Reset:
                while (Volatile.Read(ref _lines) < answersBeforeReset && !reading.IsCompleted && !deadline.IsCancellationRequested)
                    await Task.Delay(5);
                _socket.LingerState = new LingerOption(true, 0);
                _socket.Close();
                try { await reading; } catch { }
                return new PeerRun(Remote, Snapshot(received), "reset by the peer", false);
        }
        var ending = await reading;
        return new PeerRun(Remote, Snapshot(received), ending, false);
    }

    private async Task<bool> TryWriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancel)
    {
        try
        {
            await _stream.WriteAsync(bytes, cancel);
            await _stream.FlushAsync(cancel);
            return true;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            return false;
        }
    }

    private int _lines;

    private static IReadOnlyList<byte[]> Snapshot(List<byte[]> received)
    {
        lock (received) return received.ToArray();
    }

    /// <summary>Reads until the server's FIN (or RST, or the deadline); each complete line is one frame.</summary>
    private async Task<string> ReadLinesAsync(List<byte[]> received, CancellationToken cancel)
    {
        var buffer = new byte[16 * 1024];
        var pending = new List<byte>();
        try
        {
            while (true)
            {
                var read = await _stream.ReadAsync(buffer, cancel);
                if (read == 0) return pending.Count == 0 ? "closed by the server" : $"closed by the server after {pending.Count} bytes of an unfinished line";
                for (var i = 0; i < read; i++)
                {
                    if (buffer[i] != (byte)'\n') { pending.Add(buffer[i]); continue; }
                    lock (received) received.Add(pending.ToArray());
                    Interlocked.Increment(ref _lines);
                    pending.Clear();
                }
            }
        }
        catch (OperationCanceledException)
        {
            return "still open at the deadline";
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or AuthenticationException)
        {
            return e.GetBaseException() is SocketException { SocketErrorCode: SocketError.ConnectionReset } ? "reset by the server" : $"read failed: {e.GetBaseException().Message}";
        }
    }

    public void Dispose()
    {
        _stream.Dispose();
        _socket.Dispose();
    }
}

/// <summary>
/// A fuzz peer failed in a way its script does not allow for (its TLS handshake, or its own end of the run);
/// <see cref="Remote"/> is the peer's address as the server logs it, so the test can show what the server
/// logged about that connection.
/// </summary>
internal sealed class PeerFailedException(string remote, string stage, Exception inner)
    : IOException($"{stage} from {remote} failed: {inner}", inner)
{
    public string Remote { get; } = remote;
}

/// <summary>
/// A hostile WebSocket peer: a real <see cref="ClientWebSocket"/> over a socket this class opens itself, so its
/// address (as the server logs it) is known and it can end with an RST. Sends each script message in its
/// fragments, as text, whatever its bytes.
/// </summary>
internal sealed class WsFuzzPeer : IDisposable
{
    private readonly ClientWebSocket _ws;
    private readonly Socket _socket;
    private readonly HttpMessageInvoker _invoker;

    private WsFuzzPeer(ClientWebSocket ws, Socket socket, HttpMessageInvoker invoker)
    {
        _ws = ws;
        _socket = socket;
        _invoker = invoker;
        Remote = socket.LocalEndPoint!.ToString()!;
    }

    public string Remote { get; }

    public static async Task<WsFuzzPeer> ConnectAsync(int port)
    {
        Socket? opened = null;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancel) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancel);
                opened = socket;
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        var invoker = new HttpMessageInvoker(handler);
        var ws = new ClientWebSocket();
        ws.Options.KeepAliveInterval = TimeSpan.Zero;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/ws"), invoker, timeout.Token);
            return new WsFuzzPeer(ws, opened!, invoker);
        }
        catch
        {
            ws.Dispose();
            invoker.Dispose();
            throw;
        }
    }

    public async Task<PeerRun> RunAsync(WsScript script, int answersBeforeReset, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        var received = new List<byte[]>();
        var closeFrame = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var reading = ReadMessagesAsync(received, closeFrame, deadline.Token);
        var sending = true;
        foreach (var message in script.Messages)
        {
            for (var i = 0; i < message.Fragments.Count && sending; i++)
            {
                var last = i == message.Fragments.Count - 1;
                try
                {
                    await _ws.SendAsync(message.Fragments[i], WebSocketMessageType.Text, endOfMessage: last && message.Finished, deadline.Token);
                }
                catch (Exception e) when (e is WebSocketException or IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
                {
                    sending = false;
                }
            }
            if (!sending) break;
        }
        switch (script.Ending)
        {
            case Ending.Finish when sending:
                try { await _ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "done", deadline.Token); }
                catch (Exception e) when (e is WebSocketException or IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException) { }
                break;
            case Ending.Reset:
                while (Volatile.Read(ref _messages) < answersBeforeReset && !reading.IsCompleted && !deadline.IsCancellationRequested)
                    await Task.Delay(5);
                _socket.LingerState = new LingerOption(true, 0);
                _socket.Close();
                try { await reading; } catch { }
                return new PeerRun(Remote, Snapshot(received), "reset by the peer", false);
        }
        var ending = await reading;
        return new PeerRun(Remote, Snapshot(received), ending, closeFrame.Task.IsCompletedSuccessfully && closeFrame.Task.Result);
    }

    private int _messages;

    private static IReadOnlyList<byte[]> Snapshot(List<byte[]> received)
    {
        lock (received) return received.ToArray();
    }

    private async Task<string> ReadMessagesAsync(List<byte[]> received, TaskCompletionSource<bool> closeFrame, CancellationToken cancel)
    {
        var buffer = new byte[64 * 1024];
        var message = new List<byte>();
        try
        {
            while (true)
            {
                var result = await _ws.ReceiveAsync(buffer, cancel);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    closeFrame.TrySetResult(true);
                    if (_ws.State == WebSocketState.CloseReceived)
                    {
                        try { await _ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", cancel); }
                        catch (Exception e) when (e is WebSocketException or IOException or ObjectDisposedException) { }
                    }
                    return $"close frame {(int?)_ws.CloseStatus} {_ws.CloseStatusDescription}";
                }
                message.AddRange(buffer.AsSpan(0, result.Count).ToArray());
                if (!result.EndOfMessage) continue;
                lock (received) received.Add(message.ToArray());
                Interlocked.Increment(ref _messages);
                message.Clear();
            }
        }
        catch (OperationCanceledException)
        {
            return "still open at the deadline";
        }
        catch (Exception e) when (e is WebSocketException or IOException or ObjectDisposedException)
        {
            closeFrame.TrySetResult(false);
            return $"ended without a close frame: {e.GetBaseException().Message}";
        }
    }

    public void Dispose()
    {
        _ws.Dispose();
        _invoker.Dispose();
        _socket.Dispose();
    }
}
