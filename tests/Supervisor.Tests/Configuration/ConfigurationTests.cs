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
    public void A_bad_configuration_must_name_its_key(string hocon, string? profile, string key)
    {
        var error = Assert.Throws<ConfigurationError>(() => Read(hocon, profile));
        Assert.Equal(key, error.Key);
        Assert.StartsWith($"bad configuration: {key}: ", error.Message);
        Assert.DoesNotContain('\n', error.Message);
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
    public void An_unknown_socket_completions_mode_must_name_the_key()
    {
        var error = Assert.Throws<ConfigurationError>(() => Read("supervisor.io.inline-socket-completions = sometimes"));
        Assert.Contains("supervisor.io.inline-socket-completions", error.Message);
    }
}
