using Akka.Actor;
using Akka.TestKit;
using Supervisor.Client;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Tests.Support;
using Xunit.Abstractions;
using static Supervisor.Messages.Protocol.ClientProtocol;
using static Supervisor.Tests.Client.ClientTestSupport;

namespace Supervisor.Tests.Client;

/// <summary>
/// A heartbeat client given the several endpoints of one service (<c>client.endpoints</c>, issue 16): its ranking, its
/// settings, and over real loopback sockets against our service: a shutdown hint sends it elsewhere, a refused connect
/// rotates it, and it goes back home when home answers again.
/// </summary>
public sealed class ClientEndpointsTests : Akka.TestKit.Xunit2.TestKit
{
    private readonly ITestOutputHelper _output;
    private readonly LogCapture _logs = new();
    private readonly SupervisorMetrics _metrics = new();

    public ClientEndpointsTests(ITestOutputHelper output) : base(output: output) => _output = output;

    protected override void AfterAll()
    {
        _metrics.Dispose();
        base.AfterAll();
    }

    private static readonly HostPort[] Three = [new("10.0.0.1", 9000), new("10.0.0.2", 9000), new("10.0.0.3", 9000)];

    private static T Next<T>(TestProbe events, TimeSpan within, Func<T, bool>? match = null) where T : class =>
        (T)events.FishForMessage(m => m is T t && (match?.Invoke(t) ?? true), within);

    private (IActorRef Client, TestProbe Events) Start(string name, ClientSettings settings)
    {
        var events = CreateTestProbe();
        var client = Sys.ActorOf(HeartbeatClient.Props(name, settings, Services(_logs, _metrics), [events.Ref], homeKey: name), name);
        return (client, events);
    }

    // ---- the ranking ----

    [Fact]
    public void Ranking_must_give_every_endpoint_an_even_share_of_homes_and_spread_each_homes_clients_evenly_over_the_others()
    {
        const int clients = 6000;
        var rankings = Enumerable.Range(0, clients).Select(i => new EndpointRanking(Three, $"c{i}")).ToArray();
        foreach (var endpoint in Three)
        {
            var homed = rankings.Where(r => r.Ranked[0] == endpoint).ToArray();
            Assert.InRange(homed.Length, 1800, 2200);
            // Its clients' second choices: the two other endpoints, half each (binomial, n = 2000: sd 22).
            var seconds = homed.GroupBy(r => r.Ranked[r.AfterShutdown(0)]).ToDictionary(g => g.Key, g => g.Count());
            Assert.Equal(2, seconds.Count);
            Assert.DoesNotContain(endpoint, seconds.Keys);
            Assert.All(seconds.Values, count => Assert.InRange(count, homed.Length * 0.43, homed.Length * 0.57));
        }
    }

    [Fact]
    public void Ranking_must_be_stable_and_move_only_the_clients_of_an_endpoint_taken_out_of_the_list()
    {
        for (var i = 0; i < 500; i++)
        {
            var all = new EndpointRanking(Three, $"c{i}");
            Assert.Equal(all.Ranked, new EndpointRanking(Three.Reverse().ToArray(), $"c{i}").Ranked);
            var withoutThird = new EndpointRanking(Three[..2], $"c{i}");
            if (all.Ranked[0] != Three[2]) Assert.Equal(all.Ranked[0], withoutThird.Ranked[0]);
            else Assert.Equal(all.Ranked[1], withoutThird.Ranked[0]);
        }
    }

    [Fact]
    public void Ranking_must_never_send_a_client_back_to_the_endpoint_going_away_and_rotate_through_all_on_failures()
    {
        var ranking = new EndpointRanking(Three, "c");
        for (var leaving = 0; leaving < 3; leaving++)
            Assert.NotEqual(leaving, ranking.AfterShutdown(leaving));
        // Away from home, a shutdown sends the client home; at home, to its second choice.
        Assert.Equal(1, ranking.AfterShutdown(0));
        Assert.Equal(0, ranking.AfterShutdown(2));
        Assert.Equal([1, 2, 0], new[] { 0, 1, 2 }.Select(ranking.Next));
        var one = new EndpointRanking(Three[..1], "c");
        Assert.Equal(0, one.AfterShutdown(0));
        Assert.Equal(0, one.Next(0));
    }

    // ---- settings ----

    private static ClientSettings Read(string hocon) => SupervisorConfig.Read(SupervisorConfig.Build(hocon, null)).Client;

    [Fact]
    public void Settings_must_read_endpoints_beside_an_unchanged_single_endpoint()
    {
        var one = Read("supervisor.client.endpoint = \"127.0.0.1:9000\"");
        Assert.Empty(one.Endpoints);
        Assert.Equal(["127.0.0.1:9000"], one.AllEndpoints.Select(e => e.ToString()));
        Assert.Equal(TimeSpan.FromSeconds(10), one.HomeReturnInterval);

        var cluster = Read("supervisor.client { endpoints = [\"127.0.0.1:9001\", \"127.0.0.1:9002\"], home-return-interval = off }");
        Assert.Equal(["127.0.0.1:9001", "127.0.0.1:9002"], cluster.AllEndpoints.Select(e => e.ToString()));
        Assert.Equal("127.0.0.1:9001", cluster.Endpoint!.ToString());
        Assert.Null(cluster.HomeReturnInterval);

        // The command line's --addr names one server: the list is set aside.
        Assert.Equal(["127.0.0.1:7000"], cluster.WithEndpoint("127.0.0.1:7000").AllEndpoints.Select(e => e.ToString()));
    }

    [Theory]
    [InlineData("supervisor.client { endpoint = \"127.0.0.1:1\", endpoints = [\"127.0.0.1:2\"] }", "supervisor.client.endpoint")]
    [InlineData("supervisor.client.endpoints = [\"127.0.0.1:2\", \"127.0.0.1:2\"]", "supervisor.client.endpoints")]
    [InlineData("supervisor.client.endpoints = [\"nowhere\"]", "supervisor.client.endpoints")]
    [InlineData("supervisor.client.home-return-interval = -1s", "supervisor.client.home-return-interval")]
    public void Settings_must_refuse_endpoints_that_contradict_each_other(string hocon, string key)
    {
        var error = Assert.Throws<ConfigurationError>(() => Read(hocon));
        Assert.Equal(key, error.Key);
    }

    // ---- over sockets ----

    private static ClientSettings Cluster(IReadOnlyList<int> ports, TimeSpan? homeReturn) =>
        Fast(ports[0], minBackoff: TimeSpan.FromMilliseconds(100), maxBackoff: TimeSpan.FromSeconds(5)).WithEndpoints(
            ports.Select(p => new HostPort("127.0.0.1", p)).ToArray()) with { HomeReturnInterval = homeReturn };

    private static int PortOf(string remote) => int.Parse(remote[(remote.LastIndexOf(':') + 1)..]);

    [Fact]
    public async Task Clients_must_reconnect_to_another_node_at_the_hinted_moment_and_go_back_home_once_it_is_back()
    {
        var ports = Enumerable.Range(0, 3).Select(_ => FreePort()).ToArray();
        var spread = TimeSpan.FromSeconds(1);
        string Config(int port) => $"supervisor.tcp.port = {port}\nsupervisor.shutdown.reconnect-hint.spread = {spread.TotalMilliseconds}ms";
        var services = new TestService?[3];
        try
        {
            for (var i = 0; i < 3; i++) services[i] = await TestService.StartAsync(Config(ports[i]));
            var settings = Cluster(ports, TimeSpan.FromMilliseconds(300));
            var clients = Enumerable.Range(0, 9).Select(i => (Name: $"member-{i}", Started: Start($"member-{i}", settings))).ToArray();
            var homes = clients.ToDictionary(c => c.Name,
                c => new EndpointRanking(settings.AllEndpoints, c.Name).Ranked[0].Port);
            foreach (var (name, (_, events)) in clients)
                Assert.Equal(homes[name], PortOf(Next<Connected>(events, TimeSpan.FromSeconds(5)).Remote));

            // The node that is home to the most of them (at least 3 of 9) restarts.
            var leaving = ports.OrderByDescending(p => homes.Values.Count(h => h == p)).First();
            var leavingIndex = Array.IndexOf(ports, leaving);
            var moving = clients.Where(c => homes[c.Name] == leaving).ToArray();
            _output.WriteLine($"node {leaving} is home to {moving.Length} of 9");
            await services[leavingIndex]!.DisposeAsync();

            foreach (var (name, (_, events)) in moving)
            {
                var disconnected = Next<Disconnected>(events, TimeSpan.FromSeconds(5));
                Assert.True(CloseReasons.TryReadReconnectHint(disconnected.Detail, out var hint), disconnected.Detail);
                var reconnecting = Next<Reconnecting>(events, TimeSpan.FromSeconds(2));
                Assert.True(reconnecting.AsServerAsked);
                Assert.Equal(hint, reconnecting.Delay);
                Assert.NotEqual($"127.0.0.1:{leaving}", reconnecting.Endpoint);
                var elsewhere = Next<Connected>(events, spread + TimeSpan.FromSeconds(5));
                Assert.NotEqual(leaving, PortOf(elsewhere.Remote));
                Assert.Equal(0, elsewhere.Attempt);
            }
            // The others were not disturbed.
            foreach (var (_, (_, events)) in clients.Except(moving))
                Assert.DoesNotContain(events.ReceiveWhile<object>(TimeSpan.FromMilliseconds(50), m => m), m => m is Disconnected or Connected);

            services[leavingIndex] = await TestService.StartAsync(Config(leaving));
            foreach (var (name, (client, events)) in moving)
            {
                var left = Next<Disconnected>(events, TimeSpan.FromSeconds(10));
                Assert.Equal(CloseReason.AdminClosed, left.Reason);
                Assert.Contains($"home endpoint 127.0.0.1:{leaving}", left.Detail);
                Assert.Equal(leaving, PortOf(Next<Connected>(events, TimeSpan.FromSeconds(2)).Remote));
                var status = await client.Ask<ClientStatus>(GetStatus.Instance, TimeSpan.FromSeconds(3));
                Assert.Equal($"127.0.0.1:{leaving}", status.Endpoint);
            }
            // Every node holds its own clients again, and nothing else: the away connections were closed.
            for (var i = 0; i < 3; i++)
            {
                var expected = homes.Values.Count(h => h == ports[i]);
                await services[i]!.WaitForStatsAsync(s => s.Active == expected, TimeSpan.FromSeconds(10));
            }
            Assert.Contains(_logs.Lines, l => l.Message.Contains($"its home endpoint 127.0.0.1:{leaving} answers again", StringComparison.Ordinal));
        }
        finally
        {
            foreach (var service in services)
                if (service is not null) await service.DisposeAsync();
        }
    }

    [Fact]
    public async Task Client_must_rotate_through_its_ranking_on_refused_connects_and_keep_trying_home_while_away()
    {
        await using var live = await TestService.StartAsync();
        // Two endpoints that refuse (nothing listens) and one that answers; the ranking decides the order.
        var ports = new[] { FreePort(), FreePort(), live.Port };
        var settings = Cluster(ports, TimeSpan.FromMilliseconds(200)) with
        {
            Reconnect = new BackoffSettings(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(100), 2.0, TimeSpan.FromSeconds(30)),
        };
        // A name whose home is a refusing endpoint, so it ends away from home.
        var name = Enumerable.Range(0, 100).Select(i => $"rotating-{i}")
            .First(n => new EndpointRanking(settings.AllEndpoints, n).Ranked[0].Port != live.Port);
        var ranked = new EndpointRanking(settings.AllEndpoints, name).Ranked.Select(e => e.ToString()).ToArray();
        var (_, events) = Start(name, settings);

        // Each refused connect moves to the next endpoint of the ranking, after the backoff.
        var tried = new List<string> { ranked[0] };
        while (tried[^1] != $"127.0.0.1:{live.Port}")
        {
            var reconnecting = Next<Reconnecting>(events, TimeSpan.FromSeconds(3));
            Assert.False(reconnecting.AsServerAsked);
            Assert.Contains("connection refused", reconnecting.LastError);
            tried.Add(reconnecting.Endpoint!);
        }
        Assert.Equal(ranked.Take(tried.Count), tried);
        Assert.Equal(live.Port, PortOf(Next<Connected>(events, TimeSpan.FromSeconds(3)).Remote));

        // Away from a home that refuses: the tries (every 200 ms) fail quietly, the connection in use carries on.
        var during = events.ReceiveWhile<object>(TimeSpan.FromMilliseconds(1000), m => m);
        Assert.DoesNotContain(during, m => m is Disconnected or Connected or Reconnecting);
        Assert.Contains(during, m => m is HeartbeatAnswered);
        Assert.Equal(1, (await live.StatsAsync()).Active);
    }
}
