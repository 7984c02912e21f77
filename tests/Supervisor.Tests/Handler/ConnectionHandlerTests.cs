using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Supervisor.Connections;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;

namespace Supervisor.Tests.Handler;

/// <summary>The application's connection handler over real sockets: asynchronous callbacks, order, failures, the hub.</summary>
public sealed class ConnectionHandlerTests
{
    /// <summary>Awaits before it answers, and records what it saw per connection (and whether two calls overlapped).</summary>
    private sealed class AwaitingHandler : ConnectionHandler
    {
        public readonly ConcurrentDictionary<string, List<string>> Seen = new();
        public readonly ConcurrentDictionary<string, (CloseReason Reason, string Detail)> Closed = new();
        public readonly ConcurrentDictionary<string, TaskCompletionSource> Gates = new();
        public int Overlaps;
        private readonly ConcurrentDictionary<string, int> _running = new();

        public override async ValueTask OnConnectedAsync(IConnection connection)
        {
            await Task.Delay(20);
            Seen[connection.Id] = ["connected"];
        }

        public override async ValueTask OnDataAsync(IConnection connection, Frame frame)
        {
            if (_running.AddOrUpdate(connection.Id, 1, (_, n) => n + 1) > 1) Interlocked.Increment(ref Overlaps);
            try
            {
                await Task.Delay(Random.Shared.Next(0, 4));
                Seen[connection.Id].Add(frame.Data!);
                switch (frame.Data)
                {
                    case "boom":
                        throw new InvalidOperationException("handler bug after an await");
                    case "hang":
                        await Task.Delay(Timeout.Infinite);
                        break;
                    case "wait":
                        await Gates.GetOrAdd(connection.Id, _ => new TaskCompletionSource()).Task;
                        break;
                    case "bye":
                        connection.Close(CloseReason.AdminClosed, "the application said goodbye");
                        return;
                    case "status":
                        var status = await connection.GetStatusAsync();
                        connection.Send(new Frame(FrameType.Data, 0, $"in flight {status!.Handler.FramesInFlight} of {status.Handler.MaxFramesInFlight}"));
                        return;
                }
                Assert.True(connection.Send(frame with { Data = "echo " + frame.Data }));
            }
            finally
            {
                _running.AddOrUpdate(connection.Id, 0, (_, n) => n - 1);
            }
        }

        public override ValueTask OnClosedAsync(IConnection connection, CloseReason reason, string detail)
        {
            Closed[connection.Id] = (reason, detail);
            return default;
        }
    }

    private static async Task<(TestService Service, AwaitingHandler Handler)> StartAsync(string hocon = "")
    {
        var handler = new AwaitingHandler();
        var service = await TestService.StartAsync(hocon, services: s => s.AddSingleton<ConnectionHandler>(handler));
        return (service, handler);
    }

    private static Task SendDataAsync(TestPeer peer, string data) => peer.SendFrameAsync(new Frame(FrameType.Data, 1, data));

    private static async Task<string> IdOfAsync(TestService service, TestPeer peer)
    {
        var local = peer.Socket.LocalEndPoint!.ToString();
        for (var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5); DateTime.UtcNow < deadline; await Task.Delay(20))
            if ((await service.ConnectionsAsync()).Items.FirstOrDefault(c => c.Remote == local) is { } found) return found.Id;
        throw new TimeoutException($"no connection from {local} in the registry");
    }

    [Fact]
    public async Task An_async_handler_must_get_the_frames_of_one_connection_in_order_one_call_at_a_time_after_on_connected()
    {
        var (service, handler) = await StartAsync();
        await using var _ = service;
        using var first = await TestPeer.ConnectAsync(service.Port);
        using var second = await TestPeer.ConnectAsync(service.Port);
        var sent = Enumerable.Range(0, 40).Select(i => $"m{i}").ToArray();
        // All at once, in one write each: the frames queue behind the awaiting handler.
        await first.SendAsync(string.Concat(sent.Select(d => $"{{\"type\":2,\"data\":\"{d}\"}}\n")));
        await second.SendAsync(string.Concat(sent.Select(d => $"{{\"type\":2,\"data\":\"{d}\"}}\n")));

        foreach (var peer in new[] { first, second })
        {
            var echoed = new List<string>();
            for (var i = 0; i < sent.Length; i++) echoed.Add((await peer.ReceiveFrameAsync())!.Data!);
            Assert.Equal(sent.Select(d => "echo " + d), echoed);
            Assert.Equal(["connected", .. sent], handler.Seen[await IdOfAsync(service, peer)]);
        }
        Assert.Equal(0, handler.Overlaps);
    }

    [Fact]
    public async Task A_heartbeat_must_be_answered_while_the_handler_awaits_a_frame_read_before_it()
    {
        var (service, handler) = await StartAsync();
        await using var _ = service;
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await SendDataAsync(peer, "wait");
        await peer.SendHeartbeatAsync(7);

        var response = await peer.ReceiveFrameAsync();
        Assert.Equal(FrameType.HeartbeatResponse, response!.Type);
        Assert.Equal(7, response.Seq);
        handler.Gates.GetOrAdd(await IdOfAsync(service, peer), _ => new TaskCompletionSource()).SetResult();
        Assert.Equal("echo wait", (await peer.ReceiveFrameAsync())!.Data);
    }

    [Fact]
    public async Task A_handler_that_fails_after_an_await_must_close_only_its_connection_with_internal_error_and_be_told()
    {
        var (service, handler) = await StartAsync();
        await using var _ = service;
        using var victim = await TestPeer.ConnectAsync(service.Port);
        using var bystander = await TestPeer.ConnectAsync(service.Port);
        var victimId = await IdOfAsync(service, victim);

        await SendDataAsync(victim, "boom");
        Assert.Equal("internal-error: the connection handler failed", Assert.Single(await victim.ReceiveUntilClosedAsync()).Data);
        await SendDataAsync(bystander, "still here");
        Assert.Equal("echo still here", (await bystander.ReceiveFrameAsync())!.Data);
        await service.WaitForStatsAsync(s => s.Closed(CloseReason.InternalError) == 1 && s.Active == 1);
        Assert.Equal(CloseReason.InternalError, handler.Closed[victimId].Reason);
        Assert.Contains(service.Logs.Lines, e => e.Message.Contains($"Connection {victimId}: the connection handler failed"));
    }

    [Fact]
    public async Task A_handler_that_outruns_handler_timeout_must_close_only_its_connection_with_internal_error()
    {
        var (service, _) = await StartAsync("supervisor.handler.timeout = 300ms");
        await using var __ = service;
        using var victim = await TestPeer.ConnectAsync(service.Port);
        using var bystander = await TestPeer.ConnectAsync(service.Port);

        await SendDataAsync(victim, "hang");
        var notice = Assert.Single(await victim.ReceiveUntilClosedAsync());
        Assert.Equal("internal-error: the connection handler did not complete within handler.timeout (300ms)", notice.Data);
        await SendDataAsync(bystander, "fine");
        Assert.Equal("echo fine", (await bystander.ReceiveFrameAsync())!.Data);
    }

    [Fact]
    public async Task A_handler_must_close_with_its_reason_and_read_its_connections_status()
    {
        var (service, handler) = await StartAsync();
        await using var _ = service;
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await SendDataAsync(peer, "status");
        Assert.Equal("in flight 1 of 64", (await peer.ReceiveFrameAsync())!.Data);

        await SendDataAsync(peer, "bye");
        Assert.Equal("admin-closed: the application said goodbye", Assert.Single(await peer.ReceiveUntilClosedAsync()).Data);
        await service.WaitForStatsAsync(s => s.Closed(CloseReason.AdminClosed) == 1);
    }

    [Fact]
    public async Task The_hub_must_push_a_frame_to_a_connection_by_id_from_outside_the_handler_and_tell_opens_and_closes()
    {
        var (service, _) = await StartAsync();
        await using var __ = service;
        var hub = service.Services.GetRequiredService<IConnectionHub>();
        using var watching = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var events = new List<ConnectionEvent>();
        var enumerator = hub.Events(watching.Token).GetAsyncEnumerator(watching.Token);
        var next = enumerator.MoveNextAsync().AsTask(); // subscribes before the connection opens

        using var peer = await TestPeer.ConnectAsync(service.Port);
        var id = await IdOfAsync(service, peer);
        Assert.True(await next);
        Assert.Equal(id, Assert.IsType<ConnectionEvents.Opened>(enumerator.Current).ConnectionId);

        // From a thread of the application's own, long after any handler call.
        Assert.True(await Task.Run(() => hub.Send(id, new Frame(FrameType.Data, 1, "pushed"))));
        Assert.Equal("pushed", (await peer.ReceiveFrameAsync())!.Data);
        Assert.False(hub.Send("c-nobody", new Frame(FrameType.Data, 1, "lost")));
        Assert.Equal((await hub.GetStatusAsync(id))!.Id, id);

        Assert.True(hub.Close(id, CloseReason.AdminClosed, "closed by the application"));
        Assert.Equal("admin-closed: closed by the application", Assert.Single(await peer.ReceiveUntilClosedAsync()).Data);
        Assert.True(await enumerator.MoveNextAsync());
        var closed = Assert.IsType<ConnectionEvents.Closed>(enumerator.Current);
        Assert.Equal((id, CloseReason.AdminClosed), (closed.ConnectionId, closed.Reason));
        // Counted closed as soon as the close is decided; gone from the hub once its socket is released (the peer's FIN seen).
        await service.WaitForStatsAsync(s => s.Active == 0);
        peer.Dispose();
        var released = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (await hub.GetStatusAsync(id) is not null && DateTime.UtcNow < released) await Task.Delay(20);
        Assert.False(hub.Send(id, new Frame(FrameType.Data, 1, "too late")));
        await enumerator.DisposeAsync();
    }
}
