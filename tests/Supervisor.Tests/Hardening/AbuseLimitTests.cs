using System.Diagnostics;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Hardening;

/// <summary>
/// Each abuse limit tripped on purpose, with 20 well-behaved connections heartbeating alongside that
/// must see no failure and a heartbeat round trip p99 under 250 ms (the variance measured under load).
/// </summary>
[Collection(Connections.ProcessWideResources.Name)]
public sealed class AbuseLimitTests(ITestOutputHelper output)
{
    private sealed class Bystanders : IAsyncDisposable
    {
        private readonly List<TestPeer> _peers;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task<List<double>> _running;
        private readonly TaskCompletionSource _firstRound = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private Bystanders(List<TestPeer> peers)
        {
            _peers = peers;
            _running = Task.Run(RunAsync);
        }

        /// <summary>
        /// Connects the bystanders, each sending its first heartbeat at once (all together, answered before this returns):
        /// when the first frames waited for the first round of <see cref="RunAsync"/>, one peer after another, the last ones
        /// came after the 300 ms first-frame deadline some tests set (seen at load average 12: all 20 closed for it).
        /// </summary>
        public static async Task<Bystanders> StartAsync(int port, string codec = "json-lines") =>
            new(new List<TestPeer>(await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
            {
                var peer = await TestPeer.ConnectAsync(port, codec);
                await peer.SendHeartbeatAsync(0);
                var response = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
                if (response?.Type != FrameType.HeartbeatResponse)
                    throw new InvalidOperationException($"bystander got {response?.ToString() ?? "a close"} instead of its first response");
                return peer;
            }))));

        private async Task<List<double>> RunAsync()
        {
            var rtts = new List<double>();
            long seq = 0;
            while (!_stop.IsCancellationRequested)
            {
                foreach (var peer in _peers)
                {
                    var sent = Stopwatch.GetTimestamp();
                    await peer.SendHeartbeatAsync(++seq);
                    var response = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(2));
                    if (response?.Type != FrameType.HeartbeatResponse || response.Seq != seq)
                        throw new InvalidOperationException($"bystander got {response?.ToString() ?? "a close"} instead of response {seq}");
                    rtts.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                }
                _firstRound.TrySetResult();
                await Task.Delay(20);
            }
            return rtts;
        }

        /// <summary>Completes once every bystander has had a heartbeat answered: each has sent its first frame.</summary>
        public Task EachAnsweredOnceAsync() => _firstRound.Task.WaitAsync(TimeSpan.FromSeconds(10));

        public async Task<double> StopAsync()
        {
            _stop.Cancel();
            var rtts = await _running;
            rtts.Sort();
            return rtts[(int)Math.Ceiling(0.99 * rtts.Count) - 1];
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            try { await _running; } catch (InvalidOperationException) { }
            foreach (var peer in _peers) peer.Dispose();
        }
    }

    private async Task AssertBystandersHealthy(Bystanders bystanders, TestService service, int expectedActive)
    {
        var p99 = await bystanders.StopAsync();
        output.WriteLine($"bystander heartbeat RTT p99: {p99:F2} ms");
        // 0.4–0.9 ms on a quiet box; 69 and 97 ms were measured with the box at load average 18–25 (other
        // builds beside the suite). The failure this guards against is bystanders starved for seconds.
        Assert.True(p99 < 250, $"bystander RTT p99 {p99:F2} ms");
        Assert.Equal(expectedActive, (await service.StatsAsync()).Active);
    }

    [Theory]
    [InlineData("json-lines")]
    [InlineData("binary")]
    public async Task A_heartbeat_flood_must_be_cut_off_with_rate_limited(string codec)
    {
        await using var service = await TestService.StartAsync($"supervisor.tcp {{ codec = {codec}, limits {{ max-frames-per-second = 50, frame-burst = 100 }} }}");
        await using var bystanders = await Bystanders.StartAsync(service.Port, codec);
        using var flooder = await TestPeer.ConnectAsync(service.Port, codec);
        var flood = Enumerable.Repeat(flooder.Codec.EncodeToArray(new Frame(FrameType.Heartbeat, 1)), 500).SelectMany(b => b).ToArray();
        await flooder.SendAsync(flood);
        var frames = await flooder.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(FrameType.ErrorNotice, frames[^1].Type);
        Assert.StartsWith("rate-limited: ", frames[^1].Data);
        Assert.InRange(frames.Count(f => f.Type == FrameType.HeartbeatResponse), 90, 110); // the burst, then cut
        await service.WaitForStatsAsync(s => s.Closed(CloseReason.RateLimited) == 1);
        await AssertBystandersHealthy(bystanders, service, 20);
    }

    [Theory]
    [InlineData("json-lines")]
    [InlineData("binary")]
    public async Task A_connection_that_never_completes_a_frame_must_close_with_first_frame_timeout(string codec)
    {
        await using var service = await TestService.StartAsync($"supervisor.tcp {{ codec = {codec}, limits.first-frame-timeout = 300ms }}");
        await using var bystanders = await Bystanders.StartAsync(service.Port, codec);
        using var idler = await TestPeer.ConnectAsync(service.Port, codec);
        var opened = Stopwatch.StartNew();
        // Never finished: a line without its newline, or a frame whose length says more than is sent.
        await idler.SendAsync(codec == "binary" ? [0, 0, 0, 18, 0, 1, 0] : "{\"type\":0"u8.ToArray());
        var notice = Assert.Single(await idler.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(3)));
        output.WriteLine($"closed after {opened.ElapsedMilliseconds} ms");
        Assert.StartsWith("first-frame-timeout: ", notice.Data);
        Assert.InRange(opened.ElapsedMilliseconds, 250, 800);
        await service.WaitForStatsAsync(s => s.Closed(CloseReason.FirstFrameTimeout) == 1);
        await AssertBystandersHealthy(bystanders, service, 20);
    }

    [Fact]
    public async Task A_full_listener_must_evict_its_oldest_connection_that_sent_no_frame_rather_than_refuse_a_newcomer()
    {
        await using var service = await TestService.StartAsync("supervisor.tcp.max-connections = 22");
        await using var bystanders = await Bystanders.StartAsync(service.Port); // 20, all heartbeating
        // Until a bystander's first frame is seen it is the oldest connection without one, and would be chosen
        // (then decline, keeping its slot): the idle ones must be the only unproven connections.
        await bystanders.EachAnsweredOnceAsync();
        using var oldestIdle = await TestPeer.ConnectAsync(service.Port);
        // Sockets accepted together are prepared on the thread pool and may be admitted out of order: the oldest
        // must be admitted before the younger one connects.
        await service.WaitForStatsAsync(s => s.Active == 21);
        using var youngerIdle = await TestPeer.ConnectAsync(service.Port);
        await service.WaitForStatsAsync(s => s.Active == 22);

        using var newcomer = await TestPeer.ConnectAsync(service.Port);
        await newcomer.SendHeartbeatAsync(1);
        Assert.Equal(FrameType.HeartbeatResponse, (await newcomer.ReceiveFrameAsync(TimeSpan.FromSeconds(3)))!.Type);
        IReadOnlyList<Frame> frames;
        try { frames = await oldestIdle.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(3)); }
        catch (TimeoutException)
        {
            foreach (var line in service.Logs.Lines) output.WriteLine($"{line.Category}: {line.Message}");
            throw;
        }
        var notice = Assert.Single(frames);
        Assert.Matches(@"^first-frame-timeout: evicted: the server is full and this connection has sent no frame in \d+\.\d s$", notice.Data);
        await Assert.ThrowsAsync<TimeoutException>(() => youngerIdle.ReceiveFrameAsync(TimeSpan.FromMilliseconds(200))); // still open
        var stats = await service.WaitForStatsAsync(s => s.Closed(CloseReason.FirstFrameTimeout) == 1);
        Assert.Equal(0, stats.Closed(CloseReason.RejectedCapacity));
        await AssertBystandersHealthy(bystanders, service, 22);
    }

    [Fact]
    public async Task Connections_over_the_per_address_limit_must_be_refused_with_rejected_capacity()
    {
        await using var service = await TestService.StartAsync("supervisor.tcp.limits.max-connections-per-address = 22");
        await using var bystanders = await Bystanders.StartAsync(service.Port);
        using var allowed1 = await TestPeer.ConnectAsync(service.Port);
        using var allowed2 = await TestPeer.ConnectAsync(service.Port);
        // Accepted sockets are prepared on the thread pool and may reach the supervisor out of order: until both
        // allowed ones hold their slots, the next connection could take one of them and leave an allowed one refused.
        await service.WaitForStatsAsync(s => s.Active == 22);
        using var refused = await TestPeer.ConnectAsync(service.Port);
        var notice = Assert.Single(await refused.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(3)));
        Assert.StartsWith("rejected-capacity: address 127.0.0.1 holds its maximum of 22", notice.Data);
        await service.WaitForStatsAsync(s => s.Closed(CloseReason.RejectedCapacity) == 1);
        await AssertBystandersHealthy(bystanders, service, 22);
    }

    [Fact]
    public async Task A_peer_that_never_reads_must_be_closed_as_a_slow_consumer_with_write_failed()
    {
        await using var service = await TestService.StartAsync("""
            supervisor.tcp { max-frame-length = 64KiB, max-pending-write = 256KiB, limits { max-frames-per-second = 100000, frame-burst = 100000 } }
            """);
        await using var bystanders = await Bystanders.StartAsync(service.Port);
        using var reader = await TestPeer.ConnectAsync(service.Port);
        reader.Socket.ReceiveBufferSize = 4096;
        // Echo requests of ~60 KiB each; the peer never reads, so the replies pile up in the server.
        var line = System.Text.Encoding.UTF8.GetBytes("{\"type\":2,\"data\":\"" + new string('x', 60_000) + "\"}\n");
        var clock = Stopwatch.StartNew();
        try
        {
            while (clock.Elapsed < TimeSpan.FromSeconds(10))
            {
                await reader.Socket.SendAsync(line, System.Net.Sockets.SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(2));
                if ((await service.StatsAsync()).Closed(CloseReason.WriteFailed) == 1) break;
            }
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or TimeoutException)
        {
            // The server closed us or stopped reading: both end the flood.
        }
        await service.WaitForStatsAsync(s => s.Closed(CloseReason.WriteFailed) == 1, TimeSpan.FromSeconds(10));
        await AssertBystandersHealthy(bystanders, service, 20);
    }
}

/// <summary>The default limits against legitimate traffic that once tripped them (issue 14): nothing may be refused.</summary>
[Collection(Connections.ProcessWideResources.Name)]
public sealed class LegitimateTrafficTests(ITestOutputHelper output)
{
    private static async Task<System.Net.Sockets.Socket> ConnectFrom(string address, int port)
    {
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(address), 0));
        await socket.ConnectAsync(System.Net.IPAddress.Loopback, port);
        return socket;
    }

    [Fact]
    public async Task Five_thousand_connections_from_8_addresses_must_all_be_accepted_by_default()
    {
        await using var service = await TestService.StartAsync();
        var sockets = new List<System.Net.Sockets.Socket>();
        try
        {
            foreach (var batch in Enumerable.Range(0, 5000).Chunk(250))
                sockets.AddRange(await Task.WhenAll(batch.Select(i => ConnectFrom($"127.0.0.{1 + i % 8}", service.Port))));
            var stats = await service.WaitForStatsAsync(s => s.Active == 5000, TimeSpan.FromSeconds(30));
            output.WriteLine($"active {stats.Active}, refused {stats.Closed(CloseReason.RejectedCapacity)}");
            Assert.Equal(0, stats.Closed(CloseReason.RejectedCapacity));
        }
        finally
        {
            foreach (var socket in sockets) socket.Dispose();
        }
    }

    [Theory]
    [InlineData("")] // the defaults
    [InlineData("supervisor.tcp.limits.max-connections-per-address = 10")]
    public async Task Ten_clients_cycling_connect_heartbeat_close_3000_times_must_never_be_refused(string hocon)
    {
        await using var service = await TestService.StartAsync(hocon);
        var cycles = int.TryParse(Environment.GetEnvironmentVariable("SUPERVISOR_CHURN_CYCLES"), out var n) ? n : 3000;
        var refusals = new System.Collections.Concurrent.ConcurrentBag<string>();
        var clock = Stopwatch.StartNew();
        // Ten clients, each one connection at a time: never more than ten open, all from 127.0.0.1.
        await Task.WhenAll(Enumerable.Range(0, 10).Select(client => Task.Run(async () =>
        {
            for (var cycle = client; cycle < cycles; cycle += 10)
            {
                using var peer = await TestPeer.ConnectAsync(service.Port);
                await peer.SendHeartbeatAsync(cycle);
                var reply = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
                if (reply?.Type != FrameType.HeartbeatResponse) refusals.Add(reply?.Data ?? "no answer");
            }
        })));
        var stats = await service.WaitForStatsAsync(s => s.Active == 0, TimeSpan.FromSeconds(10));
        output.WriteLine($"{cycles} cycles in {clock.Elapsed.TotalSeconds:F1} s; accepted {stats.Accepted}, refused {stats.Closed(CloseReason.RejectedCapacity)}");
        Assert.Empty(refusals);
        Assert.Equal(0, stats.Closed(CloseReason.RejectedCapacity));
        Assert.Equal(cycles, stats.Accepted);
    }
}
