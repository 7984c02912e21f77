using Akka.Actor;
using Microsoft.Extensions.Logging.Abstractions;
using Supervisor.Cluster;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Tests.Cluster;

/// <summary>
/// The singleton cluster monitor on its own, in an actor system with the cluster provider (never joined: the
/// monitor only listens to membership). Nodes are played by test probes sending what a node's registry sends.
/// </summary>
public sealed class ClusterMonitorTests() : Akka.TestKit.Xunit2.TestKit("""
    akka.actor.provider = cluster
    akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
    akka.loglevel = WARNING
    """)
{
    private static SupervisorSettings Settings(string rules) =>
        SupervisorConfig.Read(SupervisorConfig.Build($$"""supervisor.cluster.monitor.rules { {{rules}} }""", null));

    private IActorRef Monitor(string rules = "") =>
        Sys.ActorOf(ClusterMonitor.Props(ClusterHosting.ClusterMonitorSettings(Settings(rules)), NullLogger.Instance));

    private static RegistryProtocol.Stats Totals(long active, long accepted, long timeouts = 0) =>
        new(active, accepted, new Dictionary<string, long> { ["heartbeat-timeout"] = timeouts }, 0, 0, 0);

    private MonitorProtocol.Alerts Alerts(IActorRef monitor)
    {
        monitor.Tell(MonitorProtocol.GetAlerts.Instance, TestActor);
        return ExpectMsg<MonitorProtocol.Alerts>();
    }

    [Fact]
    public void A_lost_node_must_raise_one_node_down_alert_and_choose_one_reporter_however_often_it_is_told()
    {
        var monitor = Monitor();
        var first = CreateTestProbe();
        var second = CreateTestProbe();
        monitor.Tell(new NodeCounts("127.0.0.1:4055", 9, Totals(active: 5, accepted: 5)));

        first.Send(monitor, new NodeLost("127.0.0.1:4055", 9, 5));
        Assert.True(first.ExpectMsg<ReportLoss>().Report);
        second.Send(monitor, new NodeLost("127.0.0.1:4055", 9, 5));
        Assert.False(second.ExpectMsg<ReportLoss>().Report);
        // A repeat from the chosen survivor (its first answer was lost) is answered alike.
        first.Send(monitor, new NodeLost("127.0.0.1:4055", 9, 5));
        Assert.True(first.ExpectMsg<ReportLoss>().Report);

        var alert = Assert.Single(Alerts(monitor).Active);
        Assert.Equal("node-down:127.0.0.1:4055", alert.Rule);
        Assert.Equal(AlertScopes.Cluster, alert.Scope);
        Assert.Equal(AlertSeverity.Critical, alert.Severity);
        Assert.Equal(5, alert.Value);

        monitor.Tell(MonitorProtocol.GetCounters.Instance, TestActor);
        var counters = ExpectMsg<MonitorProtocol.Counters>();
        Assert.Equal(0, counters.Active);
        Assert.Equal(5, counters.ClosedByReason["node-down"]);
    }

    [Fact]
    public void Cluster_rules_must_count_every_nodes_closes_together()
    {
        var monitor = Monitor("""timeouts { metric = connections.closed.heartbeat-timeout, window = 1m, raise-above = 3, clear-below = 0, severity = critical }""");
        // Each node's first word is adopted into the counters, but not counted as opened in any window.
        monitor.Tell(new NodeCounts("a:1", 1, Totals(active: 10, accepted: 10)));
        monitor.Tell(new NodeCounts("b:1", 1, Totals(active: 10, accepted: 10)));
        // Two timeouts on each node: four in the cluster, above 3, while no node alone is above it.
        monitor.Tell(new NodeCounts("a:1", 1, Totals(active: 8, accepted: 10, timeouts: 2)));
        monitor.Tell(new NodeCounts("b:1", 1, Totals(active: 8, accepted: 10, timeouts: 2)));

        var alert = Assert.Single(Alerts(monitor).Active);
        Assert.Equal("timeouts", alert.Rule);
        Assert.Equal(4, alert.Value);
        monitor.Tell(MonitorProtocol.GetCounters.Instance, TestActor);
        var counters = ExpectMsg<MonitorProtocol.Counters>();
        Assert.Equal(16, counters.Active);
        Assert.Equal(20, counters.Accepted);
        Assert.Equal(4, counters.HeartbeatTimeouts);
    }

    [Fact]
    public void A_node_lost_before_this_monitor_heard_from_it_must_keep_the_population_balanced()
    {
        var monitor = Monitor();
        monitor.Tell(new NodeCounts("a:1", 1, Totals(active: 4, accepted: 4)));
        // b:1 accepted 8 and closed 2 with heartbeat-timeout before it was lost holding 6.
        monitor.Tell(new NodeLost("b:1", 3, 6, Totals(active: 6, accepted: 8, timeouts: 2)), TestActor);
        ExpectMsg<ReportLoss>();
        monitor.Tell(MonitorProtocol.GetCounters.Instance, TestActor);
        var counters = ExpectMsg<MonitorProtocol.Counters>();
        Assert.Equal(4, counters.Active);
        Assert.Equal(6, counters.ClosedByReason["node-down"]);
        Assert.Equal(2, counters.HeartbeatTimeouts);
        Assert.Equal(12, counters.Accepted);
        Assert.Equal(counters.Accepted, counters.Active + counters.ClosedByReason.Values.Sum());
    }
}
