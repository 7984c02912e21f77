using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Microsoft.Extensions.Logging;
using Supervisor.Client;
using Supervisor.Configuration;
using Supervisor.Monitoring;
using Supervisor.Tests.Support;

namespace Supervisor.Tests.Client;

internal static class ClientTestSupport
{
    /// <summary>A loopback port that was free a moment ago (bind 0, read it back, let go), for a server that must come back on the same port.</summary>
    public static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>The shipped client defaults, aimed at a loopback port, with test-sized heartbeat and backoff.</summary>
    public static ClientSettings Fast(int port, TimeSpan? interval = null, TimeSpan? timeout = null,
        TimeSpan? minBackoff = null, TimeSpan? maxBackoff = null, TimeSpan? resetAfter = null) =>
        ClientSettings.Defaults with
        {
            Endpoint = new HostPort("127.0.0.1", port),
            HeartbeatInterval = interval ?? TimeSpan.FromMilliseconds(100),
            HeartbeatTimeout = timeout ?? TimeSpan.FromMilliseconds(500),
            ConnectTimeout = TimeSpan.FromSeconds(1),
            Reconnect = new BackoffSettings(minBackoff ?? TimeSpan.FromMilliseconds(100), maxBackoff ?? TimeSpan.FromSeconds(1), 2.0,
                resetAfter ?? TimeSpan.FromMilliseconds(300)),
        };

    public static ClientServices Services(LogCapture logs, SupervisorMetrics metrics, IActorRef? registry = null) =>
        new(registry ?? ActorRefs.Nobody, metrics, logs.CreateLogger("Supervisor.Client.HeartbeatClient"));

    /// <summary>Polls until the condition holds; fails with <paramref name="what"/> after the timeout.</summary>
    public static async Task<TimeSpan> WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, int pollMs = 20)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout) throw new TimeoutException($"{what} did not happen within {timeout.TotalSeconds:F1} s");
            await Task.Delay(pollMs);
        }
        return clock.Elapsed;
    }
}

/// <summary>
/// A TCP proxy in front of a server, one socket pair per accepted connection. A pair can be silenced:
/// it keeps reading both sides (so closes are still noticed and passed on) but forwards nothing, which
/// makes the server look silent to the client and the client silent to the server.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Pair> _pairs = [];
    private readonly Task _acceptLoop;

    public TcpProxy(int targetPort)
    {
        _target = new IPEndPoint(IPAddress.Loopback, targetPort);
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(64);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public int Port { get; }

    /// <summary>Silences the pair whose client side connected from <paramref name="clientPort"/>; false if there is none.</summary>
    public bool Silence(int clientPort)
    {
        lock (_pairs)
        {
            var pair = _pairs.FirstOrDefault(p => p.ClientPort == clientPort && !p.Closed);
            if (pair is null) return false;
            pair.Silent = true;
            return true;
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            client.NoDelay = true;
            try
            {
                await server.ConnectAsync(_target, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                client.Dispose();
                server.Dispose();
                continue;
            }
            var pair = new Pair(client, server);
            lock (_pairs) _pairs.Add(pair);
            _ = Task.Run(() => PumpAsync(pair, client, server));
            _ = Task.Run(() => PumpAsync(pair, server, client));
        }
    }

    private async Task PumpAsync(Pair pair, Socket from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (read == 0) break;
                if (!pair.Silent) await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Either side went away, or the proxy is stopping.
        }
        pair.Close();
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        await _acceptLoop;
        lock (_pairs)
            foreach (var pair in _pairs) pair.Close();
        _stop.Dispose();
    }

    private sealed class Pair(Socket client, Socket server)
    {
        private int _closed;

        public int ClientPort { get; } = ((IPEndPoint)client.RemoteEndPoint!).Port;
        public volatile bool Silent;
        public bool Closed => Volatile.Read(ref _closed) == 1;

        public void Close()
        {
            if (Interlocked.Exchange(ref _closed, 1) == 1) return;
            client.Dispose();
            server.Dispose();
        }
    }
}
