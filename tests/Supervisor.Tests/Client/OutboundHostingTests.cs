using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Supervisor.Client;
using Supervisor.Hosting;
using Supervisor.Messages.Protocol;
using Supervisor.Monitoring;
using Supervisor.Tests.Support;
using static Supervisor.Tests.Client.ClientTestSupport;

namespace Supervisor.Tests.Client;

/// <summary>The Akka.Hosting extensions of the outbound side, as a user's host would call them.</summary>
public sealed class OutboundHostingTests
{
    private sealed record UpstreamPool;

    [Fact]
    public async Task AddHeartbeatPool_and_AddHeartbeatClient_must_start_actors_reachable_through_the_actor_registry()
    {
        await using var service = await TestService.StartAsync();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton(_ => new SupervisorMetrics()); // created by the container, so disposed with it
        builder.Services.AddAkka("user", (akka, _) => akka
            .AddHeartbeatPool<UpstreamPool>("upstream", new PoolSettings(2, 50, Fast(service.Port)))
            .AddHeartbeatClient("single", Fast(service.Port)));
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var registry = host.Services.GetRequiredService<ActorRegistry>();
            var pool = registry.Get<UpstreamPool>();
            var client = registry.Get<HeartbeatClient>();
            await WaitUntilAsync(async () => (await pool.Ask<PoolProtocol.PoolStats>(PoolProtocol.GetStats.Instance, TimeSpan.FromSeconds(3))).Healthy == 2,
                TimeSpan.FromSeconds(5), "2 healthy pool members");
            await WaitUntilAsync(async () => (await client.Ask<ClientProtocol.ClientStatus>(ClientProtocol.GetStatus.Instance, TimeSpan.FromSeconds(3))).RttMs is not null,
                TimeSpan.FromSeconds(5), "a measured round trip");
            var lease = await pool.Ask<PoolProtocol.Lease>(new PoolProtocol.Get("k"), TimeSpan.FromSeconds(3));
            Assert.StartsWith("upstream-", lease.Client);
            // Three outbound connections reach the service.
            await service.WaitForStatsAsync(s => s.Active == 3);
        }
        finally
        {
            await host.StopAsync(TimeSpan.FromSeconds(5));
        }
        await service.WaitForStatsAsync(s => s.Active == 0);
    }
}
