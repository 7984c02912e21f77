using Supervisor.Configuration;

namespace Supervisor.Tests.Configuration;

public sealed class ConfigurationTests
{
    private static SupervisorSettings Read(string? hocon, string? profile = null) => SupervisorConfig.Read(SupervisorConfig.Build(hocon, profile));

    [Theory]
    [InlineData("web-service", 600, 30, 3, 30, 90)]
    [InlineData("realtime-game", 60, 10, 3, 5, 15)]
    [InlineData("iot-device", 300, 60, 5, 60, 180)]
    [InlineData("database-connection", 120, 15, 3, 30, 60)]
    public void Profiles_must_carry_the_source_documents_figures(string profile, int idle, int interval, int probes, int heartbeat, int timeout)
    {
        var listener = Read(null, profile).Listeners.Single();
        Assert.Equal(profile, listener.Profile);
        Assert.Equal(TimeSpan.FromSeconds(idle), listener.KeepAlive.Idle);
        Assert.Equal(TimeSpan.FromSeconds(interval), listener.KeepAlive.Interval);
        Assert.Equal(probes, listener.KeepAlive.Probes);
        Assert.Equal(TimeSpan.FromSeconds(heartbeat), listener.Heartbeat.Interval);
        Assert.Equal(TimeSpan.FromSeconds(timeout), listener.Heartbeat.Timeout);
    }

    [Fact]
    public void Defaults_must_be_the_web_service_profile_on_port_8081()
    {
        var settings = Read(null);
        Assert.Equal("web-service", settings.Profile);
        var listener = settings.Listeners.Single();
        Assert.Equal(("tcp", "0.0.0.0", 8081), (listener.Name, listener.Host, listener.Port));
        Assert.Equal(64 * 1024, listener.MaxFrameLength);
        Assert.Equal(10000, listener.MaxConnections);
        Assert.Equal(LivenessMode.AnyFrame, listener.Heartbeat.Liveness);
        Assert.False(listener.Heartbeat.ServerPing);
        Assert.Null(listener.KeepAlive.UserTimeout);
    }

    [Fact]
    public void A_file_setting_only_the_timeout_must_keep_the_profiles_other_values()
    {
        var listener = Read("supervisor { profile = realtime-game, heartbeat.timeout = 20s }").Listeners.Single();
        Assert.Equal(TimeSpan.FromSeconds(20), listener.Heartbeat.Timeout);
        Assert.Equal(TimeSpan.FromSeconds(5), listener.Heartbeat.Interval);
        Assert.Equal(TimeSpan.FromSeconds(60), listener.KeepAlive.Idle);
    }

    [Fact]
    public void Profile_argument_must_beat_the_profile_key()
    {
        var settings = Read("supervisor.profile = iot-device", "database-connection");
        Assert.Equal("database-connection", settings.Profile);
        Assert.Equal(TimeSpan.FromSeconds(60), settings.Listeners.Single().Heartbeat.Timeout);
    }

    [Fact]
    public void Operator_keys_must_beat_the_profile_argument()
    {
        var listener = Read("supervisor.tcp.keepalive.probes = 9", "iot-device").Listeners.Single();
        Assert.Equal(9, listener.KeepAlive.Probes);
        Assert.Equal(TimeSpan.FromSeconds(300), listener.KeepAlive.Idle);
    }

    [Fact]
    public void A_listener_may_name_its_own_profile()
    {
        var settings = Read("""
            supervisor.listeners {
              games { port = 9001, profile = realtime-game }
              devices { port = 9002, profile = iot-device, heartbeat.liveness = heartbeat-only, max-connections = 50000 }
              plain { port = 9003 }
            }
            """);
        var byName = settings.Listeners.ToDictionary(l => l.Name);
        Assert.Equal(["tcp", "games", "devices", "plain"], settings.Listeners.Select(l => l.Name));
        Assert.Equal((9001, TimeSpan.FromSeconds(15)), (byName["games"].Port, byName["games"].Heartbeat.Timeout));
        Assert.Equal(TimeSpan.FromSeconds(60), byName["games"].KeepAlive.Idle);
        Assert.Equal(LivenessMode.HeartbeatOnly, byName["devices"].Heartbeat.Liveness);
        Assert.Equal(TimeSpan.FromSeconds(180), byName["devices"].Heartbeat.Timeout);
        Assert.Equal(50000, byName["devices"].MaxConnections);
        Assert.Equal(("web-service", TimeSpan.FromSeconds(90)), (byName["plain"].Profile, byName["plain"].Heartbeat.Timeout));
        Assert.Equal(TimeSpan.FromSeconds(90), byName["tcp"].Heartbeat.Timeout);
    }

    [Theory]
    [InlineData("supervisor.heartbeat { interval = 30s, timeout = 30s }", null, "supervisor.heartbeat.timeout")]
    [InlineData("supervisor.heartbeat { interval = 30s, timeout = 10s }", null, "supervisor.heartbeat.timeout")]
    [InlineData("supervisor.heartbeat.interval = 0s", null, "supervisor.heartbeat.interval")]
    [InlineData("supervisor.heartbeat.interval = -5s", null, "supervisor.heartbeat.interval")]
    [InlineData("supervisor.heartbeat.interval = soon", null, "supervisor.heartbeat.interval")]
    [InlineData("supervisor.profile = nope", null, "supervisor.profile")]
    [InlineData("", "nope", "--profile")]
    [InlineData("supervisor.tcp.port = 70000", null, "supervisor.tcp.port")]
    [InlineData("supervisor.tcp.port = -1", null, "supervisor.tcp.port")]
    [InlineData("supervisor.tcp.keepalive.idle = 1500ms", null, "supervisor.tcp.keepalive.idle")]
    [InlineData("supervisor.tcp.keepalive.probes = 0", null, "supervisor.tcp.keepalive.probes")]
    [InlineData("supervisor.tcp.user-timeout = 0s", null, "supervisor.tcp.user-timeout")]
    [InlineData("supervisor.tcp.max-frame-length = lots", null, "supervisor.tcp.max-frame-length")]
    [InlineData("supervisor.heartbeat.liveness = sometimes", null, "supervisor.heartbeat.liveness")]
    [InlineData("supervisor.listeners.games { port = 9001, profile = chess }", null, "supervisor.listeners.games.profile")]
    [InlineData("supervisor.listeners.games { port = 9001, heartbeat { interval = 5s, timeout = 5s } }", null, "supervisor.listeners.games.heartbeat.timeout")]
    [InlineData("supervisor.listeners.games.port = 8081", null, "supervisor.listeners.games.port")]
    [InlineData("supervisor.tcp.codec = protobuf", null, "supervisor.tcp.codec")]
    [InlineData("supervisor.listeners.games { port = 9001, codec = json }", null, "supervisor.listeners.games.codec")]
    [InlineData("supervisor.listeners.games { port = 9001, codek = binary }", null, "supervisor.listeners.games.codek")]
    [InlineData("supervisor.client.codec = jsonlines", null, "supervisor.client.codec")]
    public void A_bad_configuration_must_name_its_key(string hocon, string? profile, string key)
    {
        var error = Assert.Throws<ConfigurationError>(() => Read(hocon, profile));
        Assert.Equal(key, error.Key);
        Assert.StartsWith($"bad configuration: {key}: ", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void The_codec_must_default_to_json_lines_and_be_chosen_per_listener_and_for_the_client()
    {
        var settings = Read("supervisor.listeners.devices { port = 9002, codec = binary }\nsupervisor.client.codec = binary", null);
        Assert.Equal("json-lines", settings.Listeners.Single(l => l.Name == "tcp").Codec.Name);
        Assert.Equal("binary", settings.Listeners.Single(l => l.Name == "devices").Codec.Name);
        Assert.Equal("binary", settings.Client.Codec.Name);
        Assert.Equal("json-lines", Read("", null).Client.Codec.Name);
    }

    [Fact]
    public void A_missing_config_file_must_name_the_option()
    {
        var error = Assert.Throws<ConfigurationError>(() => SupervisorConfig.Load("/nonexistent/supervisor.conf", null));
        Assert.Equal("--config", error.Key);
    }

    [Fact]
    public void Every_shipped_profile_must_be_embedded()
    {
        Assert.Equal(["database-connection", "iot-device", "realtime-game", "web-service"], SupervisorConfig.KnownProfiles);
    }

    [Fact]
    public void Registry_status_refresh_and_socket_completions_must_default_to_10s_and_auto()
    {
        var settings = Read(null);
        Assert.Equal(TimeSpan.FromSeconds(10), settings.RegistryStatusRefresh);
        Assert.Equal(InlineSocketCompletions.Auto, settings.InlineSocketCompletions);
        var tuned = Read("supervisor { registry.status-refresh = 30s, io.inline-socket-completions = off }");
        Assert.Equal(TimeSpan.FromSeconds(30), tuned.RegistryStatusRefresh);
        Assert.Equal(InlineSocketCompletions.Off, tuned.InlineSocketCompletions);
    }

    [Fact]
    public void The_tcp_transport_must_default_to_auto_read_epoll_and_sockets_per_listener_and_name_the_key_of_a_bad_value()
    {
        var settings = Read(null);
        Assert.All(settings.Listeners, l => Assert.Equal(TcpTransportKind.Auto, l.Transport));
        // auto is epoll where it applies (plain TCP on Linux), sockets where it does not (TLS, PROXY protocol, other OSes).
        Assert.All(settings.Listeners, l => Assert.Equal(Supervisor.Transport.Epoll.Supported ? TcpTransportKind.Epoll : TcpTransportKind.Sockets,
            Supervisor.Transport.TcpTransports.For(l)));
        Assert.Equal(0, settings.EpollLoops);
        var sockets = Read("supervisor.tcp.transport = sockets");
        Assert.Equal(TcpTransportKind.Sockets, Supervisor.Transport.TcpTransports.For(sockets.Listeners.Single()));
        var autoProxied = Read("supervisor.tcp.proxy-protocol { enabled = on, trusted-networks = [\"10.0.0.0/8\"] }");
        Assert.Equal(TcpTransportKind.Sockets, Supervisor.Transport.TcpTransports.For(autoProxied.Listeners.Single()));
        Assert.StartsWith("tcp.transport = auto: PROXY", Supervisor.Transport.TcpTransports.WhyNotEpoll(autoProxied.Listeners.Single()));
        var epoll = Read("supervisor { tcp.transport = epoll, io.epoll-loops = 2, listeners.games { port = 9001 } }");
        Assert.All(epoll.Listeners, l => Assert.Equal(TcpTransportKind.Epoll, l.Transport));
        Assert.Equal(2, epoll.EpollLoops);
        Assert.Contains("supervisor.tcp.transport", Assert.Throws<ConfigurationError>(() => Read("supervisor.tcp.transport = uring")).Message);
        Assert.Contains("supervisor.io.epoll-loops", Assert.Throws<ConfigurationError>(() => Read("supervisor.io.epoll-loops = 0")).Message);
        // TLS and PROXY-protocol listeners keep sockets whatever was asked (their first bytes are read through .NET's engine).
        var proxied = Read("supervisor.tcp { transport = epoll, proxy-protocol { enabled = on, trusted-networks = [\"10.0.0.0/8\"] } }");
        Assert.Equal(TcpTransportKind.Sockets, Supervisor.Transport.TcpTransports.For(proxied.Listeners.Single()));
    }

    [Fact]
    public void An_unknown_socket_completions_mode_must_name_the_key()
    {
        var error = Assert.Throws<ConfigurationError>(() => Read("supervisor.io.inline-socket-completions = sometimes"));
        Assert.Contains("supervisor.io.inline-socket-completions", error.Message);
    }
    [Theory]
    [InlineData(null, "web-service", 45_000)]       // 30 s + min(30 s, 60 s) / 2
    [InlineData(null, "realtime-game", 7_500)]      // 5 s + min(5 s, 10 s) / 2
    [InlineData(null, "database-connection", 45_000)]
    [InlineData("supervisor.heartbeat { interval = 30s, timeout = 35s }", null, 32_500)] // 30 s + min(30 s, 5 s) / 2: still below the timeout
    [InlineData("supervisor.tcp.limits.first-frame-timeout = 300ms", null, 300)]
    public void First_frame_timeout_must_default_to_auto_between_the_heartbeat_interval_and_timeout(string? hocon, string? profile, int expectedMs)
    {
        var listener = Read(hocon, profile).Listeners.Single();
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), listener.Limits.FirstFrameTimeout);
        Assert.InRange(listener.Limits.FirstFrameTimeout!.Value, TimeSpan.Zero, listener.Heartbeat.Timeout);
    }

    [Theory]
    [InlineData("supervisor.tcp.limits.first-frame-timeout = off")]
    [InlineData("supervisor.heartbeat.enabled = off")] // auto: silent peers are legitimate without a heartbeat
    public void First_frame_timeout_must_be_off_when_set_off_or_when_auto_has_no_heartbeat(string hocon) =>
        Assert.Null(Read(hocon).Listeners.Single().Limits.FirstFrameTimeout);

    [Fact]
    public void Per_address_cap_and_data_frame_limit_must_be_off_by_default_and_take_a_number()
    {
        var defaults = Read(null).Listeners.Single().Limits;
        Assert.Null(defaults.MaxConnectionsPerAddress);
        Assert.Null(defaults.MaxDataFramesPerSecond);
        Assert.Equal(100, defaults.MaxFramesPerSecond);
        var set = Read("supervisor.tcp.limits { max-connections-per-address = 10, max-data-frames-per-second = 500 }").Listeners.Single().Limits;
        Assert.Equal(10, set.MaxConnectionsPerAddress);
        Assert.Equal(500, set.MaxDataFramesPerSecond);
        Assert.Equal("supervisor.tcp.limits.max-connections-per-address",
            Assert.Throws<ConfigurationError>(() => Read("supervisor.tcp.limits.max-connections-per-address = 0")).Key);
    }
}
