using System.Diagnostics;
using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Configs;
using Supervisor.Configuration;
using Supervisor.Connections;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;

namespace Supervisor.Tests.Connections;

/// <summary>Negotiated heartbeats (issue 15 point 3): the deadline arithmetic in virtual time.</summary>
public sealed class NegotiatedHeartbeatVirtualTimeTests() : Akka.TestKit.Xunit2.TestKit(TestConfigs.TestSchedulerConfig)
{
    private static readonly TimeSpan Tick = TimeSpan.FromTicks(1);
    private TestScheduler Clock => (TestScheduler)Sys.Scheduler;
    private static readonly Supervisor.Monitoring.SupervisorMetrics Metrics = new();
    private ProbeTransport _peer = null!;

    // web-service: interval 30 s, timeout 90 s, suspect-after auto (45 s); bounded as the issue's acceptance says.
    private static ListenerSettings Bounded => SupervisorConfig.Read(SupervisorConfig.Build(
        "supervisor.tcp.limits.first-frame-timeout = off\nsupervisor.heartbeat.negotiation { min-interval = 2s, max-interval = 60s }",
        "web-service")).Listeners.Single();

    private (TestProbe Registry, TestProbe Transport) Start(ListenerSettings listener)
    {
        var registry = CreateTestProbe();
        Sys.EventStream.Subscribe(registry.Ref, typeof(IConnectionLifecycleEvent));
        var transport = CreateTestProbe();
        _peer = new ProbeTransport(transport.Ref);
        Sys.ActorOf(ConnectionActor.Props(new ConnectionActor.Setup(
            "c1", listener, _peer, new ConnectionServices(registry.Ref, CreateTestProbe().Ref, new EchoHandler(),
                Metrics, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)))
            .WithDispatcher(CallingThreadDispatcher.Id));
        registry.ExpectMsg<ConnectionLifecycle.Opened>();
        return (registry, transport);
    }

    private void Pass(TimeSpan span)
    {
        for (; span > TimeSpan.FromSeconds(1); span -= TimeSpan.FromSeconds(1))
            Clock.Advance(TimeSpan.FromSeconds(1));
        Clock.Advance(span);
    }

    [Fact]
    public void An_announced_5s_interval_must_give_the_connection_a_suspect_point_of_7_5s_and_a_timeout_of_15s()
    {
        Assert.Equal(TimeSpan.FromSeconds(2), Bounded.Heartbeat.Negotiation.MinInterval);
        var (registry, transport) = Start(Bounded);
        _peer.Receive(new Frame(FrameType.Heartbeat, 1, null, 3) { Interval = 5000 }, 40);
        var response = transport.ExpectMsg<ProbeTransport.Wrote>().Frame;
        Assert.Equal(5000, response.Interval);
        Assert.Equal(3, response.Seq);
        var heard = Clock.Now;

        // The listener's 30/45/90 scaled by 5/30: suspect at 7.5 s, closed at 15 s after the last heartbeat.
        Pass(TimeSpan.FromSeconds(7.5) - Tick);
        Assert.DoesNotContain(registry.ReceiveWhile(TimeSpan.FromMilliseconds(100), m => m), m => m is ConnectionLifecycle.StateChanged);
        Clock.Advance(Tick);
        var suspect = registry.FishForMessage<ConnectionLifecycle.StateChanged>(_ => true).Status;
        Assert.Equal(ConnectionState.Suspect, suspect.State);
        Assert.Equal(new NegotiatedHeartbeat(5000, 5000, 7500, 15000), suspect.Negotiated);

        Pass(TimeSpan.FromSeconds(7.5) - Tick);
        transport.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Clock.Advance(Tick);
        Assert.StartsWith("heartbeat-timeout: ", transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Data);
        Assert.Equal(heard + TimeSpan.FromSeconds(15), registry.FishForMessage<ConnectionLifecycle.Closed>(_ => true).At);
    }

    [Fact]
    public void A_heartbeat_without_interval_must_keep_the_listener_deadlines_and_get_no_interval_back()
    {
        var (registry, transport) = Start(Bounded);
        _peer.Receive(new Frame(FrameType.Heartbeat, 1, null, 3), 30);
        Assert.Null(transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Interval);
        var heard = Clock.Now;
        Pass(TimeSpan.FromSeconds(45));
        var suspect = registry.FishForMessage<ConnectionLifecycle.StateChanged>(_ => true);
        Assert.Equal(heard + TimeSpan.FromSeconds(45), suspect.At);
        Assert.Null(suspect.Status.Negotiated);
    }

    [Fact]
    public void Announcements_outside_the_bounds_must_be_clamped_and_said_so()
    {
        var (_, transport) = Start(Bounded);
        _peer.Receive(new Frame(FrameType.Heartbeat, 1) { Interval = 1000 }, 30);
        Assert.Equal(2000, transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Interval);
        Clock.Advance(TimeSpan.FromSeconds(1));
        _peer.Receive(new Frame(FrameType.Heartbeat, 1) { Interval = 3_600_000 }, 30);
        Assert.Equal(60_000, transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Interval);
    }

    [Fact]
    public void An_honest_client_with_jitter_and_a_backlog_after_a_stall_must_not_be_too_fast()
    {
        var (_, transport) = Start(Bounded);
        var random = new Random(7);
        for (var i = 0; i < 50; i++)
        {
            Clock.Advance(TimeSpan.FromMilliseconds(2000 + random.Next(-400, 400)));
            _peer.Receive(new Frame(FrameType.Heartbeat, 1) { Interval = 2000 }, 30);
            Assert.Equal(FrameType.HeartbeatResponse, transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Type);
        }
        // A 5 s hold-up of the network: the client's two queued heartbeats and the next arrive together.
        Clock.Advance(TimeSpan.FromSeconds(5));
        for (var i = 0; i < 3; i++)
        {
            _peer.Receive(new Frame(FrameType.Heartbeat, 1) { Interval = 2000 }, 30);
            Assert.Equal(FrameType.HeartbeatResponse, transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Type);
            Clock.Advance(TimeSpan.FromMilliseconds(1));
        }
    }

    [Fact]
    public void A_fast_client_clamped_up_by_the_default_bounds_must_not_be_too_fast_at_the_pace_it_announced()
    {
        // Default bounds [1 s, 10 m]: a game client announcing 200 ms is told 1 s but may keep its own pace.
        var listener = SupervisorConfig.Read(SupervisorConfig.Build(
            "supervisor.tcp.limits.first-frame-timeout = off", "web-service")).Listeners.Single();
        Assert.Equal(TimeSpan.FromSeconds(1), listener.Heartbeat.Negotiation.MinInterval);
        var (registry, transport) = Start(listener);
        for (var i = 0; i < 40; i++)
        {
            Clock.Advance(TimeSpan.FromMilliseconds(200));
            _peer.Receive(new Frame(FrameType.Heartbeat, 1) { Interval = 200 }, 30);
            var answer = transport.ExpectMsg<ProbeTransport.Wrote>().Frame;
            Assert.Equal(FrameType.HeartbeatResponse, answer.Type);
            Assert.Equal(1000, answer.Interval);
        }
        Assert.DoesNotContain(registry.ReceiveWhile(TimeSpan.FromMilliseconds(100), m => m), m => m is ConnectionLifecycle.Closed);

        // The same client announcing 200 ms and heartbeating every 20 ms is still refused.
        for (var i = 0; i < 40 && !transport.HasMessages; i++)
        {
            Clock.Advance(TimeSpan.FromMilliseconds(20));
            _peer.Receive(new Frame(FrameType.Heartbeat, 1) { Interval = 200 }, 30);
            var written = transport.ExpectMsg<ProbeTransport.Wrote>().Frame;
            if (written.Type != FrameType.HeartbeatResponse)
            {
                Assert.StartsWith("rate-limited: ", written.Data);
                return;
            }
        }
        Assert.Fail("a client heartbeating every 20 ms after announcing 200 ms was not closed");
    }
}

/// <summary>Negotiated heartbeats (issue 15 point 3) over real loopback sockets, in both codecs.</summary>
public sealed class NegotiatedHeartbeatSocketTests
{
    private const string Bounds = "supervisor.heartbeat.negotiation { min-interval = 2s, max-interval = 60s }";

    public static TheoryData<string> Codecs => new(FrameCodecs.Names);

    private static Frame Announcing(int intervalMs, long seq) =>
        new(FrameType.Heartbeat, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), null, seq) { Interval = intervalMs };

    [Theory]
    [MemberData(nameof(Codecs))]
    public async Task A_client_announcing_5s_must_be_accepted_and_its_status_must_show_the_deadlines_from_5s(string codec)
    {
        await using var service = await TestService.StartAsync($"{Bounds}\nsupervisor.tcp.codec = {codec}");
        using var peer = await TestPeer.ConnectAsync(service.Port, codec);
        await peer.SendFrameAsync(Announcing(5000, 1));
        var response = await peer.ReceiveFrameAsync();
        Assert.Equal(FrameType.HeartbeatResponse, response!.Type);
        Assert.Equal(5000, response.Interval);
        var id = (await service.ConnectionsAsync()).Items.Single().Id;
        var status = await service.LiveStatusAsync(id);
        // The shipped listener's 30 s / 90 s with suspect-after auto (45 s), scaled by 5/30.
        Assert.Equal(new NegotiatedHeartbeat(5000, 5000, 7500, 15000), status!.Negotiated);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public async Task A_client_announcing_1s_must_be_told_2s_and_closed_by_the_deadline_of_2s(string codec)
    {
        await using var service = await TestService.StartAsync($"{Bounds}\nsupervisor.tcp.codec = {codec}");
        using var peer = await TestPeer.ConnectAsync(service.Port, codec);
        await peer.SendFrameAsync(Announcing(1000, 1));
        var response = await peer.ReceiveFrameAsync();
        Assert.Equal(2000, response!.Interval);
        var silentSince = Stopwatch.StartNew();

        // Accepted 2 s: its timeout is 2 × 90 / 30 = 6 s, where the listener's own is 90 s.
        var frames = await peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(30));
        var closedAfter = silentSince.Elapsed;
        var notice = Assert.Single(frames, f => f.Type == FrameType.ErrorNotice);
        Assert.StartsWith("heartbeat-timeout: ", notice.Data);
        // Not before the 6 s; a busy 2-core machine may be a few seconds late, never the listener's 90 s.
        Assert.InRange(closedAfter, TimeSpan.FromSeconds(5.9), TimeSpan.FromSeconds(20));
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public async Task A_client_heartbeating_every_50ms_against_its_announced_2s_must_be_closed_with_its_notice(string codec)
    {
        await using var service = await TestService.StartAsync($"{Bounds}\nsupervisor.tcp.codec = {codec}");
        using var peer = await TestPeer.ConnectAsync(service.Port, codec);
        var reading = peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(20));
        for (var seq = 1; seq <= 100 && !reading.IsCompleted; seq++)
        {
            try { await peer.SendFrameAsync(Announcing(2000, seq)); }
            catch (System.Net.Sockets.SocketException) { break; }
            await Task.Delay(50);
        }
        var frames = await reading;
        var notice = Assert.Single(frames, f => f.Type == FrameType.ErrorNotice);
        Assert.Matches(@"^rate-limited: heartbeats every \d+ ms against the 2000 ms interval it announced$", notice.Data);
        Assert.All(frames.Where(f => f.Type == FrameType.HeartbeatResponse), f => Assert.Equal(2000, f.Interval));
        var stats = await service.WaitForStatsAsync(s => s.Closed(CloseReason.RateLimited) == 1);
        Assert.Equal(1, stats.Closed(CloseReason.RateLimited));
    }
}
