using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Configs;
using Supervisor.Configuration;
using Supervisor.Connections;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Supervisor.Transport;

namespace Supervisor.Tests.Connections;

/// <summary>The connection actor's deadlines in virtual time: a 90 s timeout takes milliseconds.</summary>
public sealed class VirtualTimeTests() : Akka.TestKit.Xunit2.TestKit(TestConfigs.TestSchedulerConfig)
{
    private static readonly TimeSpan Tick = TimeSpan.FromTicks(1);
    private TestScheduler Clock => (TestScheduler)Sys.Scheduler;
    private static readonly Supervisor.Monitoring.SupervisorMetrics Metrics = new();

    /// <summary>
    /// Lets virtual time pass the way real time does, a second at a time: one jump over a deadline
    /// would look to the connection like a server stall, which it forgives.
    /// </summary>
    private void Pass(TimeSpan span)
    {
        for (; span > TimeSpan.FromSeconds(1); span -= TimeSpan.FromSeconds(1))
            Clock.Advance(TimeSpan.FromSeconds(1));
        Clock.Advance(span);
    }

    // These tests watch the heartbeat deadlines of connections that stay silent from the start, which the
    // first-frame deadline (on by default) would close first.
    private static ListenerSettings Profile(string name) =>
        SupervisorConfig.Read(SupervisorConfig.Build("supervisor.tcp.limits.first-frame-timeout = off", name)).Listeners.Single();

    private (IActorRef Connection, TestProbe Registry, TestProbe Transport) Start(ListenerSettings listener)
    {
        // The registry's view: the connection's lifecycle events (EventStream) and its counter refreshes (told directly).
        var registry = CreateTestProbe();
        Sys.EventStream.Subscribe(registry.Ref, typeof(IConnectionLifecycleEvent));
        var transport = CreateTestProbe();
        _peer = new ProbeTransport(transport.Ref);
        var connection = Sys.ActorOf(ConnectionActor.Props(new ConnectionActor.Setup(
            "c1", listener, _peer, new ConnectionServices(registry.Ref, CreateTestProbe().Ref, new EchoHandler(),
                Metrics, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)))
            // Processed on the thread that advances the clock, so the actor has handled every tick
            // before time moves on, as it would in real time.
            .WithDispatcher(CallingThreadDispatcher.Id));
        Assert.Equal(ConnectionDirection.Inbound, registry.ExpectMsg<ConnectionLifecycle.Opened>().Direction);
        return (connection, registry, transport);
    }

    private ProbeTransport _peer = null!;

    /// <summary>The peer's frame reaches the connection as one read from its socket would (the last connection started).</summary>
    private void Frame(IActorRef connection, FrameType type, long? seq = null) =>
        _peer.Receive(new Frame(type, 1, type == FrameType.Data ? "x" : null, seq), 20);

    [Fact]
    public void Web_service_profile_must_turn_suspect_at_45s_and_close_at_90s_not_a_tick_before()
    {
        var (connection, registry, transport) = Start(Profile("web-service"));
        var start = Clock.Now;

        // Interval 30 s, timeout 90 s: suspect-after auto is 30 + min(30, 60) / 2 = 45 s.
        Clock.Advance(TimeSpan.FromSeconds(45) - Tick);
        registry.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Clock.Advance(Tick);
        var suspect = registry.ExpectMsg<ConnectionLifecycle.StateChanged>().Status;
        Assert.Equal(ConnectionState.Suspect, suspect.State);
        Assert.Equal(1, suspect.MissedHeartbeats);

        Clock.Advance(TimeSpan.FromSeconds(30));
        // Still suspect: a fresher row for the table, not a state change.
        Assert.Equal(2, registry.ExpectMsg<RegistryProtocol.ConnectionUpdated>().Status.MissedHeartbeats);

        Clock.Advance(TimeSpan.FromSeconds(15) - Tick);
        transport.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Clock.Advance(Tick);
        var notice = transport.ExpectMsg<ProbeTransport.Wrote>().Frame;
        Assert.Equal(FrameType.ErrorNotice, notice.Type);
        Assert.StartsWith("heartbeat-timeout: ", notice.Data);
        transport.ExpectMsg<ProbeTransport.OutputShut>();
        // Closed when decided, with the final counters (the notice included) and no longer active anywhere.
        var closed = registry.ExpectMsg<ConnectionLifecycle.Closed>();
        Assert.Equal(CloseReason.HeartbeatTimeout, closed.Reason);
        Assert.Equal(start + TimeSpan.FromSeconds(90), closed.At);
        Assert.Equal(ConnectionState.Closing, closed.Status.State);
        Assert.True(closed.Status.BytesOut > 0, "the notice is in the final counters");

        // The peer never answers the FIN; the linger ends it, and the socket's release is the last event.
        Clock.Advance(TimeSpan.FromSeconds(1));
        transport.ExpectMsg<ProbeTransport.Disposed>();
        Assert.Equal(start + TimeSpan.FromSeconds(91), registry.ExpectMsg<ConnectionLifecycle.Released>().At);
    }

    [Fact]
    public void A_heartbeat_must_restart_the_timeout_from_its_arrival()
    {
        var (connection, registry, transport) = Start(Profile("web-service"));
        Clock.Advance(TimeSpan.FromSeconds(20));
        Frame(connection, FrameType.Heartbeat, seq: 7);
        var response = transport.ExpectMsg<ProbeTransport.Wrote>().Frame;
        Assert.Equal(FrameType.HeartbeatResponse, response.Type);
        Assert.Equal(7, response.Seq);

        Pass(TimeSpan.FromSeconds(90) - Tick); // 110 s - 1 tick since connect
        transport.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Clock.Advance(Tick);
        Assert.StartsWith("heartbeat-timeout", transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Data);
    }

    [Fact]
    public void A_heartbeat_a_little_later_than_one_interval_must_not_count_as_missed()
    {
        var (connection, registry, transport) = Start(Profile("web-service"));
        // A client's ticker sends every 30 s; the network delivers each one up to a few hundred ms later than the last.
        for (var i = 0; i < 5; i++)
        {
            Clock.Advance(TimeSpan.FromSeconds(30.3));
            Frame(connection, FrameType.Heartbeat);
            transport.ExpectMsg<ProbeTransport.Wrote>();
        }
        registry.ReceiveWhile(TimeSpan.FromMilliseconds(200), m => m)
            .OfType<ConnectionLifecycle.StateChanged>()
            .ToList()
            .ForEach(changed => Assert.Fail($"turned {changed.Status.State} on a heartbeat 300 ms past its interval"));
    }

    [Fact]
    public void A_late_heartbeat_must_bring_a_suspect_connection_back_to_active()
    {
        var (connection, registry, transport) = Start(Profile("realtime-game"));
        // Interval 5 s, timeout 15 s: suspect at 7.5 s.
        Clock.Advance(TimeSpan.FromSeconds(7.5));
        Assert.Equal(ConnectionState.Suspect, registry.FishForMessage<ConnectionLifecycle.StateChanged>(_ => true).Status.State);
        Frame(connection, FrameType.Heartbeat);
        transport.ExpectMsg<ProbeTransport.Wrote>();
        var back = registry.ExpectMsg<ConnectionLifecycle.StateChanged>().Status;
        Assert.Equal(ConnectionState.Active, back.State);
        Assert.Equal(0, back.MissedHeartbeats);
    }

    [Fact]
    public void Heartbeat_only_liveness_must_close_a_peer_that_sends_only_data()
    {
        var listener = Profile("iot-device") with
        {
            Heartbeat = Profile("iot-device").Heartbeat with { Liveness = LivenessMode.HeartbeatOnly },
        };
        var (connection, _, transport) = Start(listener);
        for (var i = 0; i < 17; i++)
        {
            Clock.Advance(TimeSpan.FromSeconds(10));
            Frame(connection, FrameType.Data);
            Assert.Equal(FrameType.Data, transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Type);
        }
        Clock.Advance(TimeSpan.FromSeconds(10)); // 180 s after connect
        Assert.StartsWith("heartbeat-timeout", transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Data);
    }

    [Fact]
    public void Server_ping_must_go_out_when_the_peer_turns_suspect_with_a_fresh_seq()
    {
        var listener = Profile("database-connection") with
        {
            Heartbeat = Profile("database-connection").Heartbeat with { ServerPing = true },
        };
        var (_, _, transport) = Start(listener);
        // Interval 30 s, timeout 60 s: suspect (and the ping) at 30 + min(30, 30) / 2 = 45 s.
        Clock.Advance(TimeSpan.FromSeconds(45) - Tick);
        transport.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Clock.Advance(Tick);
        var first = transport.ExpectMsg<ProbeTransport.Wrote>().Frame;
        Assert.Equal(FrameType.Heartbeat, first.Type);
        Clock.Advance(TimeSpan.FromSeconds(14));
        transport.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Clock.Advance(TimeSpan.FromSeconds(1)); // 60 s: the database profile's timeout
        Assert.StartsWith("heartbeat-timeout", transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Data);
        Assert.Equal(1, first.Seq);
    }

    [Fact]
    public void Disabled_heartbeats_must_never_close_a_silent_connection()
    {
        var listener = Profile("web-service") with { Heartbeat = Profile("web-service").Heartbeat with { Enabled = false } };
        var (_, registry, transport) = Start(listener);
        Pass(TimeSpan.FromHours(5));
        transport.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        // The registry still hears from it once an interval, always active, never suspect or closed.
        var reports = registry.ReceiveWhile(TimeSpan.FromMilliseconds(200), m => m).ToArray();
        Assert.Equal(5 * 60 * 2, reports.Length); // every 30 s for 5 h
        Assert.All(reports, m =>
        {
            var update = Assert.IsType<RegistryProtocol.ConnectionUpdated>(m);
            Assert.Equal((ConnectionState.Active, 0), (update.Status.State, update.Status.MissedHeartbeats));
        });
    }

    [Fact]
    public void A_server_stall_must_not_be_held_against_a_peer()
    {
        var (connection, registry, transport) = Start(Profile("realtime-game"));
        Pass(TimeSpan.FromSeconds(4));
        Frame(connection, FrameType.Heartbeat);
        transport.ExpectMsg<ProbeTransport.Wrote>();
        // The whole process stalls for 20 s: the timer that was due at 9 s fires at 24 s, past the 15 s timeout.
        Clock.Advance(TimeSpan.FromSeconds(20));
        transport.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        // The peer's heartbeat, read once the server runs again, keeps the connection.
        Frame(connection, FrameType.Heartbeat);
        Assert.Equal(FrameType.HeartbeatResponse, transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Type);
        Pass(TimeSpan.FromSeconds(14));
        transport.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Pass(TimeSpan.FromSeconds(1));
        Assert.StartsWith("heartbeat-timeout", transport.ExpectMsg<ProbeTransport.Wrote>().Frame.Data);
    }
    /// <summary>Sends <paramref name="type"/> frames at 128 Hz for <paramref name="seconds"/> of virtual time; the frames the server wrote back.</summary>
    private List<Frame> SendAt128Hz(IActorRef connection, TestProbe transport, FrameType type, int seconds)
    {
        var written = new List<Frame>();
        var period = TimeSpan.FromTicks(TimeSpan.TicksPerSecond / 128);
        for (var i = 0; i < 128 * seconds; i++)
        {
            Clock.Advance(period);
            Frame(connection, type);
            // The actor runs on this thread: what it wrote for this frame is already with the probe.
            while (transport.HasMessages)
                if (transport.ReceiveOne(TimeSpan.Zero) is ProbeTransport.Wrote wrote) written.Add(wrote.Frame);
        }
        return written;
    }

    [Fact]
    public void A_peer_sending_128_data_frames_a_second_for_30_s_must_not_be_rate_limited_by_default()
    {
        var (connection, _, transport) = Start(Profile("realtime-game"));
        var written = SendAt128Hz(connection, transport, FrameType.Data, 30);
        Assert.Equal(128 * 30, written.Count);
        Assert.All(written, f => Assert.Equal(FrameType.Data, f.Type));
    }

    [Fact]
    public void A_heartbeat_flood_at_128_a_second_must_still_be_cut_off_with_rate_limited()
    {
        var (connection, _, transport) = Start(Profile("realtime-game"));
        var written = SendAt128Hz(connection, transport, FrameType.Heartbeat, 30);
        var notice = written.Single(f => f.Type == FrameType.ErrorNotice);
        Assert.StartsWith("rate-limited: more than 100 heartbeat frames per second (burst 200)", notice.Data);
        // The burst of 200 drains at 28 a second above the rate: about 7 s, about 900 heartbeats answered.
        Assert.InRange(written.Count(f => f.Type == FrameType.HeartbeatResponse), 880, 920);
    }

    [Fact]
    public void A_data_frame_limit_when_configured_must_cut_off_128_data_frames_a_second()
    {
        var listener = Profile("realtime-game");
        listener = listener with { Limits = listener.Limits with { MaxDataFramesPerSecond = 100 } };
        var (connection, _, transport) = Start(listener);
        var written = SendAt128Hz(connection, transport, FrameType.Data, 30);
        Assert.StartsWith("rate-limited: more than 100 data frames per second", written.Single(f => f.Type == FrameType.ErrorNotice).Data);
    }
}
