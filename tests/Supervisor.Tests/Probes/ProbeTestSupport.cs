using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using Akka.Actor;
using Supervisor.Tests.Processes;
using Xunit.Abstractions;

namespace Supervisor.Tests.Probes;

/// <summary>
/// A real <c>redis-server</c> on a loopback port, started by the test (installed by scripts/setup.sh, never
/// assumed running): no persistence, killed with SIGKILL on <see cref="Kill"/> and on dispose.
/// </summary>
public sealed class RedisServer : IDisposable
{
    private readonly ITestOutputHelper? _output;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"supervisor-redis-{Guid.NewGuid():N}");
    private ChildProcess? _process;

    private RedisServer(int port, ITestOutputHelper? output)
    {
        Port = port;
        _output = output;
        Directory.CreateDirectory(_directory);
    }

    public int Port { get; }

    public static string? Executable { get; } = Tools.Find("redis-server");

    /// <summary>Why a Redis server cannot be started here, or null.</summary>
    public static string? Unavailable() => Executable is null ? "redis-server is not installed (scripts/setup.sh installs it)" : null;

    public static async Task<RedisServer> StartAsync(int port, ITestOutputHelper? output)
    {
        var server = new RedisServer(port, output);
        try
        {
            await server.StartAsync();
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>Starts the server (again, on the same port) and waits until it answers PING.</summary>
    public async Task StartAsync()
    {
        _process = new ChildProcess("redis-server", Executable!,
            ["--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _directory],
            workingDirectory: _directory, output: _output);
        var clock = Stopwatch.StartNew();
        while (!await PingsAsync())
        {
            if (_process.HasExited || clock.Elapsed > TimeSpan.FromSeconds(10))
                throw _process.Failure("redis-server did not answer PING within 10 s");
            await Task.Delay(20);
        }
    }

    /// <summary>SIGKILL: the server vanishes without a goodbye, as a crashed dependency does.</summary>
    public async Task KillAsync()
    {
        var process = _process ?? throw new InvalidOperationException("not running");
        process.Signal(ChildProcess.SigKill);
        if (await process.WaitForExitAsync(TimeSpan.FromSeconds(5)) is null)
            throw process.Failure("redis-server did not die on SIGKILL");
        process.Dispose();
        _process = null;
    }

    private async Task<bool> PingsAsync()
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, Port), cts.Token);
            await socket.SendAsync("PING\r\n"u8.ToArray(), SocketFlags.None, cts.Token);
            var buffer = new byte[64];
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        _process?.Dispose();
        _process = null;
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory.
        }
    }
}

/// <summary>Records events of one type from an actor system's EventStream, with the moment each arrived.</summary>
public sealed class EventRecorder<T> : IDisposable where T : class
{
    private readonly Channel<(long At, T Event)> _events = Channel.CreateUnbounded<(long, T)>();
    private readonly ActorSystem _system;
    private readonly IActorRef _recorder;

    public EventRecorder(ActorSystem system)
    {
        _system = system;
        var writer = _events.Writer;
        _recorder = system.ActorOf(Props.Create(() => new Recorder(writer)));
        system.EventStream.Subscribe(_recorder, typeof(T));
    }

    private readonly List<(long At, T Event)> _unclaimed = [];

    /// <summary>The earliest recorded event not yet returned that matches, and when it arrived; others stay for later calls.</summary>
    public async Task<(long At, T Event)> NextAsync(Func<T, bool> match, TimeSpan timeout, string what)
    {
        var index = _unclaimed.FindIndex(e => match(e.Event));
        if (index >= 0)
        {
            var found = _unclaimed[index];
            _unclaimed.RemoveAt(index);
            return found;
        }
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var next = await _events.Reader.ReadAsync(cts.Token);
                if (match(next.Event)) return next;
                _unclaimed.Add(next);
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{what} did not happen within {timeout.TotalSeconds:F1} s; unclaimed: {string.Join("; ", _unclaimed.Select(e => e.Event))}");
        }
    }

    public void Dispose()
    {
        _system.EventStream.Unsubscribe(_recorder);
        _system.Stop(_recorder);
    }

    private sealed class Recorder : ReceiveActor
    {
        public Recorder(ChannelWriter<(long, T)> writer) => Receive<T>(e => writer.TryWrite((Stopwatch.GetTimestamp(), e)));
    }
}

/// <summary>A minimal HTTP server on loopback answering every request with the current status code.</summary>
public sealed class TinyHttpServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public TinyHttpServer()
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _loop = Task.Run(LoopAsync);
    }

    public int Port { get; }
    public volatile int Status = 200;

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                using var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                var stream = client.GetStream();
                var buffer = new byte[4096];
                var request = new StringBuilder();
                while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
                {
                    var read = await stream.ReadAsync(buffer, _stop.Token);
                    if (read == 0) break;
                    request.Append(Encoding.ASCII.GetString(buffer, 0, read));
                }
                var status = Status;
                var reason = status == 200 ? "OK" : "Service Unavailable";
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
            {
                // One request failed, or the server is stopping.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _loop;
        _stop.Dispose();
    }
}
