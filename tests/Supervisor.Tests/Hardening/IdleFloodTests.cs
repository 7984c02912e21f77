using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Supervisor.Tests.Processes;
using Xunit.Abstractions;

namespace Supervisor.Tests.Hardening;

/// <summary>
/// A connect-and-idle flood against the real service as its own process: 100 source addresses
/// (127.0.0.1–127.0.0.100) × 100 sockets that never send a byte, while legitimate clients keep working.
/// The service's sockets live in its process, the peers' in this one (10,000 of each would not fit in one
/// process's fd limit of 20,000).
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class IdleFloodTests(ITestOutputHelper output)
{
    private const int Addresses = 100;
    private const int SocketsPerAddress = 100;

    // 100 addresses each connecting every 150 ms: about 650 connects a second, which the service (on 2 shared
    // cores) accepts as they come. Faster, they wait in the kernel's accept queue, where no server can close
    // them, and the time measured from the connect would be the queue's, not the deadline's. Still, 650 a
    // second for 1.5 s is more than max-connections holds, so the eviction of idle connections is exercised.
    private static readonly TimeSpan ConnectPause = TimeSpan.FromMilliseconds(150);

    // heartbeat 1 s / 3 s: first-frame-timeout = auto is 1 s + min(1 s, 2 s) / 2 = 1.5 s. max-connections
    // 1,000 makes the flood fill the listener, so newcomers get in by evicting idle connections.
    private static readonly TimeSpan FirstFrameDeadline = TimeSpan.FromSeconds(1.5);
    private const string Hocon = "supervisor.heartbeat { interval = 1s, timeout = 3s }\nsupervisor.tcp.max-connections = 1000";

    [Fact]
    public async Task Ten_thousand_idle_sockets_from_100_addresses_must_each_close_within_the_first_frame_deadline_and_no_heartbeating_client_be_refused()
    {
        // Two log lines per connection would make the console the bottleneck of 10,000 connects: the
        // connections log at Warning here (the child process takes the variable from this one's environment).
        const string connectionLogLevel = "Logging__LogLevel__Supervisor.Connections.ConnectionActor";
        Environment.SetEnvironmentVariable(connectionLogLevel, "Warning");
        ServiceProcess service;
        try { service = ServiceProcess.Start(ServiceProcess.Config(Hocon)); }
        finally { Environment.SetEnvironmentVariable(connectionLogLevel, null); }
        using var _ = service;
        var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(30));
        var server = new IPEndPoint(IPAddress.Loopback, port);

        using var steady = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await steady.ConnectAsync(server);
        using var stop = new CancellationTokenSource();
        var steadyRun = Task.Run(() => HeartbeatSteadily(steady, stop.Token));
        var reconnecting = Task.Run(() => ReconnectRepeatedly(server, stop.Token));

        var clock = Stopwatch.StartNew();
        var flood = await Task.WhenAll(Enumerable.Range(1, Addresses).Select(a => FloodFrom(IPAddress.Parse($"127.0.0.{a}"), server)));
        var idlers = flood.SelectMany(x => x).ToArray();
        var floodSeconds = clock.Elapsed.TotalSeconds;
        await Task.WhenAll(idlers.Select(i => i.Closed));
        stop.Cancel();
        var (steadyAnswers, steadyFailure) = await steadyRun;
        var (cycles, refusals) = await reconnecting;

        var closes = idlers.Select(i => i.Closed.Result).ToArray();
        var after = closes.Select(c => c.After.TotalMilliseconds).Order().ToArray();
        double P(double p) => after[Math.Min(after.Length - 1, (int)Math.Ceiling(p * after.Length) - 1)];
        var evicted = closes.Count(c => c.Notice.Contains("evicted", StringComparison.Ordinal));
        output.WriteLine($"{idlers.Length} idle sockets connected in {floodSeconds:F1} s; closed after connecting: p50 {P(0.5):F0} ms, "
            + $"p99 {P(0.99):F0} ms, max {after[^1]:F0} ms; {evicted} evicted to make room, {closes.Length - evicted} at the deadline");
        output.WriteLine($"heartbeating client: {steadyAnswers} heartbeats answered; reconnecting client: {cycles} connect/heartbeat/close cycles, {refusals.Count} refused");

        Assert.Equal(Addresses * SocketsPerAddress, idlers.Length);
        Assert.All(closes, c => Assert.StartsWith("first-frame-timeout: ", c.Notice));
        // Measured from this side of the connect, so the server's accept lag under the flood is included.
        Assert.True(after[^1] <= (FirstFrameDeadline + TimeSpan.FromSeconds(1)).TotalMilliseconds,
            $"an idle socket was closed {after[^1]:F0} ms after connecting (deadline {FirstFrameDeadline.TotalMilliseconds} ms)");
        Assert.Null(steadyFailure);
        Assert.True(cycles > 10, $"only {cycles} reconnect cycles ran");
        Assert.Empty(refusals);
    }

    private sealed record Idler(Task<IdleClose> Closed);

    private sealed record IdleClose(TimeSpan After, string Notice);

    /// <summary>Opens <see cref="SocketsPerAddress"/> sockets from <paramref name="address"/>, one after another, none of which ever sends.</summary>
    private static async Task<Idler[]> FloodFrom(IPAddress address, IPEndPoint server)
    {
        var idlers = new Idler[SocketsPerAddress];
        for (var i = 0; i < idlers.Length; i++)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(address, 0));
            await socket.ConnectAsync(server);
            idlers[i] = new Idler(WaitForClose(socket, Stopwatch.GetTimestamp()));
            await Task.Delay(ConnectPause);
        }
        return idlers;
    }

    /// <summary>Reads until the server closes; the time from the connect to the close, and the notice received.</summary>
    private static async Task<IdleClose> WaitForClose(Socket socket, long connectedAt)
    {
        using var _ = socket;
        var received = new StringBuilder();
        var buffer = new byte[512];
        using var give = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, give.Token);
                if (n == 0) break;
                received.Append(Encoding.UTF8.GetString(buffer, 0, n));
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            received.Append($" [{e.GetType().Name}]");
        }
        var after = Stopwatch.GetElapsedTime(connectedAt);
        var text = received.ToString();
        var notice = text.Contains("\"data\":\"", StringComparison.Ordinal)
            ? text[(text.IndexOf("\"data\":\"", StringComparison.Ordinal) + 8)..].Split('"')[0]
            : text;
        return new IdleClose(after, notice);
    }

    /// <summary>A client that heartbeats every 200 ms on one connection throughout; the first failure, if any.</summary>
    private static async Task<(int Answered, string? Failure)> HeartbeatSteadily(Socket socket, CancellationToken stop)
    {
        var answered = 0;
        long seq = 0;
        var buffer = new byte[512];
        while (!stop.IsCancellationRequested)
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes($"{{\"type\":0,\"timestamp\":1,\"seq\":{++seq}}}\n"), SocketFlags.None);
            var reply = await ReceiveLine(socket, buffer, TimeSpan.FromSeconds(5));
            if (reply is null || !reply.Contains("\"type\":1", StringComparison.Ordinal)) return (answered, reply ?? "no answer within 5 s");
            answered++;
            try { await Task.Delay(200, stop); } catch (OperationCanceledException) { }
        }
        return (answered, null);
    }

    /// <summary>
    /// A client that connects, heartbeats at once (a legitimate client speaks first), waits for the answer
    /// and closes, again and again; every answer other than the heartbeat response is a refusal.
    /// </summary>
    private static async Task<(int Cycles, List<string> Refusals)> ReconnectRepeatedly(IPEndPoint server, CancellationToken stop)
    {
        var cycles = 0;
        var refusals = new List<string>();
        var buffer = new byte[512];
        while (!stop.IsCancellationRequested)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(server);
            await socket.SendAsync("{\"type\":0,\"timestamp\":1,\"seq\":1}\n"u8.ToArray(), SocketFlags.None);
            var reply = await ReceiveLine(socket, buffer, TimeSpan.FromSeconds(5));
            if (reply is null || !reply.Contains("\"type\":1", StringComparison.Ordinal)) refusals.Add(reply ?? "no answer within 5 s");
            cycles++;
            try { await Task.Delay(50, stop); } catch (OperationCanceledException) { }
        }
        return (cycles, refusals);
    }

    private static async Task<string?> ReceiveLine(Socket socket, byte[] buffer, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var line = new StringBuilder();
        try
        {
            while (!line.ToString().Contains('\n'))
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (n == 0) return line.Length == 0 ? null : line.ToString();
                line.Append(Encoding.UTF8.GetString(buffer, 0, n));
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return line.Length == 0 ? null : line.ToString();
        }
        return line.ToString();
    }
}
