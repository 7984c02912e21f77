using Supervisor.Cluster;
using Supervisor.Configuration;

namespace Supervisor.Tests.Cluster;

public sealed class ClusterConfigurationTests
{
    private static SupervisorSettings Read(string? hocon) => SupervisorConfig.Read(SupervisorConfig.Build(hocon, null));

    [Fact]
    public void Without_cluster_configuration_a_node_must_stay_single()
    {
        var cluster = Read(null).Cluster;
        Assert.False(cluster.Enabled);
        Assert.Equal(DowningStrategy.KeepMajority, cluster.Downing);
        Assert.Equal(TimeSpan.FromSeconds(20), cluster.StableAfter);
        Assert.Contains(cluster.Rules, r => r.Name == "cluster-heartbeat-timeouts");
    }

    [Fact]
    public void Cluster_keys_must_be_read_into_settings_and_akka_hocon()
    {
        var cluster = Read("""
            supervisor.cluster {
              enabled = on
              hostname = "127.0.0.1"
              port = 4100
              seed-nodes = ["127.0.0.1:4100", "127.0.0.1:4101"]
              roles = [edge]
              downing { strategy = keep-oldest, stable-after = 3s }
              failure-detector { heartbeat-interval = 500ms, acceptable-heartbeat-pause = 2s }
            }
            """).Cluster;
        Assert.True(cluster.Enabled);
        Assert.Equal(4100, cluster.Port);
        Assert.Equal(["127.0.0.1:4100", "127.0.0.1:4101"], cluster.SeedNodes.Select(s => s.ToString()));
        Assert.Equal(["edge"], cluster.Roles);
        Assert.Equal(DowningStrategy.KeepOldest, cluster.Downing);
        Assert.Equal("akka.tcp://supervisor@127.0.0.1:4101", ClusterHosting.SeedAddress(cluster.SeedNodes[1], "supervisor"));
        var akka = Akka.Configuration.ConfigurationFactory.ParseString(cluster.AkkaHocon());
        Assert.Equal(TimeSpan.FromSeconds(3), akka.GetTimeSpan("akka.cluster.split-brain-resolver.stable-after"));
        Assert.Equal(TimeSpan.FromSeconds(2), akka.GetTimeSpan("akka.cluster.failure-detector.acceptable-heartbeat-pause"));
        Assert.Equal(64L << 20, akka.GetByteSize("akka.remote.dot-netty.tcp.maximum-frame-size"));
        // The shipped leave-timeout bounds coordinated shutdown's wait for the others to see this node leave.
        Assert.Equal(TimeSpan.FromSeconds(3), akka.GetTimeSpan("akka.coordinated-shutdown.phases.cluster-exiting.timeout"));
    }

    [Theory]
    [InlineData("supervisor.cluster { enabled = on, seed-nodes = [] }", "supervisor.cluster.seed-nodes", "empty")]
    [InlineData("supervisor.cluster { seed-nodes = [\"nohost\"] }", "supervisor.cluster.seed-nodes", "nohost")]
    [InlineData("supervisor.cluster.port = 70000", "supervisor.cluster.port", "70000")]
    [InlineData("supervisor.cluster.hostname = \"0.0.0.0\"", "supervisor.cluster.hostname", "0.0.0.0")]
    [InlineData("supervisor.cluster.downing.strategy = keep-everyone", "supervisor.cluster.downing.strategy", "keep-everyone")]
    [InlineData("supervisor.cluster.downing.stable-after = 0s", "supervisor.cluster.downing.stable-after", "0s")]
    [InlineData("supervisor.cluster.failure-detector { heartbeat-interval = 2s, acceptable-heartbeat-pause = 1s }",
        "supervisor.cluster.failure-detector.acceptable-heartbeat-pause", "1s")]
    [InlineData("supervisor.cluster.maximum-frame-size = 1KiB", "supervisor.cluster.maximum-frame-size", "1024")]
    [InlineData("supervisor.cluster.monitor.rules.slow { metric = heartbeat.rtt.p99, raise-above = 5, clear-below = 1 }",
        "supervisor.cluster.monitor.rules.slow.metric", "heartbeat.rtt.p99")]
    public void A_bad_cluster_value_must_be_refused_naming_its_key(string hocon, string key, string value)
    {
        var error = Assert.Throws<ConfigurationError>(() => Read(hocon));
        Assert.Equal(key, error.Key);
        Assert.Contains(value, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("c17@127.0.0.1:4053", "127.0.0.1:4053")]
    [InlineData("c17", null)]
    [InlineData("pool.3", null)]
    [InlineData("c1@", null)]
    public void A_connection_id_must_name_its_node(string id, string? node) => Assert.Equal(node, ClusterRegistry.NodeOf(id));
}
