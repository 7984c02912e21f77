using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using Akka.Actor;
using Supervisor.Client;
using Supervisor.Messages.Protocol;
using Supervisor.Monitoring;
using Supervisor.Tests.Support;
using Xunit.Abstractions;
using static Supervisor.Messages.Protocol.PoolProtocol;
using static Supervisor.Tests.Client.ClientTestSupport;

namespace Supervisor.Tests.Client;

/// <summary>The supervised pool (issue 5) against our service, each connection through a proxy that can silence it.</summary>
public sealed class HeartbeatPoolTests : Akka.TestKit.Xunit2.TestKit
{
    private readonly ITestOutputHelper _output;

    public HeartbeatPoolTests(ITestOutputHelper output) : base(output: output) => _output = output;

    private static readonly TimeSpan Ask = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task Pool_must_never_lease_a_silenced_connection_and_fail_its_keys_over_within_one_heartbeat_timeout_then_heal()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = new TcpProxy(service.Port);
        using var metrics = new SupervisorMetrics();
        var logs = new LogCapture();
        var timeout = TimeSpan.FromMilliseconds(600);
        var settings = new PoolSettings(4, 100,
            Fast(proxy.Port, interval: TimeSpan.FromMilliseconds(100), timeout: timeout,
                minBackoff: TimeSpan.FromMilliseconds(300), maxBackoff: TimeSpan.FromMilliseconds(600)));
        // In the service's actor system, where its members' lifecycle events reach the service's registry.
        var pool = service.System.ActorOf(HeartbeatPool.Props("p", settings, Services(logs, metrics, service.Registry)), "pool");

        await WaitUntilAsync(async () => (await Stats(pool)).Healthy == 4, TimeSpan.FromSeconds(5), "4 healthy members");
        var keys = Enumerable.Range(0, 400).Select(i => $"user-{i}").ToArray();
        var owner = new Dictionary<string, int>();
        foreach (var key in keys) owner[key] = (await pool.Ask<Lease>(new Get(key), Ask)).Member;
        // Consistent hashing: leases follow the ring, and every member owns a share.
        var ring = new HashRing(Enumerable.Range(0, 4).Select(i => HeartbeatPool.MemberName("p", i)).ToArray(), 100);
        Assert.All(keys, k => Assert.Equal(ring.Owner(k), owner[k]));
        var shares = owner.Values.GroupBy(m => m).ToDictionary(g => g.Key, g => g.Count());
        _output.WriteLine($"keys per member: {string.Join(", ", shares.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}"))}");
        Assert.Equal(4, shares.Count);
        Assert.All(shares.Values, n => Assert.InRange(n, 40, 180));

        const int victim = 1;
        var victimKeys = keys.Where(k => owner[k] == victim).ToArray();
        var victimLease = await pool.Ask<Lease>(new Get(victimKeys[0]), Ask);
        var victimStatus = await victimLease.Connection.Ask<ClientProtocol.ClientStatus>(ClientProtocol.GetStatus.Instance, Ask);
        var victimPort = IPEndPoint.Parse(victimStatus.Local!).Port;
        Assert.True(proxy.Silence(victimPort), "the victim's proxy pair exists");
        var silencedAt = Stopwatch.GetTimestamp();

        // Within one heartbeat timeout, none of the victim's keys is leased to it any more.
        var failover = await WaitUntilAsync(async () =>
        {
            foreach (var key in victimKeys)
                if ((await pool.Ask<Lease>(new Get(key), Ask)).Member == victim) return false;
            return true;
        }, timeout, "failover of the silenced member's keys", pollMs: 10);
        _output.WriteLine($"keys of the silenced member leased elsewhere {failover.TotalMilliseconds:F0} ms after the silence (heartbeat interval 100 ms, timeout {timeout.TotalMilliseconds:F0} ms)");
        foreach (var key in victimKeys)
        {
            var lease = await pool.Ask<Lease>(new Get(key), Ask);
            Assert.NotEqual(victim, lease.Member);
            Assert.Equal(ring.Walk(key).First(m => m != victim), lease.Member);
        }
        // Keys of the other members do not move.
        foreach (var key in keys.Where(k => owner[k] != victim).Take(50))
            Assert.Equal(owner[key], (await pool.Ask<Lease>(new Get(key), Ask)).Member);

        // The silent member times out and reconnects (a fresh proxy pair): 3 healthy / 1 reconnecting, then 4 healthy.
        PoolStats reconnecting = null!;
        await WaitUntilAsync(async () => (reconnecting = await Stats(pool)) is { Healthy: 3, Reconnecting: 1 }, TimeSpan.FromSeconds(3), "3 healthy / 1 reconnecting", pollMs: 10);
        var downAfter = Stopwatch.GetElapsedTime(silencedAt);
        Assert.Equal(PoolProtocol.MemberHealth.Reconnecting, reconnecting.Members[victim].Health);
        Assert.Equal(0, reconnecting.Suspect);
        Assert.Equal(4, reconnecting.Total);
        var observed = ObservePoolGauge(metrics.Meter);
        Assert.Equal((3, 0, 1), (observed["healthy"], observed["suspect"], observed["reconnecting"]));
        await WaitUntilAsync(async () => (await Stats(pool)).Healthy == 4, TimeSpan.FromSeconds(3), "4 healthy again", pollMs: 10);
        _output.WriteLine($"3 healthy / 1 reconnecting {downAfter.TotalMilliseconds:F0} ms after the silence; 4 healthy {Stopwatch.GetElapsedTime(silencedAt).TotalMilliseconds:F0} ms after it");
        // The member is given up at the heartbeat timeout after its last frame, not before.
        Assert.InRange(downAfter, timeout - TimeSpan.FromMilliseconds(150), timeout + TimeSpan.FromMilliseconds(500));
        observed = ObservePoolGauge(metrics.Meter);
        Assert.Equal(4, observed["healthy"]);
        foreach (var key in victimKeys.Take(20))
            Assert.Equal(victim, (await pool.Ask<Lease>(new Get(key), Ask)).Member);

        // SendTo goes through the leased member; the echo server answers on that member's connection.
        var events = CreateTestProbe();
        victimLease.Connection.Tell(new ClientProtocol.Subscribe(events.Ref));
        pool.Tell(new SendTo(victimKeys[0], "via-pool"));
        events.FishForMessage(m => m is ClientProtocol.FrameReceived { Frame.Data: "via-pool" }, TimeSpan.FromSeconds(3));

        // Every member is in the registry as tcp-out.
        var outbound = (await service.ConnectionsAsync()).Items.Where(c => c.Protocol == HeartbeatClient.Protocol).ToArray();
        Assert.Equal(4, outbound.Length);
        await pool.GracefulStop(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Pool_must_answer_NoHealthyConnection_when_no_member_can_connect()
    {
        using var metrics = new SupervisorMetrics();
        var settings = new PoolSettings(2, 10, Fast(FreePort(), minBackoff: TimeSpan.FromSeconds(2), maxBackoff: TimeSpan.FromSeconds(2)));
        var pool = Sys.ActorOf(HeartbeatPool.Props("empty", settings, Services(new LogCapture(), metrics)), "empty");
        var none = await pool.Ask<NoHealthyConnection>(new Get("k"), Ask);
        Assert.Equal(("k", "empty"), (none.Key, none.Pool));
        await WaitUntilAsync(async () => (await Stats(pool)) is { Healthy: 0, Reconnecting: 2 }, TimeSpan.FromSeconds(3), "2 reconnecting");
        await pool.GracefulStop(TimeSpan.FromSeconds(3));
    }

    private static Task<PoolStats> Stats(IActorRef pool) => pool.Ask<PoolStats>(GetStats.Instance, Ask);

    /// <summary>Reads <c>supervisor.pool.connections</c> through a MeterListener, by health.</summary>
    private static Dictionary<string, int> ObservePoolGauge(Meter meter)
    {
        var values = new Dictionary<string, int>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter == meter && instrument.Name == "supervisor.pool.connections") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<int>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "health") values[(string)tag.Value!] = value;
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return values;
    }
}
