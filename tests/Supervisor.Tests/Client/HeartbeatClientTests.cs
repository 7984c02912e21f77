using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Akka.Actor;
using Akka.TestKit;
using Microsoft.Extensions.Logging;
using Supervisor.Client;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Tests.Support;
using Xunit.Abstractions;
using static Supervisor.Messages.Protocol.ClientProtocol;
using static Supervisor.Tests.Client.ClientTestSupport;

namespace Supervisor.Tests.Client;

/// <summary>The heartbeat client (issue 5) over real loopback sockets: against our service, and against a peer written here.</summary>
public sealed class HeartbeatClientTests : Akka.TestKit.Xunit2.TestKit
{
    private readonly ITestOutputHelper _output;

    public HeartbeatClientTests(ITestOutputHelper output) : base(output: output) => _output = output;

    private readonly LogCapture _logs = new();
    private readonly SupervisorMetrics _metrics = new();

    protected override void AfterAll()
    {
        _metrics.Dispose();
        base.AfterAll();
    }

    /// <param name="service">The service whose registry lists the client: the client then runs in the service's actor system,
    /// where its lifecycle events are published (as a service's own clients do).</param>
    private (IActorRef Client, TestProbe Events) Start(string name, ClientSettings settings, TestService? service = null)
    {
        var events = CreateTestProbe();
        var registry = service?.Registry;
        var client = (service?.System ?? Sys).ActorOf(HeartbeatClient.Props(name, settings, Services(_logs, _metrics, registry), [events.Ref]), name);
        return (client, events);
    }

    private static T Next<T>(TestProbe events, TimeSpan within, Func<T, bool>? match = null) where T : class =>
        (T)events.FishForMessage(m => m is T t && (match?.Invoke(t) ?? true), within);

    [Fact]
    public async Task Client_must_measure_the_round_trip_against_our_server_and_show_in_the_registry_as_tcp_out()
    {
        await using var service = await TestService.StartAsync();
        var (client, events) = Start("rtt", Fast(service.Port), service);

        var connected = Next<Connected>(events, TimeSpan.FromSeconds(5));
        Assert.Equal($"127.0.0.1:{service.Port}", connected.Remote);
        var sent = Next<HeartbeatSent>(events, TimeSpan.FromSeconds(2));
        Assert.Equal(1, sent.Seq);
        var answered = Next<HeartbeatAnswered>(events, TimeSpan.FromSeconds(2));
        Assert.Equal(1, answered.Seq);
        Assert.NotNull(answered.RttMs);
        Assert.InRange(answered.RttMs!.Value, 0.001, 500);
        var rtts = new List<double> { answered.RttMs.Value };
        for (var i = 0; i < 5; i++)
            rtts.Add(Next<HeartbeatAnswered>(events, TimeSpan.FromSeconds(2)).RttMs!.Value);
        _output.WriteLine($"RTT against our server over loopback: {string.Join(", ", rtts.Select(r => $"{r:F2}"))} ms");

        var status = await client.Ask<ClientStatus>(GetStatus.Instance, TimeSpan.FromSeconds(3));
        Assert.Equal(ClientState.Active, status.State);
        Assert.NotNull(status.RttMs);

        // The registry holds both ends: the server's connection (tcp) and the client's (tcp-out).
        var connections = (await WaitForConnectionsAsync(service, c => c.Any(s => s.Protocol == HeartbeatClient.Protocol && s.RttMs is not null))).Items;
        var outbound = Assert.Single(connections, c => c.Protocol == HeartbeatClient.Protocol);
        Assert.Equal("rtt", outbound.Listener);
        Assert.Equal(ConnectionState.Active, outbound.State);
        Assert.Contains(connections, c => c.Protocol == "tcp" && c.Remote == connected.Local);

        // Stopping the client closes its connection and takes it out of the registry.
        await client.GracefulStop(TimeSpan.FromSeconds(3));
        await WaitForConnectionsAsync(service, c => c.All(s => s.Protocol != HeartbeatClient.Protocol));
    }

    [Fact]
    public async Task Client_must_announce_its_interval_and_log_the_one_the_server_clamped_it_to()
    {
        // heartbeat.announce-interval is on by default: the server bounds intervals to [2 s, 60 s], the client says 1 s.
        await using var service = await TestService.StartAsync("supervisor.heartbeat.negotiation { min-interval = 2s, max-interval = 60s }");
        var (client, events) = Start("announcing", Fast(service.Port, interval: TimeSpan.FromSeconds(1), timeout: TimeSpan.FromSeconds(5)), service);
        Assert.NotNull(Next<HeartbeatAnswered>(events, TimeSpan.FromSeconds(5)).RttMs);

        var inbound = Assert.Single((await WaitForConnectionsAsync(service, c => c.Any(s => s.Protocol == "tcp"))).Items, c => c.Protocol == "tcp");
        var status = await service.LiveStatusAsync(inbound.Id);
        Assert.Equal(1000, status!.Negotiated!.RequestedMs);
        Assert.Equal(2000, status.Negotiated.AcceptedMs);
        Assert.Contains(_logs.Lines, l => l.Message.Contains("announced a heartbeat interval of 1000 ms; the server accepted 2000 ms"));

        // Heartbeating every 1 s, as it said, is not too fast for a server that would rather have 2 s.
        for (var i = 0; i < 3; i++) Next<HeartbeatAnswered>(events, TimeSpan.FromSeconds(5));
        Assert.Equal(0, (await service.StatsAsync()).Closed(CloseReason.RateLimited));
        await client.GracefulStop(TimeSpan.FromSeconds(3));
    }

    [Theory]
    [InlineData("json-lines")]
    [InlineData("binary")]
    public async Task Client_must_heartbeat_and_have_its_data_echoed_in_the_listeners_codec(string codec)
    {
        await using var service = await TestService.StartAsync($"supervisor.tcp.codec = {codec}");
        var (client, events) = Start($"codec-{codec}", Fast(service.Port) with { Codec = TestPeer.CodecNamed(codec) });
        Next<HeartbeatAnswered>(events, TimeSpan.FromSeconds(5));
        client.Tell(new Send("é 😀"));
        var echo = Next<FrameReceived>(events, TimeSpan.FromSeconds(5), e => e.Frame.Type == FrameType.Data);
        Assert.Equal("é 😀", echo.Frame.Data);
        await client.GracefulStop(TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task Client_must_answer_our_servers_pings_echoing_their_seq_so_the_server_measures_its_round_trip()
    {
        // The server pings after 100 ms of silence; the client heartbeats only every 400 ms.
        await using var service = await TestService.StartAsync("supervisor.heartbeat { interval = 100ms, timeout = 2s, server-ping = on }");
        // Announcing its 400 ms would move the server's deadlines to it (negotiation): this client keeps the listener's.
        var (client, events) = Start("pinged", Fast(service.Port, interval: TimeSpan.FromMilliseconds(400), timeout: TimeSpan.FromSeconds(2)) with { AnnounceInterval = false }, service);
        Next<Connected>(events, TimeSpan.FromSeconds(5));
        var pinged = Next<ServerPinged>(events, TimeSpan.FromSeconds(3));
        Assert.NotNull(pinged.Seq);
        var serverSide = (await WaitForConnectionsAsync(service, c => c.Any(s => s.Protocol == "tcp" && s.RttMs is not null))).Items.Single(s => s.Protocol == "tcp");
        _output.WriteLine($"server ping {pinged.Seq} answered; the server measured {serverSide.RttMs:F2} ms");
        var status = await client.Ask<ClientStatus>(GetStatus.Instance, TimeSpan.FromSeconds(3));
        Assert.Equal(ClientState.Active, status.State);
        await client.GracefulStop(TimeSpan.FromSeconds(3));
    }

    private static async Task<RegistryProtocol.Connections> WaitForConnectionsAsync(TestService service, Func<IReadOnlyList<ConnectionStatus>, bool> condition)
    {
        RegistryProtocol.Connections connections = new([]);
        await WaitUntilAsync(async () => condition((connections = await service.ConnectionsAsync()).Items), TimeSpan.FromSeconds(5), "the registry condition");
        return connections;
    }

    [Fact]
    public async Task Client_must_reconnect_on_its_own_with_growing_jittered_delays_after_a_server_restart_and_deliver_its_buffer_up_to_the_limit()
    {
        var port = FreePort();
        var settings = Fast(port, minBackoff: TimeSpan.FromMilliseconds(100), maxBackoff: TimeSpan.FromMilliseconds(1600)) with
        {
            BufferSize = 5,
            Overflow = OverflowPolicy.DropOldest,
        };
        // No reconnect hint: this is about the client's own backoff, which a hint would replace for the first delay.
        var noHint = $"supervisor.tcp.port = {port}\nsupervisor.shutdown.reconnect-hint.spread = off";
        var service = await TestService.StartAsync(noHint);
        TestService? restarted = null;
        try
        {
            var (client, events) = Start("restart", settings);
            Next<Connected>(events, TimeSpan.FromSeconds(5));
            Next<HeartbeatAnswered>(events, TimeSpan.FromSeconds(2), a => a.RttMs is not null);
            // Let the connection prove stable (reset-after 300 ms), so the backoff counts from attempt 1.
            await Task.Delay(400);

            var stoppedAt = Stopwatch.GetTimestamp();
            await service.DisposeAsync();
            var disconnected = Next<Disconnected>(events, TimeSpan.FromSeconds(5));
            _output.WriteLine($"disconnected: {disconnected.Reason.ToWireName()} ({disconnected.Detail})");
            Assert.Equal(CloseReason.PeerClosed, disconnected.Reason);
            Assert.Contains("server-shutdown", disconnected.Detail);

            // While the server is down: 8 frames into a buffer of 5, drop-oldest.
            for (var i = 0; i < 8; i++) client.Tell(new Send($"d{i}"));

            // Everything the client says until it is connected again; at least four attempts fail first.
            var seen = new List<(object Event, double AtMs)>();
            object Receive() => events.ReceiveOne(TimeSpan.FromSeconds(5)) ?? throw new TimeoutException($"no client event; so far: {string.Join(", ", seen.Select(e => e.Event))}");
            while (seen.Count(e => e.Event is Reconnecting) < 4)
                seen.Add((Receive(), Stopwatch.GetElapsedTime(stoppedAt).TotalMilliseconds));
            var restartAt = Stopwatch.GetTimestamp();
            restarted = await TestService.StartAsync(noHint);
            Connected connected;
            while (true)
            {
                var next = Receive();
                if (next is Connected c)
                {
                    connected = c;
                    break;
                }
                seen.Add((next, Stopwatch.GetElapsedTime(stoppedAt).TotalMilliseconds));
            }
            var reconnectedAfterMs = Stopwatch.GetElapsedTime(restartAt).TotalMilliseconds;

            Assert.Equal(["d0", "d1", "d2"], seen.Select(e => e.Event).OfType<FrameDropped>().Select(d => d.Data));
            var reconnects = seen.Where(e => e.Event is Reconnecting).Select(e => ((Reconnecting)e.Event, e.AtMs)).ToList();
            foreach (var (r, at) in reconnects)
                _output.WriteLine($"attempt {r.Attempt}: delay {r.Delay.TotalMilliseconds:F0} ms (bounds 100-{Backoff.Ceiling(settings.Reconnect, r.Attempt).TotalMilliseconds:F0}), published {at:F0} ms after the stop; {r.LastError}");
            _output.WriteLine($"reconnected {reconnectedAfterMs:F0} ms after the new server started, at attempt {connected.Attempt}");

            Assert.Equal(Enumerable.Range(1, reconnects.Count), reconnects.Select(r => r.Item1.Attempt));
            foreach (var (r, _) in reconnects)
                Assert.InRange(r.Delay, settings.Reconnect.Min, Backoff.Ceiling(settings.Reconnect, r.Attempt));
            Assert.True(reconnects.Select(r => r.Item1.Delay).Distinct().Count() > 1, "the delays are jittered, not all equal");
            Assert.True(Backoff.Ceiling(settings.Reconnect, 1) < Backoff.Ceiling(settings.Reconnect, 2)
                        && Backoff.Ceiling(settings.Reconnect, 2) < Backoff.Ceiling(settings.Reconnect, 3), "the bounds grow");
            Assert.Contains("connection refused", reconnects[1].Item1.LastError);
            Assert.Equal(reconnects.Count, connected.Attempt);
            // The delays are logged, each with its attempt.
            foreach (var (r, _) in reconnects)
                Assert.Contains(_logs.Lines, l => l.Message.Contains($"reconnecting to 127.0.0.1:{port} in {r.Delay.TotalMilliseconds:F0} ms (attempt {r.Attempt},", StringComparison.Ordinal));

            // The buffered frames go out after the reconnect, in order; the echo server sends them back.
            var echoed = Enumerable.Range(0, 5).Select(_ => Next<FrameReceived>(events, TimeSpan.FromSeconds(3), f => f.Frame.Type == FrameType.Data).Frame.Data ?? "").ToArray();
            Assert.Equal(["d3", "d4", "d5", "d6", "d7"], echoed);
            var status = await client.Ask<ClientStatus>(GetStatus.Instance, TimeSpan.FromSeconds(3));
            Assert.Equal(0, status.Buffered);
            Assert.Equal(3, status.Dropped);
            Assert.Equal(5, status.DataSent);
            Assert.Equal(2, status.Connects);
            Next<HeartbeatAnswered>(events, TimeSpan.FromSeconds(2), a => a.RttMs is not null);
        }
        finally
        {
            await service.DisposeAsync();
            if (restarted is not null) await restarted.DisposeAsync();
        }
    }

    [Fact]
    public async Task Clients_must_wait_the_moment_a_shutting_down_server_gave_each_of_them_instead_of_their_backoff()
    {
        var port = FreePort();
        // Backoff 100-200 ms for the first attempt: a client that ignored the hint would be back within 200 ms.
        var settings = Fast(port, minBackoff: TimeSpan.FromMilliseconds(100), maxBackoff: TimeSpan.FromSeconds(5));
        var spread = TimeSpan.FromSeconds(3);
        var config = $"supervisor.tcp.port = {port}\nsupervisor.shutdown.reconnect-hint.spread = {spread.TotalMilliseconds}ms";
        var service = await TestService.StartAsync(config);
        TestService? restarted = null;
        try
        {
            var clients = Enumerable.Range(0, 3).Select(i => Start($"hinted-{i}", settings)).ToArray();
            foreach (var (_, events) in clients)
            {
                Next<Connected>(events, TimeSpan.FromSeconds(5));
                Next<HeartbeatAnswered>(events, TimeSpan.FromSeconds(2), a => a.RttMs is not null);
            }

            var stopBegan = Stopwatch.GetTimestamp();
            await service.DisposeAsync();
            restarted = await TestService.StartAsync(config);
            var listeningAfter = Stopwatch.GetElapsedTime(stopBegan);

            var hints = new List<TimeSpan>();
            foreach (var (_, events) in clients)
            {
                var disconnected = Next<Disconnected>(events, TimeSpan.FromSeconds(5));
                Assert.True(CloseReasons.TryReadReconnectHint(disconnected.Detail, out var hint), disconnected.Detail);
                var reconnecting = Next<Reconnecting>(events, TimeSpan.FromSeconds(2));
                // The client's decision: exactly the server's moment, not counted as a failed attempt.
                Assert.Equal(hint, reconnecting.Delay);
                Assert.Equal(0, reconnecting.Attempt);
                Assert.True(reconnecting.AsServerAsked);
                // No earlier than the hint: its timer started after the notice, and the notice after the stop began.
                Next<Connected>(events, spread + TimeSpan.FromSeconds(10));
                var back = Stopwatch.GetElapsedTime(stopBegan);
                _output.WriteLine($"hint {hint.TotalMilliseconds} ms, back {back.TotalMilliseconds:F0} ms after the stop began (new server listening after {listeningAfter.TotalMilliseconds:F0} ms)");
                Assert.True(back >= hint, $"reconnected {back.TotalMilliseconds:F0} ms after the stop began, before its hint of {hint.TotalMilliseconds} ms");
                Assert.Contains(_logs.Lines, l => l.Message.Contains($"reconnecting to 127.0.0.1:{port} in {hint.TotalMilliseconds:F0} ms, when the server asked", StringComparison.Ordinal));
                hints.Add(hint);
            }
            // One moment per client, one in each third of the window.
            Assert.Equal([0, 1, 2], hints.Select(h => (int)(h / (spread / 3))).Order());
        }
        finally
        {
            await service.DisposeAsync();
            if (restarted is not null) await restarted.DisposeAsync();
        }
    }

    [Fact]
    public async Task Client_must_back_off_as_usual_when_a_hint_comes_in_a_notice_other_than_server_shutdown()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var peerTask = Task.Run(async () =>
        {
            // A server that refuses with a hint where none belongs: honoured, it would let a server hold the client in a loop.
            using var socket = await listener.AcceptSocketAsync(stop.Token);
            await socket.SendAsync(Encoding.UTF8.GetBytes("{\"type\":3,\"timestamp\":1,\"data\":\"rejected-capacity: full; reconnect-after=4000ms\"}\n"), stop.Token);
            socket.Shutdown(SocketShutdown.Send);
            var buffer = new byte[256];
            while (await socket.ReceiveAsync(buffer, stop.Token) > 0)
            {
            }
        }, stop.Token);

        var settings = Fast(port, minBackoff: TimeSpan.FromMilliseconds(100), maxBackoff: TimeSpan.FromSeconds(5));
        var (_, events) = Start("refused", settings);
        Next<Connected>(events, TimeSpan.FromSeconds(5));
        var disconnected = Next<Disconnected>(events, TimeSpan.FromSeconds(5));
        Assert.Contains("reconnect-after=4000ms", disconnected.Detail);
        var reconnecting = Next<Reconnecting>(events, TimeSpan.FromSeconds(2));
        Assert.False(reconnecting.AsServerAsked);
        Assert.Equal(1, reconnecting.Attempt);
        Assert.InRange(reconnecting.Delay, settings.Reconnect.Min, Backoff.Ceiling(settings.Reconnect, 1));
        await peerTask;
    }

    [Fact]
    public async Task Client_must_keep_heartbeating_with_a_minimal_independent_peer_that_sends_no_seq_and_never_answers_data()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var received = new List<JsonElement>();
        var peerTask = Task.Run(async () =>
        {
            // The source document's server, minimally: integer types, no seq, data never answered.
            using var socket = await listener.AcceptSocketAsync(stop.Token);
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            var heartbeats = 0;
            while (await reader.ReadLineAsync(stop.Token) is { } line)
            {
                var message = JsonDocument.Parse(line).RootElement.Clone();
                lock (received) received.Add(message);
                if (message.GetProperty("type").GetInt32() != 0) continue;
                var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
                var reply = $"{{\"type\":1,\"timestamp\":{now}}}\n";
                if (++heartbeats == 3) reply += $"{{\"type\":0,\"timestamp\":{now}}}\n"; // a server ping, once
                await stream.WriteAsync(Encoding.UTF8.GetBytes(reply), stop.Token);
            }
        }, stop.Token);

        var settings = Fast(port, timeout: TimeSpan.FromMilliseconds(400)) with { SendSeq = false, AnnounceInterval = false };
        var (client, events) = Start("plain", settings);
        Next<Connected>(events, TimeSpan.FromSeconds(5));
        client.Tell(new Send("hello"));
        var pinged = Next<ServerPinged>(events, TimeSpan.FromSeconds(3));
        Assert.Null(pinged.Seq);

        // Well past the heartbeat timeout: answered without seq, data never answered, no disconnect.
        var answers = new List<HeartbeatAnswered>();
        var until = DateTime.UtcNow + TimeSpan.FromMilliseconds(1200);
        while (DateTime.UtcNow < until)
        {
            var message = events.ReceiveOne(TimeSpan.FromMilliseconds(300));
            Assert.IsNotType<Disconnected>(message);
            Assert.IsNotType<Reconnecting>(message);
            if (message is HeartbeatAnswered answer) answers.Add(answer);
        }
        Assert.True(answers.Count >= 8, $"{answers.Count} heartbeat responses");
        Assert.All(answers, a => Assert.Null(a.Seq));
        Assert.All(answers, a => Assert.NotNull(a.RttMs));
        _output.WriteLine($"RTT matched oldest-first without seq: {string.Join(", ", answers.Select(a => $"{a.RttMs:F2}"))} ms");
        var status = await client.Ask<ClientStatus>(GetStatus.Instance, TimeSpan.FromSeconds(3));
        Assert.Equal(ClientState.Active, status.State);
        Assert.Equal(1, status.Connects);

        await client.GracefulStop(TimeSpan.FromSeconds(3));
        await peerTask.WaitAsync(TimeSpan.FromSeconds(5));
        JsonElement[] seen;
        lock (received) seen = received.ToArray();
        var heartbeatsSeen = seen.Where(m => m.GetProperty("type").GetInt32() == 0).ToArray();
        Assert.True(heartbeatsSeen.Length >= 8);
        // Exactly the source document's heartbeat: {"type":0,"timestamp":N}.
        Assert.All(heartbeatsSeen, m => Assert.Equal(["type", "timestamp"], m.EnumerateObject().Select(p => p.Name).ToArray()));
        Assert.Contains(seen, m => m.GetProperty("type").GetInt32() == 2 && m.GetProperty("data").GetString() == "hello");
        var pong = Assert.Single(seen, m => m.GetProperty("type").GetInt32() == 1);
        Assert.False(pong.TryGetProperty("seq", out _));
        Assert.DoesNotContain(_logs.Lines, l => l.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task Client_must_turn_suspect_after_an_unanswered_interval_and_disconnect_with_heartbeat_timeout_from_a_silent_server()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var settings = Fast(port, interval: TimeSpan.FromMilliseconds(100), timeout: TimeSpan.FromMilliseconds(500), minBackoff: TimeSpan.FromSeconds(2), maxBackoff: TimeSpan.FromSeconds(2));
        var (client, events) = Start("silent", settings);
        using var accepted = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(5));
        var connectedAt = Stopwatch.GetTimestamp();
        Next<Connected>(events, TimeSpan.FromSeconds(2));

        Next<StateChanged>(events, TimeSpan.FromSeconds(2), s => s.State == ClientState.Suspect);
        var suspectAfter = Stopwatch.GetElapsedTime(connectedAt).TotalMilliseconds;
        var disconnected = Next<Disconnected>(events, TimeSpan.FromSeconds(2));
        var timedOutAfter = Stopwatch.GetElapsedTime(connectedAt).TotalMilliseconds;
        _output.WriteLine($"suspect after {suspectAfter:F0} ms, disconnected after {timedOutAfter:F0} ms: {disconnected.Detail}");
        Assert.Equal(CloseReason.HeartbeatTimeout, disconnected.Reason);
        Assert.InRange(suspectAfter, 80, 350);
        Assert.InRange(timedOutAfter, 480, 900);
        var reconnecting = Next<Reconnecting>(events, TimeSpan.FromSeconds(1));
        Assert.Equal(1, reconnecting.Attempt);
        Assert.StartsWith("heartbeat-timeout", reconnecting.LastError);

        // The client sent FIN: the silent server reads the end of its stream.
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        while (await accepted.ReceiveAsync(buffer, SocketFlags.None, cts.Token) > 0) { }
        await client.GracefulStop(TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task Client_must_declare_a_silent_server_dead_at_its_timeout_and_reconnect_with_fresh_deadlines()
    {
        // A server that accepts and reads but never writes a byte, on every connection.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var settings = Fast(port, interval: TimeSpan.FromMilliseconds(100), timeout: TimeSpan.FromMilliseconds(500),
            minBackoff: TimeSpan.FromMilliseconds(100), maxBackoff: TimeSpan.FromMilliseconds(200));
        // Timed by the client's own lifecycle events (stamped when it decided), not by when this busy test thread
        // gets to them: the second connection is made while the test still reads the first one's socket.
        var lifecycle = CreateTestProbe();
        Sys.EventStream.Subscribe(lifecycle.Ref, typeof(IConnectionLifecycleEvent));
        var (client, events) = Start("dead", settings);

        for (var connection = 1; connection <= 2; connection++)
        {
            using var accepted = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(5));
            if (connection == 2) listener.Stop(); // no third connection: the status below is the second one's
            var connected = Next<Connected>(events, TimeSpan.FromSeconds(2));
            Next<StateChanged>(events, TimeSpan.FromSeconds(2), s => s.State == ClientState.Suspect);
            var disconnected = Next<Disconnected>(events, TimeSpan.FromSeconds(2));
            var opened = lifecycle.ExpectMsg<ConnectionLifecycle.Opened>(TimeSpan.FromSeconds(1));
            var suspect = lifecycle.ExpectMsg<ConnectionLifecycle.StateChanged>(TimeSpan.FromSeconds(1));
            var closed = lifecycle.ExpectMsg<ConnectionLifecycle.Closed>(TimeSpan.FromSeconds(1));
            lifecycle.ExpectMsg<ConnectionLifecycle.Released>(TimeSpan.FromSeconds(1));
            Assert.Equal(ConnectionState.Suspect, suspect.Status.State);
            Assert.Equal([opened.ConnectionId, opened.ConnectionId], new[] { suspect.ConnectionId, closed.ConnectionId });
            Assert.Equal(CloseReason.HeartbeatTimeout, closed.Reason);
            var suspectAfter = (suspect.At - opened.At).TotalMilliseconds;
            var deadAfter = (closed.At - opened.At).TotalMilliseconds;
            var reconnecting = Next<Reconnecting>(events, TimeSpan.FromSeconds(1));
            _output.WriteLine($"connection {connection} (attempt {connected.Attempt}): suspect after {suspectAfter:F0} ms, " +
                              $"dead after {deadAfter:F0} ms ({disconnected.Detail}), reconnecting in {reconnecting.Delay.TotalMilliseconds:F0} ms");

            // Each connection is judged from its own start: one unanswered interval, then the timeout after connecting.
            Assert.Equal(CloseReason.HeartbeatTimeout, disconnected.Reason);
            Assert.StartsWith("no frame from the server for", disconnected.Detail);
            Assert.InRange(suspectAfter, 100, 450);
            Assert.InRange(deadAfter, 500, 1100);
            // Up longer than reset-after (300 ms): every reconnect starts the backoff again from attempt 1.
            Assert.Equal(1, reconnecting.Attempt);
            Assert.InRange(reconnecting.Delay, settings.Reconnect.Min, Backoff.Ceiling(settings.Reconnect, 1));
            Assert.StartsWith("heartbeat-timeout", reconnecting.LastError);

            // The client heartbeated the silent server every interval until it gave up, then sent FIN.
            var received = new MemoryStream();
            var buffer = new byte[4096];
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            int read;
            while ((read = await accepted.ReceiveAsync(buffer, SocketFlags.None, cts.Token)) > 0) received.Write(buffer, 0, read);
            var heartbeats = Encoding.UTF8.GetString(received.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(line => JsonDocument.Parse(line).RootElement).ToArray();
            _output.WriteLine($"the silent server read {heartbeats.Length} heartbeats on connection {connection}");
            Assert.All(heartbeats, h => Assert.Equal(0, h.GetProperty("type").GetInt32()));
            Assert.InRange(heartbeats.Length, 3, 6);
        }

        var status = await client.Ask<ClientStatus>(GetStatus.Instance, TimeSpan.FromSeconds(3));
        Assert.Equal(2, status.Connects);
        Assert.NotEqual(ClientState.Active, status.State);
        await client.GracefulStop(TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task Client_must_turn_active_again_when_a_suspect_server_answers_and_publish_both_moves_as_lifecycle_events()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var peerTask = Task.Run(async () =>
        {
            // Silent for its first 500 ms (the client's first three heartbeats go unanswered), then it answers each one.
            using var socket = await listener.AcceptSocketAsync(stop.Token);
            var acceptedAt = Stopwatch.GetTimestamp();
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            while (await reader.ReadLineAsync(stop.Token) is { } line)
            {
                if (Stopwatch.GetElapsedTime(acceptedAt) < TimeSpan.FromMilliseconds(500)) continue;
                var seq = JsonDocument.Parse(line).RootElement.GetProperty("seq").GetInt64();
                var reply = $"{{\"type\":1,\"timestamp\":{DateTimeOffset.UtcNow.ToUnixTimeSeconds()},\"seq\":{seq}}}\n";
                await stream.WriteAsync(Encoding.UTF8.GetBytes(reply), stop.Token);
            }
        }, stop.Token);

        var lifecycle = CreateTestProbe();
        Sys.EventStream.Subscribe(lifecycle.Ref, typeof(ConnectionLifecycle.StateChanged));
        var settings = Fast(port, interval: TimeSpan.FromMilliseconds(200), timeout: TimeSpan.FromMilliseconds(1500));
        var (client, events) = Start("wakes", settings);
        Next<Connected>(events, TimeSpan.FromSeconds(5));
        Next<StateChanged>(events, TimeSpan.FromSeconds(2), s => s.State == ClientState.Suspect);
        var suspect = lifecycle.ExpectMsg<ConnectionLifecycle.StateChanged>(TimeSpan.FromSeconds(2));
        Assert.Equal((ConnectionState.Suspect, ConnectionDirection.Outbound, HeartbeatClient.Protocol), (suspect.Status.State, suspect.Direction, suspect.Status.Protocol));

        Next<StateChanged>(events, TimeSpan.FromSeconds(2), s => s.State == ClientState.Active);
        var active = lifecycle.ExpectMsg<ConnectionLifecycle.StateChanged>(TimeSpan.FromSeconds(2));
        Assert.Equal((ConnectionState.Active, 0), (active.Status.State, active.Status.MissedHeartbeats));
        var answered = Next<HeartbeatAnswered>(events, TimeSpan.FromSeconds(2));
        Assert.NotNull(answered.RttMs);

        // Answered from now on: the same connection stays up well past the timeout. (That an answer within the
        // interval never makes it suspect is pinned in virtual time, HeartbeatDeadlinesTests: a busy machine can
        // hold one of this peer's answers back longer than 200 ms.)
        var until = DateTime.UtcNow + TimeSpan.FromMilliseconds(1800);
        while (DateTime.UtcNow < until)
        {
            var message = events.ReceiveOne(TimeSpan.FromMilliseconds(300));
            Assert.IsNotType<Disconnected>(message);
            Assert.IsNotType<Reconnecting>(message);
        }
        var status = await client.Ask<ClientStatus>(GetStatus.Instance, TimeSpan.FromSeconds(3));
        Assert.Equal(1, status.Connects);
        Assert.Contains(_logs.Lines, l => l.Message.Contains("server unanswered for 1 heartbeat interval(s), suspect", StringComparison.Ordinal));

        await client.GracefulStop(TimeSpan.FromSeconds(3));
        await peerTask.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Client_must_refuse_with_SendRejected_under_fail_and_drop_the_new_frame_under_drop_newest_while_disconnected()
    {
        var closedPort = FreePort();
        var failing = Fast(closedPort, minBackoff: TimeSpan.FromSeconds(5), maxBackoff: TimeSpan.FromSeconds(5)) with { BufferSize = 2, Overflow = OverflowPolicy.Fail };
        var (failClient, failEvents) = Start("fail", failing);
        Next<Reconnecting>(failEvents, TimeSpan.FromSeconds(3));
        failClient.Tell(new Send("a"));
        failClient.Tell(new Send("b"));
        failClient.Tell(new Send("c"));
        var rejected = ExpectMsg<SendRejected>(TimeSpan.FromSeconds(2));
        Assert.Equal("c", rejected.Data);
        Assert.Contains("buffer full", rejected.Reason);
        var status = await failClient.Ask<ClientStatus>(GetStatus.Instance, TimeSpan.FromSeconds(3));
        Assert.Equal((2, 0L, 1L), (status.Buffered, status.Dropped, status.Rejected));

        var newest = failing with { Overflow = OverflowPolicy.DropNewest };
        var (newestClient, newestEvents) = Start("newest", newest);
        Next<Reconnecting>(newestEvents, TimeSpan.FromSeconds(3));
        foreach (var data in new[] { "a", "b", "c" }) newestClient.Tell(new Send(data));
        Assert.Equal("c", Next<FrameDropped>(newestEvents, TimeSpan.FromSeconds(2)).Data);
        ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        status = await newestClient.Ask<ClientStatus>(GetStatus.Instance, TimeSpan.FromSeconds(3));
        Assert.Equal((2, 1L, 0L), (status.Buffered, status.Dropped, status.Rejected));
        Assert.Contains(_logs.Lines, l => l.Level == LogLevel.Warning && l.Message.Contains("buffer full (2 frames), drop-newest", StringComparison.Ordinal));
    }
}
