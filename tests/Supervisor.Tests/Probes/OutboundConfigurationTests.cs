using Supervisor.Client;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Probes;

namespace Supervisor.Tests.Probes;

/// <summary>The outbound keys (issue 5): supervisor.client, supervisor.pool, supervisor.probe-defaults, supervisor.probes.</summary>
public sealed class OutboundConfigurationTests
{
    private static SupervisorSettings Read(string? hocon) => SupervisorConfig.Read(SupervisorConfig.Build(hocon, null));

    private static void AssertError(string hocon, string key, string mentions)
    {
        var error = Assert.Throws<ConfigurationError>(() => Read(hocon));
        Assert.Equal(key, error.Key);
        Assert.Contains(mentions, error.Message);
    }

    [Fact]
    public void Client_defaults_must_be_read_from_the_reference_configuration()
    {
        var settings = Read(null);
        var client = settings.Client;
        Assert.Null(client.Endpoint);
        Assert.Equal((TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(90), true), (client.HeartbeatInterval, client.HeartbeatTimeout, client.SendSeq));
        Assert.Equal(new BackoffSettings(TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(30), 2.0, TimeSpan.FromSeconds(30)), client.Reconnect);
        Assert.Equal((1000, OverflowPolicy.DropOldest), (client.BufferSize, client.Overflow));
        Assert.Equal(TimeSpan.FromSeconds(5), client.ConnectTimeout);
        Assert.Equal((4, 100), (settings.Pool.Size, settings.Pool.VirtualNodes));
        Assert.Empty(settings.Probes);
    }

    [Fact]
    public void Probes_must_take_their_unset_keys_from_probe_defaults()
    {
        var probes = Read("""
            supervisor.probe-defaults.fall = 5
            supervisor.probes {
              cache { kind = redis, endpoint = "127.0.0.1:6379", interval = 5s, timeout = 1s, rise = 2, fall = 3 }
              db    { kind = tcp-connect, endpoint = "db.internal:5432" }
              api   { kind = http-get, endpoint = "http://127.0.0.1:9000/health", interval = 10s, timeout = 2s }
            }
            """).Probes;
        Assert.Equal(["api", "cache", "db"], probes.Select(p => p.Name));
        Assert.Equal(new ProbeSettings("cache", ProbeKind.Redis, "127.0.0.1:6379", TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1), 2, 3), probes[1]);
        Assert.Equal(new ProbeSettings("db", ProbeKind.TcpConnect, "db.internal:5432", TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1), 2, 5), probes[2]);
        Assert.Equal((ProbeKind.HttpGet, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(2)), (probes[0].Kind, probes[0].Interval, probes[0].Timeout));
    }

    [Theory]
    [InlineData("supervisor.probes.x { kind = memcached, endpoint = \"a:1\" }", "supervisor.probes.x.kind", "memcached")]
    [InlineData("supervisor.probes.x { kind = redis, endpoint = \"no-port\" }", "supervisor.probes.x.endpoint", "no-port")]
    [InlineData("supervisor.probes.x { kind = tcp-connect, endpoint = \"h:70000\" }", "supervisor.probes.x.endpoint", "h:70000")]
    [InlineData("supervisor.probes.x { kind = http-get, endpoint = \"ftp://h/\" }", "supervisor.probes.x.endpoint", "ftp://h/")]
    [InlineData("supervisor.probes.x { kind = redis, endpoint = \"h:1\", interval = 1s, timeout = 2s }", "supervisor.probes.x.timeout", "2s")]
    [InlineData("supervisor.probes.x { kind = redis, endpoint = \"h:1\", rise = 0 }", "supervisor.probes.x.rise", "0")]
    [InlineData("supervisor.probes.x { kind = redis, endpoint = \"h:1\", fall = many }", "supervisor.probes.x.fall", "many")]
    [InlineData("supervisor.probes.x { kind = redis }", "supervisor.probes.x.endpoint", "missing")]
    [InlineData("supervisor.probes.x = 3", "supervisor.probes.x", "block")]
    public void A_bad_probe_key_must_be_a_configuration_error_naming_it(string hocon, string key, string mentions) =>
        AssertError(hocon, key, mentions);

    [Theory]
    [InlineData("supervisor.client.buffer.overflow = drop-everything", "supervisor.client.buffer.overflow", "drop-everything")]
    [InlineData("supervisor.client.buffer.size = -1", "supervisor.client.buffer.size", "-1")]
    [InlineData("supervisor.client.heartbeat { interval = 5s, timeout = 5s }", "supervisor.client.heartbeat.timeout", "5s")]
    [InlineData("supervisor.client.reconnect { min-backoff = 2s, max-backoff = 1s }", "supervisor.client.reconnect.max-backoff", "1s")]
    [InlineData("supervisor.client.reconnect.multiplier = 0.5", "supervisor.client.reconnect.multiplier", "0.5")]
    [InlineData("supervisor.client.endpoint = \"[::1]\"", "supervisor.client.endpoint", "[::1]")]
    [InlineData("supervisor.client.connect-timeout = 0s", "supervisor.client.connect-timeout", "0s")]
    [InlineData("supervisor.pool.size = 0", "supervisor.pool.size", "0")]
    [InlineData("supervisor.pool.virtual-nodes = 0", "supervisor.pool.virtual-nodes", "0")]
    public void A_bad_client_or_pool_key_must_be_a_configuration_error_naming_it(string hocon, string key, string mentions) =>
        AssertError(hocon, key, mentions);

    [Theory]
    [InlineData("127.0.0.1:8081", "127.0.0.1", 8081)]
    [InlineData("localhost:1", "localhost", 1)]
    [InlineData("[::1]:6379", "::1", 6379)]
    public void Endpoints_must_parse_as_host_and_port(string text, string host, int port)
    {
        var endpoint = HostPort.Parse(text, "k");
        Assert.Equal((host, port), (endpoint.Host, endpoint.Port));
        Assert.Equal(text, endpoint.ToString());
    }
}
