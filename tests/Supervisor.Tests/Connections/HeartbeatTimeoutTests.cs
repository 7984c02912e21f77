using System.Diagnostics;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Connections;

/// <summary>Heartbeat deadlines on real sockets and the real scheduler, with short timeouts.</summary>
public sealed class HeartbeatTimeoutTests(ITestOutputHelper output)
{
    // The first-frame deadline (auto: 300 ms with these) is not what this class tests, and its peers send their first
    // frame after a spread of up to 150 ms: at load average 7-13 that came after 300 ms (a first-frame-timeout notice
    // instead of the first answer, seen twice), so it is set well away from the timings measured here.
    private const string FastHeartbeat = "supervisor.heartbeat { interval = 200ms, timeout = 600ms }\nsupervisor.tcp.limits.first-frame-timeout = 5s\n";

    // Never before the 600 ms timeout: an early close is a false disconnect. The upper bound is the variance
    // measured on the 2-core box, not the quiet figure: 610–618 ms quiet, 707 ms at load average 18 and
    // 895 ms at load average 25 (helpers building beside the suite). The precision itself is measured in bench/ (p99 a few ms at
    // 19,000 connections) and in virtual time (VirtualTimeTests: exactly at the timeout).
    [Theory]
    [InlineData("json-lines")]
    [InlineData("binary")]
    public async Task Silent_peer_must_be_closed_no_sooner_than_600_ms_and_within_600_ms_of_it_after_its_last_valid_frame(string codec)
    {
        await using var service = await TestService.StartAsync(FastHeartbeat + $"supervisor.tcp.codec = {codec}\n");
        var peers = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => TestPeer.ConnectAsync(service.Port, codec)));
        var measured = await Task.WhenAll(peers.Select(async (peer, i) =>
        {
            await Task.Delay(i * 37); // spread the deadlines over the scheduler's ticks
            // Taken before the send: the server may read the frame before SendHeartbeatAsync returns.
            var sentAt = Stopwatch.GetTimestamp();
            await peer.SendHeartbeatAsync(1);
            Assert.Equal(FrameType.HeartbeatResponse, (await peer.ReceiveFrameAsync())!.Type);
            var frames = await peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(3));
            var closedAfter = Stopwatch.GetElapsedTime(sentAt);
            var notice = Assert.Single(frames);
            Assert.StartsWith("heartbeat-timeout: ", notice.Data);
            return closedAfter.TotalMilliseconds;
        }));
        output.WriteLine($"close after last frame, ms: {string.Join(", ", measured.Select(m => m.ToString("F1")))}");
        Assert.All(measured, ms => Assert.InRange(ms, 600, 1200));

        var stats = await service.WaitForStatsAsync(s => s.Active == 0);
        Assert.Equal(5, stats.Closed(CloseReason.HeartbeatTimeout));
        foreach (var peer in peers) peer.Dispose();
    }

    [Fact]
    public async Task Steady_heartbeats_must_keep_a_connection_open_past_many_timeouts()
    {
        await using var service = await TestService.StartAsync(FastHeartbeat);
        using var peer = await TestPeer.ConnectAsync(service.Port);
        for (var seq = 1; seq <= 12; seq++) // 12 x 150 ms = three timeouts' worth
        {
            await peer.SendHeartbeatAsync(seq);
            var response = await peer.ReceiveFrameAsync();
            Assert.True(response?.Seq == seq, $"heartbeat {seq}: expected its response, got {response}");
            await Task.Delay(150);
        }
        var stats = await service.StatsAsync();
        Assert.Equal(1, stats.Active);
        var id = (await service.ConnectionsAsync()).Items.Single().Id;
        Assert.Equal(12, (await service.LiveStatusAsync(id))!.HeartbeatsReceived);
    }

    [Fact]
    public async Task Bytes_of_an_unfinished_frame_must_not_count_as_liveness()
    {
        await using var service = await TestService.StartAsync(FastHeartbeat);
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await peer.SendHeartbeatAsync(1);
        var sentAt = Stopwatch.GetTimestamp();
        await peer.ReceiveFrameAsync();
        var closed = peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(3));
        // One byte of a never-finished frame every 50 ms.
        foreach (var b in "{\"type\":0,\"timestamp\":1,\"seq\":2222222222222")
        {
            if (closed.IsCompleted) break;
            try { await peer.SendAsync(b.ToString()); } catch (System.Net.Sockets.SocketException) { break; }
            await Task.Delay(50);
        }
        var notice = Assert.Single(await closed);
        var closedAfter = Stopwatch.GetElapsedTime(sentAt).TotalMilliseconds;
        output.WriteLine($"closed {closedAfter:F1} ms after the last complete frame");
        Assert.StartsWith("heartbeat-timeout: ", notice.Data);
        // Had the trickle counted as liveness the connection would never close while bytes keep coming
        // (every 50 ms for 2.2 s, so not before 2.8 s); the timeout's precision itself is the test above, and
        // the upper bound is its measured variance under load (895 ms at load average 25), not the quiet 610 ms.
        Assert.InRange(closedAfter, 600, 1200);
    }

    [Fact]
    public async Task Heartbeat_only_liveness_must_not_count_data_frames()
    {
        await using var service = await TestService.StartAsync(FastHeartbeat + "supervisor.heartbeat.liveness = heartbeat-only");
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await peer.SendHeartbeatAsync(1);
        var sentAt = Stopwatch.GetTimestamp();
        await peer.ReceiveFrameAsync();
        var frames = new List<Frame>();
        for (var i = 0; i < 20; i++)
        {
            try { await peer.SendAsync("{\"type\":2,\"data\":\"busy\"}\n"); } catch (System.Net.Sockets.SocketException) { break; }
            var frame = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(2));
            if (frame is null) break;
            frames.Add(frame);
            if (frame.Type == FrameType.ErrorNotice) break;
            await Task.Delay(100);
        }
        var closedAfter = Stopwatch.GetElapsedTime(sentAt).TotalMilliseconds;
        Assert.Contains(frames, f => f.Type == FrameType.ErrorNotice && f.Data!.StartsWith("heartbeat-timeout: "));
        // Data every 100 ms for 2 s would have kept it open past 2.6 s had it counted; the upper bound is the
        // timeout's variance measured under load (895 ms at load average 25), as in the first test.
        Assert.InRange(closedAfter, 600, 1200);
    }

    [Fact]
    public async Task Any_frame_liveness_must_count_data_frames()
    {
        await using var service = await TestService.StartAsync(FastHeartbeat);
        using var peer = await TestPeer.ConnectAsync(service.Port);
        for (var i = 0; i < 10; i++)
        {
            await peer.SendAsync("{\"type\":2,\"data\":\"busy\"}\n");
            var echo = await peer.ReceiveFrameAsync();
            Assert.True(echo!.Type == FrameType.Data, $"expected an echo, got {echo}");
            await Task.Delay(150);
        }
        Assert.Equal(1, (await service.StatsAsync()).Active);
    }

    [Fact]
    public async Task Silent_connection_must_turn_suspect_after_suspect_after_and_count_missed_heartbeats()
    {
        await using var service = await TestService.StartAsync("supervisor.heartbeat { interval = 200ms, timeout = 2s }");
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await peer.SendHeartbeatAsync(1);
        await peer.ReceiveFrameAsync();
        var silentSince = Stopwatch.StartNew(); // the heartbeat reached the server before its answer left
        var id = (await service.ConnectionsAsync()).Items.Single().Id;
        Assert.Equal(ConnectionState.Active, (await service.LiveStatusAsync(id))!.State);
        await Task.Delay(500);
        // suspect-after auto: 200 + min(200, 1800) / 2 = 300 ms, then one more miss every 200 ms.
        static int MissedAt(long ms) => ms < 300 ? 0 : 1 + (int)((ms - 300) / 200);
        var before = silentSince.ElapsedMilliseconds;
        var status = (await service.LiveStatusAsync(id))!;
        var after = silentSince.ElapsedMilliseconds;
        Assert.Equal(ConnectionState.Suspect, status.State);
        Assert.InRange(status.MissedHeartbeats, MissedAt(before - 50), MissedAt(after));
        await peer.SendHeartbeatAsync(2);
        await peer.ReceiveFrameAsync();
        status = (await service.LiveStatusAsync(id))!;
        Assert.Equal(ConnectionState.Active, status.State);
        Assert.Equal(0, status.MissedHeartbeats);
    }

    [Fact]
    public async Task Server_ping_must_probe_a_silent_peer_and_record_the_round_trip()
    {
        await using var service = await TestService.StartAsync("supervisor.heartbeat { interval = 200ms, timeout = 1s, server-ping = on }");
        using var peer = await TestPeer.ConnectAsync(service.Port);
        // A first frame (else the first-frame deadline, also 300 ms here, closes it), then silence.
        await peer.SendHeartbeatAsync(1);
        Assert.Equal(FrameType.HeartbeatResponse, (await peer.ReceiveFrameAsync())!.Type);
        var pingWait = Stopwatch.StartNew();
        var ping = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(2));
        Assert.True(ping!.Type == FrameType.Heartbeat, $"expected a ping, got {ping}");
        Assert.NotNull(ping.Seq);
        // Suspect, and pinged, at suspect-after auto: 200 + min(200, 800) / 2 = 300 ms.
        Assert.InRange(pingWait.ElapsedMilliseconds, 250, 500);
        await peer.SendFrameAsync(Frame.HeartbeatResponse(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), ping.Seq));
        await Task.Delay(50);
        var status = (await service.ConnectionsAsync()).Items.Single();
        var live = (await service.LiveStatusAsync(status.Id))!;
        Assert.NotNull(live.RttMs);
        Assert.InRange(live.RttMs!.Value, 0, 100);
        Assert.Equal(ConnectionState.Active, live.State);
    }
}
