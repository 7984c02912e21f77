using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Supervisor.Connections;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Handler;

/// <summary>Alone in the process while it runs: it measures the process's RSS.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class BackpressureCollection
{
    public const string Name = "Backpressure measurement";
}

/// <summary>
/// A peer that sends data frames as fast as it can to a handler that takes 10 ms a frame. The CI run floods for
/// 5 s; <c>SUPERVISOR_BACKPRESSURE_SECONDS=60</c> is the long measurement (figures in the test output).
/// </summary>
[Collection(BackpressureCollection.Name)]
public sealed class BackpressureTests(ITestOutputHelper output)
{
    private sealed class TenMillisecondHandler : ConnectionHandler
    {
        public long Handled;

        public override async ValueTask OnDataAsync(IConnection connection, Frame frame)
        {
            await Task.Delay(10);
            Interlocked.Increment(ref Handled);
        }
    }

    private static long RssBytes() =>
        long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:"))["VmRSS:".Length..].Trim().Split(' ')[0]) * 1024;

    [Fact]
    public async Task A_fast_sender_to_a_slow_handler_must_block_on_its_send_side_keep_memory_flat_and_leave_other_peers_heartbeats_prompt()
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("SUPERVISOR_BACKPRESSURE_SECONDS"), out var s) ? s : 5;
        var handler = new TenMillisecondHandler();
        await using var service = await TestService.StartAsync(services: sc => sc.AddSingleton<ConnectionHandler>(handler));
        using var http = new HttpClient { BaseAddress = service.HttpBase, Timeout = TimeSpan.FromSeconds(10) };

        var bystanders = new List<TestPeer>();
        for (var i = 0; i < 10; i++) bystanders.Add(await TestPeer.ConnectAsync(service.Port));
        using var flooder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await flooder.ConnectAsync(System.Net.IPAddress.Loopback, service.Port);
        flooder.Blocking = false;
        var floodId = await IdOfAsync(service, flooder.LocalEndPoint!.ToString()!);

        // 64 frames of ~1 KiB per chunk; the flooder offers them as fast as the kernel takes them.
        var frame = $"{{\"type\":2,\"timestamp\":1,\"data\":\"{new string('x', 1000)}\"}}\n";
        var chunk = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(frame, 64)));
        long accepted = 0, wouldBlock = 0;
        var stop = false;
        var flood = new Thread(() =>
        {
            var offset = 0;
            while (!Volatile.Read(ref stop))
            {
                var sent = flooder.Send(chunk, offset, chunk.Length - offset, SocketFlags.None, out var error);
                if (error == SocketError.WouldBlock)
                {
                    Interlocked.Increment(ref wouldBlock);
                    Thread.Sleep(1);
                    continue;
                }
                if (error != SocketError.Success) throw new SocketException((int)error);
                Interlocked.Add(ref accepted, sent);
                offset = (offset + sent) % chunk.Length;
            }
        }) { IsBackground = true, Name = "flooder" };

        var rtts = new List<double>();
        var control = new List<double>();
        var measuring = false;
        var controlling = true;
        using var stopBystanders = new CancellationTokenSource();
        async Task HeartbeatAsync(TestPeer peer)
        {
            for (long seq = 1; !stopBystanders.IsCancellationRequested; seq++)
            {
                var sentAt = Stopwatch.GetTimestamp();
                await peer.SendHeartbeatAsync(seq);
                var response = await peer.ReceiveFrameAsync();
                Assert.Equal(seq, response!.Seq);
                var rtt = Stopwatch.GetElapsedTime(sentAt).TotalMilliseconds;
                if (Volatile.Read(ref measuring)) lock (rtts) rtts.Add(rtt);
                else if (Volatile.Read(ref controlling)) lock (control) control.Add(rtt);
                await Task.Delay(20);
            }
        }

        // Control: the same heartbeats without the flood, for the machine's own latency now (it is shared).
        var heartbeats = bystanders.Select(HeartbeatAsync).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(Math.Clamp(seconds / 4, 2, 10)));
        Volatile.Write(ref controlling, false);
        flood.Start();
        // Warm-up: JIT, pools, the status API, the kernel's buffers fill and the first pause happens.
        for (var i = 0; i < 8; i++)
        {
            await Task.Delay(250);
            await http.GetStringAsync($"api/connections/{floodId}");
        }
        var rssStart = RssBytes();
        var heapStart = GC.GetGCMemoryInfo().HeapSizeBytes;
        var threadsStart = System.Diagnostics.Process.GetCurrentProcess().Threads.Count;
        Volatile.Write(ref measuring, true);
        var clock = Stopwatch.StartNew();
        long rssMax = rssStart, acceptedBeforeLastSecond = 0;
        var paused = 0;
        long statusBytesIn = 0;
        var statuses = new List<JsonElement>();
        while (clock.Elapsed < TimeSpan.FromSeconds(seconds))
        {
            await Task.Delay(250);
            rssMax = Math.Max(rssMax, RssBytes());
            if (clock.Elapsed >= TimeSpan.FromSeconds(seconds - 1) && acceptedBeforeLastSecond == 0)
                acceptedBeforeLastSecond = Interlocked.Read(ref accepted);
            using var status = JsonDocument.Parse(await http.GetStringAsync($"api/connections/{floodId}"));
            var flow = status.RootElement.GetProperty("handler").Clone();
            statusBytesIn = status.RootElement.GetProperty("bytesIn").GetInt64();
            statuses.Add(flow);
            if (flow.GetProperty("readingPaused").GetBoolean()) paused++;
        }
        var lastSecondBytes = Interlocked.Read(ref accepted) - acceptedBeforeLastSecond;
        var heapEnd = GC.GetGCMemoryInfo().HeapSizeBytes;
        var threadsEnd = System.Diagnostics.Process.GetCurrentProcess().Threads.Count;
        var bytesRead = statusBytesIn;
        Volatile.Write(ref measuring, false);
        Volatile.Write(ref stop, true);
        flood.Join();
        await stopBystanders.CancelAsync();
        await Task.WhenAll(heartbeats.Select(t => t.ContinueWith(_ => { })));
        foreach (var t in heartbeats) if (t.IsFaulted) throw t.Exception!;

        double[] sorted, quiet;
        lock (rtts) sorted = [.. rtts.Order()];
        lock (control) quiet = [.. control.Order()];
        var p50 = sorted[sorted.Length / 2];
        var p99 = sorted[(int)(sorted.Length * 0.99)];
        var controlP99 = quiet[(int)(quiet.Length * 0.99)];
        var last = statuses[^1];
        output.WriteLine($"{seconds} s flood: handled {handler.Handled} frames ({handler.Handled / (seconds + 1.0):F0}/s), kernel took {accepted / 1024} KiB from the flooder, " +
                         $"{lastSecondBytes / 1024} KiB in the last second; WouldBlock {wouldBlock} times; RSS start {rssStart / 1024} KiB, max {rssMax / 1024} KiB " +
                         $"(+{(rssMax - rssStart) / 1024} KiB), GC heap {heapStart / 1024} → {heapEnd / 1024} KiB, committed {GC.GetGCMemoryInfo().TotalCommittedBytes / 1024} KiB, threads {threadsStart} → {threadsEnd}; the server read {bytesRead / 1024} KiB of it; reading paused in {paused} of {statuses.Count} status samples, last {last}; " +
                         $"bystander heartbeats: {sorted.Length}, RTT p50 {p50:F2} ms, p99 {p99:F2} ms, max {sorted[^1]:F2} ms; " +
                         $"without the flood: {quiet.Length}, p50 {quiet[quiet.Length / 2]:F2} ms, p99 {controlP99:F2} ms; load average {File.ReadAllText("/proc/loadavg").Trim()}");

        // Memory stays flat: the unread frames wait in the kernel's buffers, not in this process.
        Assert.True(rssMax - rssStart <= 16L * 1024 * 1024, $"RSS grew by {(rssMax - rssStart) / 1024} KiB");
        // The sender's side blocks: the kernel refuses its sends, and what it still takes is the handler's pace
        // (~100 frames of 1 KiB a second), not the loopback's (hundreds of MB a second).
        Assert.True(wouldBlock > 0);
        Assert.True(lastSecondBytes < 1024 * 1024, $"the flooder still sent {lastSecondBytes / 1024} KiB in the last second");
        // The bound is visible in the connection's status, and held (at most two reads of 8 KiB land after a pause).
        Assert.True(paused > 0);
        Assert.Equal(64, last.GetProperty("maxFramesInFlight").GetInt32());
        Assert.True(last.GetProperty("timesPaused").GetInt64() > 0);
        Assert.All(statuses, flow => Assert.InRange(flow.GetProperty("framesInFlight").GetInt32(), 0, 64 + 16));
        // Other peers' heartbeats are not held up by the slow handler: had they waited for it, they would take 10 ms
        // a frame ahead of them. On an idle machine p99 stays under 5 ms; the machine is shared, so the bound is the
        // control's p99 (the machine's own latency now) plus 20 ms, the spread measured between runs at load 60.
        Assert.True(p99 < controlP99 + 20, $"bystander heartbeat RTT p99 {p99:F2} ms with the flood, {controlP99:F2} ms without");
        foreach (var peer in bystanders) peer.Dispose();
    }

    private static async Task<string> IdOfAsync(TestService service, string remote)
    {
        for (var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5); DateTime.UtcNow < deadline; await Task.Delay(20))
            if ((await service.ConnectionsAsync()).Items.FirstOrDefault(c => c.Remote == remote) is { } found) return found.Id;
        throw new TimeoutException($"no connection from {remote} in the registry");
    }
}
