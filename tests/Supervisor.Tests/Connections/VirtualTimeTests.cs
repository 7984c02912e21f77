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
        var registry = CreateTestProbe();
        var transport = CreateTestProbe();
        var connection = Sys.ActorOf(ConnectionActor.Props(new ConnectionActor.Setup(
            "c1", listener, new ProbeTransport(transport.Ref), new ConnectionServices(registry.Ref, CreateTestProbe().Ref, new EchoDataHandler(),
                Metrics, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)))
            // Processed on the thread that advances the clock, so the actor has handled every tick
            // before time moves on, as it would in real time.
            .WithDispatcher(CallingThreadDispatcher.Id));
        registry.ExpectMsg<RegistryProtocol.ConnectionOpened>();
        return (connection, registry, transport);
    }

    private static void Frame(IActorRef connection, FrameType type, long? seq = null) =>
        connection.Tell(new TransportEvents.FrameReceived(new Frame(type, 1, type == FrameType.Data ? "x" : null, seq), 20));

    [Fact]
    public void Web_service_profile_must_turn_suspect_at_30s_and_close_at_90s_not_a_tick_before()
    {
        var (connection, registry, transport) = Start(Profile("web-service"));
        var start = Clock.Now;

        Clock.Advance(TimeSpan.FromSeconds(30) - Tick);
        registry.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Clock.Advance(Tick);
        var suspect = registry.ExpectMsg<RegistryProtocol.ConnectionUpdated>().Status;
        Assert.Equal(ConnectionState.Suspect, suspect.State);
        Assert.Equal(1, suspect.MissedHeartbeats);

        Clock.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(2, registry.ExpectMsg<RegistryProtocol.ConnectionUpdated>().Status.MissedHeartbeats);

        Clock.Advance(TimeSpan.FromSeconds(30) - Tick);
        transport.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Clock.Advance(Tick);
        var notice = transport.ExpectMsg<ProbeTransport.Wrote>().Frame;
        Assert.Equal(FrameType.ErrorNotice, notice.Type);
        Assert.StartsWith("heartbeat-timeout: ", notice.Data);
        transport.ExpectMsg<ProbeTransport.OutputShut>();

        // The peer never answers the FIN; the linger ends it.
        Clock.Advance(TimeSpan.FromSeconds(1));
        transport.ExpectMsg<ProbeTransport.Disposed>();
        var closed = registry.ExpectMsg<RegistryProtocol.ConnectionClosed>();
        Assert.Equal(CloseReason.HeartbeatTimeout, closed.Reason);
        Assert.Equal(start + TimeSpan.FromSeconds(90), closed.ClosedAt);
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
    public void A_late_heartbeat_must_bring_a_suspect_connection_back_to_active()
    {
        var (connection, registry, transport) = Start(Profile("realtime-game"));
        Clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(ConnectionState.Suspect, registry.ExpectMsg<RegistryProtocol.ConnectionUpdated>().Status.State);
        Frame(connection, FrameType.Heartbeat);
        transport.ExpectMsg<ProbeTransport.Wrote>();
        var back = registry.ExpectMsg<RegistryProtocol.ConnectionUpdated>().Status;
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
    public void Server_ping_must_go_out_after_each_silent_interval_with_a_fresh_seq()
    {
        var listener = Profile("database-connection") with
        {
            Heartbeat = Profile("database-connection").Heartbeat with { ServerPing = true },
        };
        var (_, _, transport) = Start(listener);
        Clock.Advance(TimeSpan.FromSeconds(30));
        var first = transport.ExpectMsg<ProbeTransport.Wrote>().Frame;
        Assert.Equal(FrameType.Heartbeat, first.Type);
        Clock.Advance(TimeSpan.FromSeconds(29));
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
}
