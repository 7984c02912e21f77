using System.Net;
using System.Net.Sockets;
using Supervisor.Configuration;
using Supervisor.Http;
using Supervisor.Tests.Processes;
using Xunit.Abstractions;

namespace Supervisor.Tests.Http;

/// <summary><c>supervisor.http</c> and <c>supervisor.websocket</c>: read, validated, and enforced at start-up.</summary>
public sealed class OperatorConfigurationTests
{
    private static OperatorSettings Read(string hocon)
    {
        var config = SupervisorConfig.Build(hocon, null);
        return OperatorConfig.Read(config, SupervisorConfig.Read(config));
    }

    [Fact]
    public void Defaults_must_be_the_reference_values_and_the_websocket_listener_must_inherit_the_tcp_keys()
    {
        var settings = Read("supervisor.tcp { max-frame-length = 2KiB, max-connections = 77 }");
        var http = settings.Http;
        Assert.Equal((true, "127.0.0.1", 8080, (string?)null, 64), (http.Enabled, http.Host, http.Port, http.AdminToken, http.MaxEventClients));
        Assert.Equal(["localhost"], http.AllowedHosts);
        Assert.True(http.LoopbackOnly);
        var ws = settings.WebSocket;
        Assert.True(ws.Enabled);
        Assert.Equal(("0.0.0.0", 8082, "/ws"), (ws.Host, ws.Port, ws.Path));
        Assert.Equal((TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10)), (ws.PingInterval, ws.PongTimeout));
        Assert.Empty(ws.AllowedOrigins);
        Assert.Equal("websocket", ws.Listener.Name);
        Assert.Equal(2048, ws.Listener.MaxFrameLength);
        Assert.Equal(77, ws.Listener.MaxConnections);
        // The WebSocket ping/pong is this listener's heartbeat; the application deadline is off.
        Assert.False(ws.Listener.Heartbeat.Enabled);
        Assert.True(settings.NeedsWebServer);
    }

    [Fact]
    public void Own_websocket_keys_must_beat_the_tcp_ones_and_origins_must_be_normalised()
    {
        var ws = Read("""
            supervisor.tcp.max-frame-length = 2KiB
            supervisor.websocket { max-frame-length = 4KiB, allowed-origins = ["HTTPS://App.Example.com:443", "http://localhost:3000"] }
            supervisor.http.admin-token = "t0ken"
            """);
        Assert.Equal(4096, ws.WebSocket.Listener.MaxFrameLength);
        Assert.Equal(["https://app.example.com", "http://localhost:3000"], ws.WebSocket.AllowedOrigins);
        Assert.Equal("t0ken", ws.Http.AdminToken);
        var hosts = Read("""supervisor.http.allowed-hosts = ["Ops.Example.com", "*.svc.cluster.local", "[::1]", "10.0.0.5", "*"]""").Http.AllowedHosts;
        Assert.Equal(["ops.example.com", "*.svc.cluster.local", "[::1]", "10.0.0.5", "*"], hosts);
        Assert.False(Read("supervisor.http.host = \"0.0.0.0\"").Http.LoopbackOnly);
        Assert.False(Read("supervisor { http.enabled = off, websocket.enabled = off }").NeedsWebServer);
    }

    [Theory]
    [InlineData("supervisor.http.port = 70000", "supervisor.http.port", "70000")]
    [InlineData("supervisor.http.host = \"localhost\"", "supervisor.http.host", "localhost")]
    [InlineData("supervisor.http.admin-token = \"two words\"", "supervisor.http.admin-token", "whitespace")]
    [InlineData("supervisor.http.allowed-hosts = [\"localhost:8080\"]", "supervisor.http.allowed-hosts", "localhost:8080")]
    [InlineData("supervisor.http.allowed-hosts = [\"https://ops.example.com\"]", "supervisor.http.allowed-hosts", "https://ops.example.com")]
    [InlineData("supervisor.http.allowed-hosts = [\"\"]", "supervisor.http.allowed-hosts", "''")]
    [InlineData("supervisor.http.max-event-clients = 0", "supervisor.http.max-event-clients", "0")]
    [InlineData("supervisor.websocket.port = -1", "supervisor.websocket.port", "-1")]
    [InlineData("supervisor.websocket.path = \"ws\"", "supervisor.websocket.path", "'ws'")]
    [InlineData("supervisor.websocket.ping-interval = 0s", "supervisor.websocket.ping-interval", "0s")]
    [InlineData("supervisor.websocket.pong-timeout = soon", "supervisor.websocket.pong-timeout", "soon")]
    [InlineData("supervisor.websocket.allowed-origins = [\"app.example.com\"]", "supervisor.websocket.allowed-origins", "app.example.com")]
    [InlineData("supervisor.websocket.max-frame-length = 8B", "supervisor.websocket.max-frame-length", "8")]
    [InlineData("supervisor { http.port = 9000, websocket { host = \"127.0.0.1\", port = 9000 } }", "supervisor.websocket.port", "9000")]
    [InlineData("supervisor { tcp.port = 9000, http.port = 9000 }", "supervisor.http.port", "9000")]
    public void A_bad_value_must_be_refused_naming_its_key(string hocon, string key, string value)
    {
        var error = Assert.Throws<ConfigurationError>(() => Read(hocon));
        Assert.Equal(key, error.Key);
        Assert.Contains(value, error.Message);
    }
}

/// <summary>The same checks as the running executable sees them: exit 2 naming the key, exit 1 on a taken port.</summary>
[Collection(ProcessCollection.Name)]
public sealed class OperatorStartupTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ExitWithin = TimeSpan.FromSeconds(15);

    private async Task<string> ExpectExit(int expected, string hocon)
    {
        using var service = ServiceProcess.Start(hocon, output: output);
        var code = await service.WaitForExitAsync(ExitWithin);
        if (code != expected) throw service.Failure($"exit code {code?.ToString() ?? "none"}, expected {expected}");
        var errors = service.StandardError.Where(l => l.Trim().Length > 0).ToArray();
        if (errors.Length != 1) throw service.Failure($"{errors.Length} non-empty stderr lines, expected exactly one");
        return errors[0];
    }

    [Theory]
    [InlineData("supervisor.http.port = 70000", "supervisor.http.port", "70000")]
    [InlineData("supervisor.websocket.allowed-origins = [\"*\"]", "supervisor.websocket.allowed-origins", "'*'")]
    [InlineData("supervisor.websocket.pong-timeout = -2s", "supervisor.websocket.pong-timeout", "-2s")]
    public async Task Service_must_exit_2_naming_the_key_of_a_bad_http_or_websocket_value(string extra, string key, string value)
    {
        var line = await ExpectExit(2, ServiceProcess.Config(extra));
        Assert.StartsWith($"supervisor: bad configuration: {key}:", line, StringComparison.Ordinal);
        Assert.Contains(value, line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Service_must_exit_1_with_one_line_when_the_http_port_is_taken()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        var port = ((IPEndPoint)taken.LocalEndPoint!).Port;

        var line = await ExpectExit(1, ServiceProcess.Config($"supervisor.http {{ enabled = on, host = \"127.0.0.1\", port = {port} }}"));
        Assert.StartsWith("supervisor: ", line, StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{port}", line, StringComparison.Ordinal);
        Assert.Contains("address already in use", line, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Service_with_http_on_must_log_the_bound_port_answer_readyz_and_exit_0_on_sigterm()
    {
        using var service = ServiceProcess.Start(ServiceProcess.Config("supervisor.http { enabled = on, port = 0 }"), output: output);
        var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20), listener: "http");
        using var api = new ApiClient(new Uri($"http://127.0.0.1:{port}/"));
        Assert.Equal("healthy", (await api.GetOkAsync("/readyz")).GetProperty("status").GetString());

        service.Signal(ChildProcess.SigTerm);
        Assert.Equal(0, await service.WaitForExitAsync(TimeSpan.FromSeconds(10)));
    }
}
