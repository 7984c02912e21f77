using Microsoft.Extensions.DependencyInjection;
using Supervisor.Connections;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Hardening;

/// <summary>After every kind of fault the registry's books balance: accepted = active + closed by all reasons.</summary>
[Collection(Connections.ProcessWideResources.Name)]
public sealed class BookkeepingTests(ITestOutputHelper output)
{
    private sealed class FailOnBoom : ConnectionHandler
    {
        public override ValueTask OnDataAsync(IConnection connection, Frame frame)
        {
            if (frame.Data == "boom") throw new InvalidOperationException("handler bug");
            connection.Send(frame);
            return default;
        }
    }

    [Fact]
    public async Task A_mix_of_faults_must_leave_accepted_equal_to_active_plus_every_close_and_no_descriptor_behind()
    {
        await using var service = await TestService.StartAsync("""
            supervisor.heartbeat { interval = 200ms, timeout = 600ms }
            supervisor.tcp { max-connections = 30, max-frame-length = 1KiB, limits { max-frames-per-second = 20, frame-burst = 20 } }
            # Silent peers must meet the heartbeat deadline, and a full listener refuse rather than evict them.
            supervisor.tcp.limits.first-frame-timeout = off
            """, services: s => s.AddSingleton<ConnectionHandler, FailOnBoom>());
        var baseline = Directory.GetFiles("/proc/self/fd").Length;
        var survivors = new List<TestPeer>();

        async Task Fault(Func<TestPeer, Task> act)
        {
            var peer = await TestPeer.ConnectAsync(service.Port);
            await act(peer);
            await peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(3));
            peer.Dispose();
        }

        for (var round = 0; round < 3; round++)
        {
            await Fault(p => p.SendAsync("{\"type\":2,\"data\":\"boom\"}\n"));               // internal-error
            await Fault(p => p.SendAsync("garbage\n"));                                         // protocol-error
            await Fault(p => p.SendAsync(new string('x', 2000)));                               // frame-too-large
            await Fault(p => p.SendAsync(string.Concat(Enumerable.Repeat("{\"type\":0}\n", 60)))); // rate-limited
            await Fault(p => Task.CompletedTask);                                               // heartbeat-timeout
            var reset = await TestPeer.ConnectAsync(service.Port);                              // peer-reset
            await reset.SendHeartbeatAsync(1);
            await reset.ReceiveFrameAsync();
            reset.Abort();
            var closing = await TestPeer.ConnectAsync(service.Port);                            // peer-closed
            closing.Socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
            await closing.ReceiveUntilClosedAsync();
            closing.Dispose();
            var live = await TestPeer.ConnectAsync(service.Port);
            await live.SendHeartbeatAsync(1);
            await live.ReceiveFrameAsync();
            survivors.Add(live);
        }
        // Fill to capacity, then one more is refused (rejected-capacity). A newcomer waits up to a second
        // for a slot to free up, and a closing connection holds none: keep every holder heartbeating, and
        // count only open ones.
        var fillers = new List<TestPeer>();
        using var keepAlive = new CancellationTokenSource();
        var heartbeating = Task.Run(async () =>
        {
            while (!keepAlive.IsCancellationRequested)
            {
                TestPeer[] holders;
                lock (fillers) holders = [.. fillers, .. survivors];
                foreach (var peer in holders)
                {
                    try { await peer.SendHeartbeatAsync(); }
                    catch (System.Net.Sockets.SocketException) { } // closed already: the counts below tell
                }
                await Task.Delay(100);
            }
        });
        async Task<int> OpenNow()
        {
            for (var deadline = DateTime.UtcNow.AddSeconds(10); ; await Task.Delay(50))
            {
                var items = (await service.ConnectionsAsync()).Items;
                if (items.All(c => c.State != ConnectionState.Closing) || DateTime.UtcNow > deadline) return items.Count;
            }
        }
        // The registry still lists a connection whose close was decided until its linger (close-linger = 1 s)
        // ends; the supervisor no longer counts it. Let those go before counting the slots held.
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var open = await OpenNow();
        var more = await Task.WhenAll(Enumerable.Range(0, 30 - open).Select(_ => TestPeer.ConnectAsync(service.Port)));
        lock (fillers) fillers.AddRange(more);
        await service.WaitForStatsAsync(s => s.Active == 30);
        Assert.Equal(30, await OpenNow());
        using (var refused = await TestPeer.ConnectAsync(service.Port))
            Assert.StartsWith("rejected-capacity", Assert.Single(await refused.ReceiveUntilClosedAsync()).Data);
        keepAlive.Cancel();
        await heartbeating;
        foreach (var peer in fillers.Concat(survivors)) peer.Dispose();

        var stats = await service.WaitForStatsAsync(s => s.Active == 0, TimeSpan.FromSeconds(10));
        var closed = stats.ClosedByReason.Values.Sum();
        output.WriteLine($"accepted {stats.Accepted}, active {stats.Active}, closed {closed}: " +
            string.Join(", ", stats.ClosedByReason.Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.Equal(stats.Accepted, stats.Active + closed);
        foreach (var reason in new[] { CloseReason.InternalError, CloseReason.ProtocolError, CloseReason.FrameTooLarge, CloseReason.RateLimited,
                     CloseReason.HeartbeatTimeout, CloseReason.PeerReset, CloseReason.PeerClosed, CloseReason.RejectedCapacity })
            Assert.True(stats.Closed(reason) > 0, $"no {reason.ToWireName()} close");

        GC.Collect();
        GC.WaitForPendingFinalizers();
        var after = Directory.GetFiles("/proc/self/fd").Length;
        output.WriteLine($"open files {baseline} -> {after}");
        Assert.InRange(after, baseline - 5, baseline + 5);
    }
}
