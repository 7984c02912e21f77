using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace Supervisor.Tests.Processes;

/// <summary>What the service writes to its console at the default level, and the standard formatter switch.</summary>
[Collection(ProcessCollection.Name)]
public sealed class LoggingProcessTests(ITestOutputHelper output)
{
    private static string WithHttp(int port) => ServiceProcess.Config($"supervisor.http {{ enabled = on, port = {port} }}");

    [Fact]
    public async Task Http_requests_must_not_be_logged_at_the_default_level()
    {
        var port = Supervisor.Tests.Client.ClientTestSupport.FreePort();
        using var service = ServiceProcess.Start(WithHttp(port), output: output);
        await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20));
        await service.WaitForLineAsync(l => l.Contains($"Listener http accepting on 127.0.0.1:{port}", StringComparison.Ordinal), TimeSpan.FromSeconds(20), "http listener");
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        foreach (var path in new[] { "/api/stats", "/healthz", "/readyz", "/metrics", "/api/connections" })
            (await http.GetAsync(path)).EnsureSuccessStatusCode();
        await Task.Delay(500);
        // ASP.NET Core's per-request lines (Hosting.Diagnostics, Routing, Http.Result: five or six a request) come
        // from its Microsoft.AspNetCore.* categories; the service's own start-up lines do not count.
        var linesAfterStart = service.StandardOutput.Where(l => l.Contains(" Microsoft.AspNetCore.", StringComparison.Ordinal)).ToArray();
        Assert.True(linesAfterStart.Length == 0, "lines for 5 requests:\n" + string.Join('\n', linesAfterStart));
    }

    [Fact]
    public async Task The_json_formatter_must_give_one_json_object_per_line()
    {
        using var service = ServiceProcess.Start(ServiceProcess.Config(), output: output,
            environment: new Dictionary<string, string> { ["Logging__Console__FormatterName"] = "json" });
        await service.WaitForLineAsync(l => l.Contains("accepting on", StringComparison.Ordinal), TimeSpan.FromSeconds(20), "the listener's line");
        service.Signal(ChildProcess.SigTerm);
        Assert.Equal(0, await service.WaitForExitAsync(TimeSpan.FromSeconds(15)));
        Assert.NotEmpty(service.StandardOutput);
        foreach (var line in service.StandardOutput.Where(l => l.Length > 0))
        {
            using var json = JsonDocument.Parse(line);
            Assert.True(json.RootElement.TryGetProperty("Category", out _), line);
            Assert.True(json.RootElement.TryGetProperty("Message", out _), line);
        }
        // Akka's own lines come through as plain messages, without Akka's second timestamp.
        Assert.Contains(service.StandardOutput, l => l.Contains("\"Category\":\"Akka.Actor.CoordinatedShutdown\"", StringComparison.Ordinal)
                                                     && !l.Contains("[INFO][", StringComparison.Ordinal));
    }
}
