using System.Net;
using Supervisor.Configuration;
using Supervisor.Http;

namespace Supervisor.Tests.Configuration;

/// <summary><c>tcp.proxy-protocol</c>: off by default, its keys known, its defects named.</summary>
public sealed class ProxyProtocolConfigurationTests
{
    private static SupervisorSettings Read(string? hocon) => SupervisorConfig.Read(SupervisorConfig.Build(hocon, null));

    [Fact]
    public void PROXY_protocol_must_be_off_by_default()
    {
        Assert.Null(Read(null).Listeners.Single().ProxyProtocol);
    }

    [Fact]
    public void Trusted_networks_must_take_cidrs_and_bare_addresses_of_both_families()
    {
        var listener = Read("""supervisor.tcp.proxy-protocol { enabled = on, trusted-networks = ["10.0.0.0/8", "192.0.2.7", "fd00::/8", "::1"], header-timeout = 2s }""")
            .Listeners.Single();
        var proxy = listener.ProxyProtocol!;
        Assert.Equal(TimeSpan.FromSeconds(2), proxy.HeaderTimeout);
        Assert.True(proxy.Trusts(IPAddress.Parse("10.200.0.1")));
        Assert.True(proxy.Trusts(IPAddress.Parse("192.0.2.7")));
        Assert.False(proxy.Trusts(IPAddress.Parse("192.0.2.8")));
        Assert.True(proxy.Trusts(IPAddress.Parse("fd12::5")));
        Assert.True(proxy.Trusts(IPAddress.Parse("::ffff:10.1.2.3")));
        Assert.False(proxy.Trusts(IPAddress.Parse("2001:db8::1")));
        var sloppy = Read("""supervisor.tcp.proxy-protocol { enabled = on, trusted-networks = ["10.0.0.1/8"] }""").Listeners.Single().ProxyProtocol!;
        Assert.Equal("10.0.0.0/8", sloppy.TrustedNetworks.Single().ToString());
        // The header may never take longer than a first frame may (auto: 45 s for web-service).
        Assert.Equal(TimeSpan.FromSeconds(2), proxy.HeaderDeadline(listener.Limits));
        Assert.Equal(TimeSpan.FromMilliseconds(300), proxy.HeaderDeadline(listener.Limits with { FirstFrameTimeout = TimeSpan.FromMilliseconds(300) }));
    }

    [Fact]
    public void A_named_listener_must_take_its_own_proxy_protocol_block()
    {
        var settings = Read("""
            supervisor.listeners.behind-lb { port = 9001, proxy-protocol { enabled = on, trusted-networks = ["10.0.0.0/8"] } }
            """);
        Assert.Null(settings.Listeners.Single(l => l.Name == "tcp").ProxyProtocol);
        Assert.NotNull(settings.Listeners.Single(l => l.Name == "behind-lb").ProxyProtocol);
    }

    [Theory]
    [InlineData("""supervisor.tcp.proxy-protocol.enabled = on""", "supervisor.tcp.proxy-protocol.trusted-networks", "must name the load balancers' networks")]
    [InlineData("""supervisor.tcp.proxy-protocol { enabled = on, trusted-networks = ["lb.example.com"] }""", "supervisor.tcp.proxy-protocol.trusted-networks", "'lb.example.com' is not a network")]
    [InlineData("""supervisor.tcp.proxy-protocol { enabled = on, trusted-networks = "10.0.0.0/8" }""", "supervisor.tcp.proxy-protocol.trusted-networks", "is not a list of networks")]
    [InlineData("""supervisor.tcp.proxy-protocol { enabled = on, trusted-networks = ["10.0.0.0/8"], header-timeout = 5 }""", "supervisor.tcp.proxy-protocol.header-timeout", "needs a unit")]
    [InlineData("""supervisor.tcp.proxy-protocol.trusted-network = ["10.0.0.0/8"]""", "supervisor.tcp.proxy-protocol.trusted-network", "did you mean supervisor.tcp.proxy-protocol.trusted-networks?")]
    [InlineData("""supervisor.websocket.proxy-protocol.enabled = on""", "supervisor.websocket.proxy-protocol", "is not a known key")]
    public void A_bad_proxy_protocol_setting_must_name_its_key(string hocon, string key, string message)
    {
        var error = Assert.Throws<ConfigurationError>(() => Read(hocon));
        Assert.True(error.Message.Contains(message), error.Message);
        Assert.Equal(key, error.Key);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void The_websocket_listener_must_not_inherit_the_tcp_listeners_proxy_protocol()
    {
        var config = SupervisorConfig.Build("""supervisor.tcp.proxy-protocol { enabled = on, trusted-networks = ["10.0.0.0/8"] }""", null);
        var settings = SupervisorConfig.Read(config);
        Assert.NotNull(settings.Listeners.Single().ProxyProtocol);
        Assert.Null(OperatorConfig.Read(config, settings).WebSocket.Listener.ProxyProtocol);
    }
}
