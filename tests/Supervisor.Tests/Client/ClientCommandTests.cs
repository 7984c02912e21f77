using System.Diagnostics;
using Supervisor.Tests.Processes;
using Xunit.Abstractions;
using static Supervisor.Tests.Client.ClientTestSupport;

namespace Supervisor.Tests.Client;

/// <summary><c>Supervisor client</c> (DESIGN §6) run as a real process against the service run as a real process.</summary>
[Collection(ProcessCollection.Name)]
public sealed class ClientCommandTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Startup = TimeSpan.FromSeconds(20);

    private static int Count(ChildProcess process, string text) => process.StandardOutput.Count(l => l.Contains(text, StringComparison.Ordinal));

    [Fact]
    public async Task Client_command_with_codec_binary_must_heartbeat_with_a_binary_listener_and_read_its_close_notice()
    {
        var port = FreePort();
        using var service = ServiceProcess.Start(ServiceProcess.Config($"supervisor.tcp {{ port = {port}, codec = binary }}"), output: output);
        Assert.Equal(port, await service.WaitForListenerPortAsync(Startup));

        using var client = new ChildProcess("Supervisor client", Tools.DotnetHost,
            [ServiceProcess.SupervisorDll, "client", "--addr", $"127.0.0.1:{port}", "--interval", "200ms", "--codec", "binary"], output: output);
        await WaitUntilAsync(() => Task.FromResult(Count(client, "heartbeat response seq") >= 3), Startup, "three heartbeat responses over binary");
        Assert.Contains(client.StandardOutput, l => l.Contains("codec binary", StringComparison.Ordinal));

        // The service's server-shutdown notice reaches the client as a binary error frame, decoded.
        service.Signal(ChildProcess.SigTerm);
        Assert.Equal(0, await service.WaitForExitAsync(TimeSpan.FromSeconds(10)));
        await client.WaitForLineAsync(l => l.Contains("error notice: server-shutdown", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "the binary close notice");
        Assert.Empty(client.StandardError);
        client.Signal(ChildProcess.SigTerm);
        Assert.Equal(0, await client.WaitForExitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Client_command_must_print_heartbeat_responses_and_keep_doing_so_across_a_service_restart()
    {
        var port = FreePort();
        var serviceConfig = ServiceProcess.Config($"supervisor.tcp.port = {port}");
        var clientConfig = Path.Combine(Path.GetTempPath(), $"supervisor-client-{Guid.NewGuid():N}.conf");
        await File.WriteAllTextAsync(clientConfig, "supervisor.client.reconnect { min-backoff = 100ms, max-backoff = 400ms }");
        try
        {
            using var first = ServiceProcess.Start(serviceConfig, output: output);
            Assert.Equal(port, await first.WaitForListenerPortAsync(Startup));

            using var client = new ChildProcess("Supervisor client", Tools.DotnetHost,
                [ServiceProcess.SupervisorDll, "client", "--addr", $"127.0.0.1:{port}", "--interval", "200ms", "--config", clientConfig], output: output);
            await WaitUntilAsync(() => Task.FromResult(Count(client, "heartbeat response seq") >= 3), Startup, "three heartbeat responses");
            Assert.Contains(client.StandardOutput, l => l.Contains($"connected to 127.0.0.1:{port}", StringComparison.Ordinal));
            Assert.Matches(@"heartbeat response seq \d+ rtt \d+\.\d\d ms", client.StandardOutput.First(l => l.Contains("heartbeat response", StringComparison.Ordinal)));

            // The service goes away (SIGTERM: it announces server-shutdown) and comes back on the same port.
            first.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(10)));
            await client.WaitForLineAsync(l => l.Contains("disconnected: peer-closed", StringComparison.Ordinal) && l.Contains("server-shutdown", StringComparison.Ordinal),
                TimeSpan.FromSeconds(5), "the disconnect");
            var downAt = Stopwatch.GetTimestamp();
            // While the port is closed the client keeps trying, with backoff.
            await client.WaitForLineAsync(l => l.Contains("reconnecting in", StringComparison.Ordinal) && l.Contains("connection refused", StringComparison.Ordinal),
                TimeSpan.FromSeconds(5), "a refused reconnect");
            var responsesBefore = Count(client, "heartbeat response seq");

            using var second = ServiceProcess.Start(serviceConfig, output: output);
            Assert.Equal(port, await second.WaitForListenerPortAsync(Startup));
            await WaitUntilAsync(() => Task.FromResult(Count(client, "connected to") >= 2 && Count(client, "heartbeat response seq") >= responsesBefore + 3),
                TimeSpan.FromSeconds(10), "heartbeat responses after the restart");
            output.WriteLine($"client back with heartbeat responses {Stopwatch.GetElapsedTime(downAt).TotalMilliseconds:F0} ms after the disconnect (service restart included)");

            // First the wait the shutting-down service asked for (its hint, held to the client's max-backoff of 400 ms),
            // then the client's own backoff from attempt 1 while the port is closed.
            var reconnects = client.StandardOutput.Where(l => l.Contains("reconnecting in", StringComparison.Ordinal)).ToArray();
            var asked = System.Text.RegularExpressions.Regex.Match(reconnects[0], @"reconnecting in (\d+) ms \(when the server asked\): peer-closed.*reconnect-after=(\d+)ms");
            Assert.True(asked.Success, reconnects[0]);
            Assert.Equal(Math.Min(long.Parse(asked.Groups[2].Value), 400), long.Parse(asked.Groups[1].Value));
            Assert.Matches(@"reconnecting in \d+ ms \(attempt 1\): connection refused", reconnects[1]);
            Assert.Empty(client.StandardError);

            client.Signal(ChildProcess.SigTerm);
            var code = await client.WaitForExitAsync(TimeSpan.FromSeconds(10));
            if (code != 0) throw client.Failure($"exit code {code?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none within 10 s"} after SIGTERM, expected 0");
        }
        finally
        {
            File.Delete(clientConfig);
        }
    }

    [Theory]
    [InlineData(new string[0], "--addr HOST:PORT is required")]
    [InlineData(new[] { "--addr", "nowhere" }, "--addr: 'nowhere' is not host:port")]
    [InlineData(new[] { "--addr", "127.0.0.1:1", "--interval", "soon" }, "--interval soon")]
    [InlineData(new[] { "--addr", "127.0.0.1:1", "--interval", "1s", "--timeout", "1s" }, "--timeout")]
    public async Task Client_command_must_exit_2_with_one_line_on_bad_arguments(string[] arguments, string mentions)
    {
        using var client = new ChildProcess("Supervisor client", Tools.DotnetHost, [ServiceProcess.SupervisorDll, "client", .. arguments], output: output);
        var code = await client.WaitForExitAsync(TimeSpan.FromSeconds(15));
        if (code != 2) throw client.Failure($"exit code {code}, expected 2");
        var line = Assert.Single(client.StandardError, l => l.Trim().Length > 0);
        Assert.StartsWith("supervisor: ", line);
        Assert.Contains(mentions, line);
    }

    [Fact]
    public async Task Service_must_exit_2_naming_the_key_of_a_bad_probe()
    {
        using var service = ServiceProcess.Start(ServiceProcess.Config("supervisor.probes.cache { kind = memcached, endpoint = \"127.0.0.1:11211\" }"), output: output);
        var code = await service.WaitForExitAsync(TimeSpan.FromSeconds(15));
        if (code != 2) throw service.Failure($"exit code {code}, expected 2");
        var line = Assert.Single(service.StandardError, l => l.Trim().Length > 0);
        Assert.StartsWith("supervisor: bad configuration: supervisor.probes.cache.kind: 'memcached'", line);
    }
}
