using System.Globalization;
using System.Text.RegularExpressions;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Http;

/// <summary><c>GET /metrics</c>: Prometheus text exposition of the <c>Supervisor</c> meter, by the OpenTelemetry exporter.</summary>
[Collection(OperatorSurfaceCollection.Name)]
public sealed partial class MetricsTests(ITestOutputHelper output)
{
    /// <summary>One sample of the text format: <c>name{label="value",…} value [timestamp]</c>.</summary>
    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*)\})? (?<value>[-+]?(\d+(\.\d*)?([eE][-+]?\d+)?|NaN|Inf))( -?\d+)?$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex("""^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)|EOF)$""")]
    private static partial Regex CommentLine();

    private sealed record Sample(string Name, string Labels, double Value);

    /// <summary>Parses the exposition strictly: every line is a comment or a sample, or the test fails.</summary>
    private static IReadOnlyList<Sample> Parse(string text)
    {
        var samples = new List<Sample>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0) continue;
            if (line.StartsWith('#'))
            {
                Assert.Matches(CommentLine(), line);
                continue;
            }
            var match = SampleLine().Match(line);
            Assert.True(match.Success, $"not a Prometheus sample line: {line}");
            var value = match.Groups["value"].Value switch
            {
                "+Inf" or "Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                var v => double.Parse(v, CultureInfo.InvariantCulture),
            };
            samples.Add(new Sample(match.Groups["name"].Value, match.Groups["labels"].Value, value));
        }
        return samples;
    }

    [Fact]
    public async Task Metrics_must_parse_as_prometheus_text_and_carry_connection_close_reason_heartbeat_and_rtt_series()
    {
        await using var service = await TestService.StartAsync("supervisor.heartbeat { interval = 200ms, timeout = 10s, server-ping = on }");
        using var api = new ApiClient(service);

        // One peer answers the server's pings (RTT), sends a heartbeat, then leaves (peer-closed).
        using (var peer = await TestPeer.ConnectAsync(service.Port))
        {
            await peer.SendHeartbeatAsync(1);
            Assert.Equal(FrameType.HeartbeatResponse, (await peer.ReceiveFrameAsync())!.Type);
            for (var answered = 0; answered < 2;)
            {
                var ping = await peer.ReceiveFrameAsync();
                Assert.Equal(FrameType.Heartbeat, ping!.Type);
                await peer.SendFrameAsync(Frame.HeartbeatResponse(1, ping.Seq));
                answered++;
            }
        }
        using var staying = await TestPeer.ConnectAsync(service.Port);
        // A first frame, or the first-frame deadline (auto: 300 ms here) closes it before the scrape on a busy machine.
        await staying.SendHeartbeatAsync(2);
        Assert.Equal(FrameType.HeartbeatResponse, (await staying.ReceiveFrameAsync())!.Type);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("closedByReason").GetProperty("peer-closed").GetInt64() == 1
            && s.GetProperty("active").GetInt64() == 1);

        using var response = await api.Http.GetAsync("/metrics");
        Assert.True(response.IsSuccessStatusCode, $"/metrics: {(int)response.StatusCode}");
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        output.WriteLine(text);
        var samples = Parse(text);

        double Value(string name, string? label = null) =>
            samples.Where(s => s.Name == name && (label is null || s.Labels.Contains(label, StringComparison.Ordinal))).Sum(s => s.Value);

        Assert.True(Value("supervisor_connections_accepted_total") >= 2);
        Assert.True(Value("supervisor_connections_active") >= 1);
        Assert.True(Value("supervisor_connections_closed_total", "reason=\"peer-closed\"") >= 1);
        Assert.True(Value("supervisor_heartbeats_received_total") >= 1);
        Assert.True(Value("supervisor_heartbeat_rtt_seconds_count") >= 2);
        Assert.Contains(samples, s => s.Name == "supervisor_heartbeat_rtt_seconds_bucket" && s.Labels.Contains("le=\"+Inf\"", StringComparison.Ordinal));
        Assert.True(Value("supervisor_network_io_bytes_total", "network_io_direction=\"receive\"") > 0);
        Assert.Contains("# TYPE supervisor_connections_closed_total counter", text);
        Assert.Contains("# TYPE supervisor_heartbeat_rtt_seconds histogram", text);
    }
}
