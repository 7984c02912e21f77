using System.Net;
using System.Net.Sockets;
using Supervisor.Tests.Processes;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Http;

/// <summary><c>Supervisor status</c> run as the built executable against a running service.</summary>
[Collection(ProcessCollection.Name)]
public sealed class StatusCommandTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ExitWithin = TimeSpan.FromSeconds(20);

    private async Task<ChildProcess> RunStatusAsync(params string[] arguments)
    {
        var status = new ChildProcess("Supervisor status", Tools.DotnetHost, [ServiceProcess.SupervisorDll, "status", .. arguments], output: output);
        if (await status.WaitForExitAsync(ExitWithin) is null)
        {
            status.Dispose();
            throw new TimeoutException($"Supervisor status did not exit within {ExitWithin.TotalSeconds} s");
        }
        return status;
    }

    [Fact]
    public async Task Status_must_print_totals_suspect_connections_and_active_alerts_of_a_running_service()
    {
        var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        var closedPort = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop(); // nothing listens there now
        await using var service = await TestService.StartAsync($$"""
            supervisor.heartbeat { interval = 300ms, timeout = 60s }
            supervisor.tcp.limits.first-frame-timeout = off   # silent peers stay, suspect
            supervisor.monitor.rules { crowd { metric = connections.active, raise-above = 1, clear-below = 0, severity = critical } }
            supervisor.probes.gone { kind = tcp-connect, endpoint = "127.0.0.1:{{closedPort}}", interval = 100ms, timeout = 100ms, rise = 1, fall = 1 }
            """);
        using var api = new ApiClient(service);
        using var silent = await TestPeer.ConnectAsync(service.Port);
        using var other = await TestPeer.ConnectAsync(service.Port);
        using (var leaving = await TestPeer.ConnectAsync(service.Port)) { }
        await api.WaitForAsync("/api/connections?state=suspect", p => p.GetProperty("total").GetInt32() == 2);
        await api.WaitForAsync("/api/alerts", a => a.GetProperty("active").EnumerateArray().Any(x => x.GetProperty("rule").GetString() == "crowd"));
        await api.WaitForAsync("/api/alerts", a => a.GetProperty("active").GetArrayLength() == 2);
        var suspectIds = (await api.GetOkAsync("/api/connections?state=suspect")).GetProperty("items").EnumerateArray()
            .Select(c => c.GetProperty("id").GetString()!).ToArray();

        using var status = await RunStatusAsync("--url", $"http://127.0.0.1:{service.HttpPort}");
        var stdout = string.Join('\n', status.StandardOutput);
        if (await status.WaitForExitAsync(TimeSpan.Zero) != 0) throw status.Failure("status did not exit 0");
        Assert.Empty(status.StandardError);

        Assert.Contains($"Supervisor at http://127.0.0.1:{service.HttpPort}/", stdout);
        var totals = status.StandardOutput.SkipWhile(l => l != "TOTALS").Skip(1).Take(2).ToArray();
        Assert.Equal(["ACTIVE", "ACCEPTED", "CLOSED", "HEARTBEATS", "BYTES IN", "BYTES OUT"],
            totals[0].Split("  ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.Equal(["2", "3", "1"], totals[1].Split("  ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[..3]);
        Assert.Contains(status.StandardOutput, l => l.Trim().StartsWith("peer-closed", StringComparison.Ordinal) && l.TrimEnd().EndsWith(" 1", StringComparison.Ordinal));
        Assert.Contains("SUSPECT CONNECTIONS (2 of 2 live)", stdout);
        foreach (var id in suspectIds)
            Assert.Contains(status.StandardOutput, l => l.Trim().StartsWith(id + " ", StringComparison.Ordinal) && l.Contains("127.0.0.1:", StringComparison.Ordinal));
        Assert.Contains("PROBES (0 of 1 up)", stdout);
        Assert.Contains(status.StandardOutput, l => l.Trim().StartsWith("gone ", StringComparison.Ordinal) && l.Contains(" down ", StringComparison.Ordinal));
        Assert.Contains("ACTIVE ALERTS (2)", stdout); // crowd, and probe-down:gone
        Assert.Contains(status.StandardOutput, l => l.Contains(" probe-down:gone ", StringComparison.Ordinal));
        Assert.Contains(status.StandardOutput, l => l.Trim().StartsWith("critical", StringComparison.Ordinal) && l.Contains(" crowd ", StringComparison.Ordinal));
        Assert.Contains(status.StandardOutput, l => l.Trim().StartsWith("SEVERITY", StringComparison.Ordinal) && l.Contains(" VALUE  PEAK ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Status_must_exit_1_with_one_line_when_the_service_is_unreachable()
    {
        // A port that was just free: nothing listens there.
        int port;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            port = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }
        using var status = await RunStatusAsync("--url", $"http://127.0.0.1:{port}");
        Assert.Equal(1, await status.WaitForExitAsync(TimeSpan.Zero));
        var line = Assert.Single(status.StandardError, l => l.Trim().Length > 0);
        Assert.StartsWith($"supervisor: cannot get the status of http://127.0.0.1:{port}/: ", line);
        Assert.Contains("refused", line, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(status.StandardOutput, l => l.Trim().Length > 0);
    }

    [Fact]
    public async Task Status_by_a_name_the_service_does_not_allow_must_exit_1_naming_allowed_hosts()
    {
        await using var service = await TestService.StartAsync("""supervisor.http.allowed-hosts = ["ops.example.test"]""");
        using var status = await RunStatusAsync("--url", $"http://localhost:{service.HttpPort}");
        Assert.Equal(1, await status.WaitForExitAsync(TimeSpan.Zero));
        var line = Assert.Single(status.StandardError, l => l.Trim().Length > 0);
        Assert.Contains("400", line);
        Assert.Contains("supervisor.http.allowed-hosts", line);

        using var byAddress = await RunStatusAsync("--url", $"http://127.0.0.1:{service.HttpPort}");
        Assert.Equal(0, await byAddress.WaitForExitAsync(TimeSpan.Zero));
    }

    [Theory]
    [InlineData("--url", "ftp://example")]
    [InlineData("--bogus")]
    [InlineData("--url")]
    public async Task Status_must_exit_2_on_bad_arguments(params string[] arguments)
    {
        using var status = await RunStatusAsync(arguments);
        Assert.Equal(2, await status.WaitForExitAsync(TimeSpan.Zero));
        Assert.StartsWith("supervisor: bad arguments: ", Assert.Single(status.StandardError, l => l.Trim().Length > 0));
    }

    [Fact]
    public async Task Status_json_must_parse_and_config_must_find_the_api()
    {
        await using var service = await TestService.StartAsync("supervisor.heartbeat { interval = 300ms, timeout = 60s }");
        using var api = new ApiClient(service);
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await peer.SendHeartbeatAsync(1); // a first frame: the first-frame deadline would close a silent one
        Assert.NotNull(await peer.ReceiveFrameAsync());
        await api.WaitForAsync("/api/stats", s => s.GetProperty("active").GetInt32() == 1);

        using var json = await RunStatusAsync("--json", "--url", $"http://127.0.0.1:{service.HttpPort}");
        Assert.Equal(0, await json.WaitForExitAsync(TimeSpan.Zero));
        using (var document = System.Text.Json.JsonDocument.Parse(string.Join('\n', json.StandardOutput)))
        {
            Assert.Equal(1, document.RootElement.GetProperty("stats").GetProperty("active").GetInt32());
            Assert.Equal($"http://127.0.0.1:{service.HttpPort}/", document.RootElement.GetProperty("url").GetString());
        }

        // The service's own file names the API's port: no --url needed.
        var file = Path.Combine(Path.GetTempPath(), $"status-{Guid.NewGuid():N}.conf");
        await File.WriteAllTextAsync(file, $"supervisor.http {{ host = \"127.0.0.1\", port = {service.HttpPort} }}");
        try
        {
            using var byConfig = await RunStatusAsync("--json", "--config", file);
            Assert.Equal(0, await byConfig.WaitForExitAsync(TimeSpan.Zero));
            using var document = System.Text.Json.JsonDocument.Parse(string.Join('\n', byConfig.StandardOutput));
            Assert.Equal(1, document.RootElement.GetProperty("stats").GetProperty("active").GetInt32());
        }
        finally
        {
            File.Delete(file);
        }
    }
}
