using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Configs;
using Microsoft.Extensions.Logging.Abstractions;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;

namespace Supervisor.Tests.Monitoring;

/// <summary>An active alert's value, peak and message follow its rule, in virtual time (the shipped heartbeat-timeouts rule: above 50 in 1 min, clear at 25).</summary>
public sealed class AlertValueTests() : Akka.TestKit.Xunit2.TestKit(TestConfigs.TestSchedulerConfig)
{
    private TestScheduler Clock => (TestScheduler)Sys.Scheduler;

    private IActorRef StartMonitor()
    {
        var settings = SupervisorConfig.Read(SupervisorConfig.Build("supervisor.monitor.mass-disconnect.enabled = off", null)).Monitor
            with { WatchStarvation = false }; // virtual time jumps would look like stalls
        return Sys.ActorOf(MonitorActor.Props(settings, null, NullLogger.Instance).WithDispatcher(CallingThreadDispatcher.Id));
    }

    private static ConnectionStatus NewConnection() =>
        new($"c{Guid.NewGuid():N}", "127.0.0.1:50000", "tcp", "tcp", ConnectionState.Active,
            DateTimeOffset.UnixEpoch, null, null, 0, null, 0, 0, 0, KeepAliveStatus.Disabled);

    private static ConnectionStatus Open(IActorRef monitor)
    {
        var status = NewConnection();
        monitor.Tell(new ConnectionLifecycle.Opened(status, ConnectionDirection.Inbound, DateTimeOffset.UnixEpoch));
        return status;
    }

    private static void Close(IActorRef monitor, ConnectionStatus status, SilenceCause? cause = null) =>
        monitor.Tell(new ConnectionLifecycle.Closed(status with { State = ConnectionState.Closing }, ConnectionDirection.Inbound,
            CloseReason.HeartbeatTimeout, "test", DateTimeOffset.UnixEpoch) { Cause = cause });

    private static void TimeOut(IActorRef monitor, int count)
    {
        for (var i = 0; i < count; i++) Close(monitor, Open(monitor));
    }

    private MonitorProtocol.Alerts Alerts(IActorRef monitor)
    {
        monitor.Tell(MonitorProtocol.GetAlerts.Instance, TestActor);
        return ExpectMsg<MonitorProtocol.Alerts>();
    }

    /// <summary>Virtual time passes a second at a time, so every evaluation tick runs.</summary>
    private void Pass(TimeSpan span)
    {
        for (; span > TimeSpan.Zero; span -= TimeSpan.FromSeconds(1))
            Clock.Advance(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void An_alert_raised_at_51_closes_must_say_100_when_100_closed_and_keep_its_peak_when_the_rate_falls()
    {
        var monitor = StartMonitor();
        var updates = CreateTestProbe();
        Sys.EventStream.Subscribe(updates.Ref, typeof(AlertUpdated));

        TimeOut(monitor, 51);
        var raised = Assert.Single(Alerts(monitor).Active, a => a.Rule == "heartbeat-timeouts");
        Assert.Equal((51, 51, 51), (raised.Value, raised.Peak, raised.RaisedValue));

        Pass(TimeSpan.FromSeconds(30));
        TimeOut(monitor, 49);
        var at100 = Assert.Single(Alerts(monitor).Active, a => a.Rule == "heartbeat-timeouts");
        Assert.Equal((100, 100, 51), (at100.Value, at100.Peak, at100.RaisedValue));
        Assert.Equal(raised.Id, at100.Id);
        Assert.Contains("is 100 ", at100.Message);
        // The sinks that resend active alerts learn it at the next evaluation tick, once.
        Pass(TimeSpan.FromSeconds(1));
        Assert.Equal(100, updates.ExpectMsg<AlertUpdated>().Alert.Value);

        // 61 s after the first 51: they have left the 1 min window, the 49 have not (49 > clear-below 25: still active).
        Pass(TimeSpan.FromSeconds(30));
        var falling = Assert.Single(Alerts(monitor).Active, a => a.Rule == "heartbeat-timeouts");
        Assert.Equal((49, 100), (falling.Value, falling.Peak));
        Assert.Contains("is 49 ", falling.Message);

        // And once the 49 have left too, it is resolved, with its peak.
        Pass(TimeSpan.FromSeconds(31));
        var alerts = Alerts(monitor);
        Assert.DoesNotContain(alerts.Active, a => a.Rule == "heartbeat-timeouts");
        var resolved = Assert.Single(alerts.History, a => a.Rule == "heartbeat-timeouts");
        Assert.Equal((0, 100, 51), (resolved.Value, resolved.Peak, resolved.RaisedValue));
    }

    [Fact]
    public void A_mass_disconnect_must_say_what_the_kernel_saw_of_its_closes()
    {
        // The shipped rules and mass disconnect (more than half of at least 20 in 10 s; network-incident: above 25
        // path-dead closes in 1 min).
        var settings = SupervisorConfig.Read(SupervisorConfig.Build("", null)).Monitor with { WatchStarvation = false };
        var monitor = Sys.ActorOf(MonitorActor.Props(settings, null, NullLogger.Instance).WithDispatcher(CallingThreadDispatcher.Id));
        var fleet = Enumerable.Range(0, 100).Select(_ => Open(monitor)).ToList();

        // A network outage as it is seen: 60 of the 100 miss heartbeats (the mass disconnect opens, the cause is not
        // known yet), then close, 50 path-dead and 10 silent, within 3 s.
        foreach (var peer in fleet.Take(60)) monitor.Tell(new MonitorEvents.HeartbeatMissed("tcp", peer.Id));
        Pass(TimeSpan.FromSeconds(1));
        Assert.EndsWith("a network segment or the server may be down", Assert.Single(Alerts(monitor).Active).Message);
        for (var i = 0; i < 60; i++)
        {
            Close(monitor, fleet[i], i < 50 ? SilenceCause.PathDead : SilenceCause.Silent);
            if (i % 20 == 19) Pass(TimeSpan.FromSeconds(1));
        }
        var active = Alerts(monitor).Active;
        var mass = Assert.Single(active, a => a.Rule == MonitorActor.MassDisconnectRule);
        Assert.EndsWith("(60 timed out so far); 50 closed path-dead, 0 peer-hung: a network incident", mass.Message);
        // The cause's own rule speaks too (what, and why); the dead-peer rules stay quiet for both.
        Assert.Equal(["mass-disconnect", "network-incident"], active.Select(a => a.Rule).Order().ToArray());
    }
}
