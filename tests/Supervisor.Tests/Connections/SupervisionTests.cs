using Microsoft.Extensions.DependencyInjection;
using Supervisor.Connections;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;

namespace Supervisor.Tests.Connections;

/// <summary>The connection supervisor: failures stop one connection; capacity refuses the extra one.</summary>
public sealed class SupervisionTests
{
    private sealed class FailOnBoomHandler : ConnectionHandler
    {
        public override ValueTask OnDataAsync(IConnection connection, Frame frame)
        {
            if (frame.Data == "boom") throw new InvalidOperationException("data handler bug");
            connection.Send(frame);
            return default;
        }
    }

    [Fact]
    public async Task A_throwing_data_handler_must_stop_only_its_connection_with_internal_error()
    {
        await using var service = await TestService.StartAsync(services: s => s.AddSingleton<ConnectionHandler, FailOnBoomHandler>());
        using var victim = await TestPeer.ConnectAsync(service.Port);
        using var bystander = await TestPeer.ConnectAsync(service.Port);
        await bystander.SendAsync("{\"type\":2,\"data\":\"before\"}\n");
        Assert.Equal("before", (await bystander.ReceiveFrameAsync())!.Data);

        await victim.SendAsync("{\"type\":2,\"data\":\"boom\"}\n");
        var notice = Assert.Single(await victim.ReceiveUntilClosedAsync());
        Assert.StartsWith("internal-error: ", notice.Data);

        await bystander.SendAsync("{\"type\":2,\"data\":\"after\"}\n");
        Assert.Equal("after", (await bystander.ReceiveFrameAsync())!.Data);
        var stats = await service.WaitForStatsAsync(s => s.Closed(CloseReason.InternalError) == 1);
        Assert.Equal(1, stats.Active);
    }

    [Fact]
    public async Task A_connection_over_max_connections_must_be_refused_with_rejected_capacity()
    {
        await using var service = await TestService.StartAsync("supervisor.tcp.max-connections = 2");
        using var first = await TestPeer.ConnectAsync(service.Port);
        using var second = await TestPeer.ConnectAsync(service.Port);
        // Both have sent a frame: a full listener would evict a connection that has not (first-frame-timeout is on by default).
        foreach (var peer in new[] { first, second })
        {
            await peer.SendHeartbeatAsync(1);
            Assert.Equal(FrameType.HeartbeatResponse, (await peer.ReceiveFrameAsync())!.Type);
        }
        await service.WaitForStatsAsync(s => s.Active == 2);

        using var third = await TestPeer.ConnectAsync(service.Port);
        var notice = Assert.Single(await third.ReceiveUntilClosedAsync());
        Assert.Equal(FrameType.ErrorNotice, notice.Type);
        Assert.StartsWith("rejected-capacity: ", notice.Data);
        var stats = await service.WaitForStatsAsync(s => s.Closed(CloseReason.RejectedCapacity) == 1);
        Assert.Equal(2, stats.Active);

        // A freed slot is usable again.
        first.Dispose();
        await service.WaitForStatsAsync(s => s.Active == 1);
        using var fourth = await TestPeer.ConnectAsync(service.Port);
        await fourth.SendHeartbeatAsync(4);
        Assert.Equal(4, (await fourth.ReceiveFrameAsync())!.Seq);
    }

    [Fact]
    public async Task Admin_close_must_close_with_admin_closed()
    {
        await using var service = await TestService.StartAsync();
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await service.WaitForStatsAsync(s => s.Active == 1);
        var id = (await service.ConnectionsAsync()).Items.Single().Id;
        var accepted = await Akka.Actor.Futures.Ask<Supervisor.Messages.Protocol.ConnectionCommands.CloseAccepted>(
            service.Connections, new Supervisor.Messages.Protocol.ConnectionCommands.CloseConnection(id, CloseReason.AdminClosed), TimeSpan.FromSeconds(5));
        Assert.True(accepted.Found);
        Assert.StartsWith("admin-closed: ", Assert.Single(await peer.ReceiveUntilClosedAsync()).Data);
        await service.WaitForStatsAsync(s => s.Closed(CloseReason.AdminClosed) == 1 && s.Active == 0);
    }
}
