using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Supervisor.Tests.Processes;
using Xunit.Abstractions;

namespace Supervisor.Tests.Http;

/// <summary>
/// The real service's <c>/metrics</c> after real traffic, scraped once (<see cref="TrafficScrape"/>): judged by
/// Prometheus's own <c>promtool check metrics</c>, against the bytes the peers counted on their sockets, and
/// against the queries of the shipped Grafana dashboard.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed partial class MetricsConventionTests(MetricsConventionTests.TrafficScrape traffic, ITestOutputHelper output)
    : IClassFixture<MetricsConventionTests.TrafficScrape>
{
    /// <summary>
    /// A service process (server pings every 200 ms, a tcp-connect probe), <see cref="Peers"/> peers that each
    /// send a heartbeat and <see cref="DataFrames"/> data frames, read the responses and echoes, answer one
    /// server ping, then send a line that is not JSON and read the protocol-error notice to EOF; then one scrape.
    /// </summary>
    public sealed class TrafficScrape : IAsyncLifetime
    {
        public const int Peers = 20;
        public const int DataFrames = 5;

        public string Text { get; private set; } = "";
        /// <summary>The bytes of the frames the peers sent (the line that is not JSON is rejected, not a frame, and not counted).</summary>
        public long FrameBytesSentByPeers { get; private set; }
        public long BytesReceivedByPeers { get; private set; }
        public string Log { get; private set; } = "";
        /// <summary>How long after the last close was counted the byte counters on /metrics were exact (at most a second: then they were not).</summary>
        public TimeSpan BytesExactAfter { get; private set; }

        public async Task InitializeAsync()
        {
            using var dependency = new TcpListener(IPAddress.Loopback, 0);
            dependency.Start();
            using var service = ServiceProcess.Start($$"""
                supervisor {
                  tcp.port = 0
                  http { host = "127.0.0.1", port = 0 }
                  websocket.enabled = off
                  heartbeat { interval = 200ms, timeout = 10s, server-ping = on }
                  probes.dependency { kind = tcp-connect, endpoint = "127.0.0.1:{{((IPEndPoint)dependency.LocalEndpoint).Port}}", interval = 500ms, timeout = 500ms, rise = 1, fall = 1 }
                }
                """);
            try
            {
                var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(30));
                var httpPort = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(30), "http");
                using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };

                var peers = await Task.WhenAll(Enumerable.Range(1, Peers).Select(i => RunPeerAsync(port, i)));
                FrameBytesSentByPeers = peers.Sum(p => p.Sent);
                BytesReceivedByPeers = peers.Sum(p => p.Received);

                // Every close is counted when it is decided; wait until all are, and a probe check has run.
                using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                while (true)
                {
                    var stats = JsonDocument.Parse(await http.GetStringAsync("/api/stats", deadline.Token)).RootElement;
                    Text = await http.GetStringAsync("/metrics", deadline.Token);
                    // The exporter serves a scrape from its cache for a moment, so /metrics itself must show every close too.
                    if (stats.GetProperty("active").GetInt64() == 0 && stats.GetProperty("closed").GetInt64() == Peers
                        && Text.Contains("supervisor_probe_latency_seconds_count", StringComparison.Ordinal)
                        && SumOf(Text, "supervisor_connections_closed_total") == Peers)
                        break;
                    await Task.Delay(100, deadline.Token);
                }
                // A scrape reads its instruments one after another, so the byte counters can be read before the last
                // closes are counted in the same answer, and bytes out whose write completed asynchronously are counted
                // when the connection hears of it (seen on a busy machine: 7,712 of 9,206 B and 5,725 of 6,286 B in the
                // scrape that first showed every close). They must be exact within a second (issue 13: current within 1 s).
                var closesCounted = Stopwatch.StartNew();
                while (closesCounted.Elapsed < TimeSpan.FromSeconds(1)
                       && (SumOf(Text, "supervisor_network_io_bytes_total", "network_io_direction=\"transmit\"") != BytesReceivedByPeers
                           || SumOf(Text, "supervisor_network_io_bytes_total", "network_io_direction=\"receive\"") != FrameBytesSentByPeers))
                {
                    await Task.Delay(50, deadline.Token);
                    Text = await http.GetStringAsync("/metrics", deadline.Token);
                }
                BytesExactAfter = closesCounted.Elapsed;
            }
            finally
            {
                Log = string.Join('\n', service.Lines.Select(l => l.Text));
            }
        }

        /// <summary>One peer's conversation; every byte it sends and receives on its socket is counted.</summary>
        private static async Task<(long Sent, long Received)> RunPeerAsync(int port, int index)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            await socket.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
            long sent = 0, received = 0;
            var pending = new StringBuilder();
            var buffer = new byte[4096];

            async Task SendAsync(string line, bool frame = true)
            {
                var bytes = Encoding.UTF8.GetBytes(line + "\n");
                await socket.SendAsync(bytes, SocketFlags.None, timeout.Token);
                if (frame) sent += bytes.Length;
            }

            // The next line from the server, or null at EOF.
            async Task<string?> ReceiveLineAsync()
            {
                while (true)
                {
                    var text = pending.ToString();
                    var newline = text.IndexOf('\n');
                    if (newline >= 0)
                    {
                        pending.Remove(0, newline + 1);
                        return text[..newline];
                    }
                    var read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                    if (read == 0) return null;
                    received += read;
                    pending.Append(Encoding.UTF8.GetString(buffer, 0, read));
                }
            }

            await SendAsync($$"""{"type":0,"timestamp":1,"seq":{{index}}}""");
            for (var i = 0; i < DataFrames; i++) await SendAsync($$"""{"type":2,"timestamp":1,"data":"peer {{index}} frame {{i}}"}""");
            int answers = 0, echoes = 0;
            var pingAnswered = false;
            while (answers < 1 || echoes < DataFrames || !pingAnswered)
            {
                var line = await ReceiveLineAsync() ?? throw new InvalidOperationException($"peer {index}: EOF before its answers");
                using var frame = JsonDocument.Parse(line);
                switch (frame.RootElement.GetProperty("type").GetInt32())
                {
                    case 0: // a server ping: answered, so it has a round trip
                        await SendAsync($$"""{"type":1,"timestamp":1,"seq":{{frame.RootElement.GetProperty("seq").GetInt64()}}}""");
                        pingAnswered = true;
                        break;
                    case 1:
                        answers++;
                        break;
                    case 2:
                        echoes++;
                        break;
                }
            }
            await SendAsync("not json", frame: false);
            string? last = null;
            while (await ReceiveLineAsync() is { } line) last = line;
            if (last is null || !last.Contains("protocol-error", StringComparison.Ordinal))
                throw new InvalidOperationException($"peer {index}: the last line before EOF was not the protocol-error notice: {last}");
            return (sent, received);
        }

        public Task DisposeAsync() => Task.CompletedTask;
    }

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)$""", RegexOptions.Multiline)]
    private static partial Regex SampleLine();

    private double Sum(string name, string? label = null) => SumOf(traffic.Text, name, label);

    private static double SumOf(string text, string name, string? label = null) =>
        SampleLine().Matches(text)
            .Where(m => m.Groups["name"].Value == name && (label is null || m.Groups["labels"].Value.Contains(label, StringComparison.Ordinal)))
            .Sum(m => double.Parse(m.Groups["value"].Value, System.Globalization.CultureInfo.InvariantCulture));

    private static string Repository(string path)
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Supervisor.sln")))
            directory = directory.Parent;
        return Path.Combine(directory?.FullName ?? throw new InvalidOperationException("Supervisor.sln not found above the test binaries"), path);
    }

    [Fact]
    public void Promtool_check_metrics_must_pass_on_metrics_after_heartbeats_data_closes_and_probes()
    {
        var promtool = Tools.Find("promtool") ?? throw new InvalidOperationException("promtool is not installed (scripts/setup.sh installs Debian's prometheus package)");
        var scrape = Path.GetTempFileName();
        try
        {
            File.WriteAllText(scrape, traffic.Text);
            var (code, problems) = Tools.Run("/bin/sh", ["-c", $"\"{promtool}\" check metrics < \"{scrape}\""], TimeSpan.FromSeconds(30));
            output.WriteLine($"promtool exit {code}: {problems}");
            Assert.True(code == 0 && problems.Trim().Length == 0, $"promtool check metrics (exit {code}):\n{problems}\n\n{traffic.Text}");
        }
        finally
        {
            File.Delete(scrape);
        }
    }

    [Fact]
    public void Round_trips_and_probe_latency_must_be_histograms_in_seconds_with_sub_millisecond_buckets()
    {
        Assert.Contains("# TYPE supervisor_heartbeat_rtt_seconds histogram", traffic.Text);
        Assert.Contains("# TYPE supervisor_probe_latency_seconds histogram", traffic.Text);
        Assert.DoesNotContain("_milliseconds", traffic.Text);
        var roundTrips = Sum("supervisor_heartbeat_rtt_seconds_count");
        output.WriteLine($"round trips {roundTrips}, of which under 100 us {Sum("supervisor_heartbeat_rtt_seconds_bucket", "le=\"0.0001\"")}, under 1 ms {Sum("supervisor_heartbeat_rtt_seconds_bucket", "le=\"0.001\"")}, under 30 s {Sum("supervisor_heartbeat_rtt_seconds_bucket", "le=\"30\"")}");
        Assert.True(roundTrips >= TrafficScrape.Peers, $"{roundTrips} round trips for {TrafficScrape.Peers} answered pings");
        foreach (var bound in new[] { "0.0001", "0.00025", "0.0005", "0.001", "30" })
            Assert.Contains($"supervisor_heartbeat_rtt_seconds_bucket{{otel_scope_name=\"Supervisor\",le=\"{bound}\"}}", traffic.Text);
        // Seconds, not milliseconds: a loopback round trip is far under a second.
        Assert.Equal(roundTrips, Sum("supervisor_heartbeat_rtt_seconds_bucket", "le=\"1\""));
        Assert.True(Sum("supervisor_probe_latency_seconds_count") >= 1);
    }

    [Fact]
    public void Bytes_on_metrics_must_equal_what_the_peers_received_notices_included_and_the_frames_they_sent()
    {
        var transmitted = Sum("supervisor_network_io_bytes_total", "network_io_direction=\"transmit\"");
        var received = Sum("supervisor_network_io_bytes_total", "network_io_direction=\"receive\"");
        output.WriteLine($"peers received {traffic.BytesReceivedByPeers} B, /metrics says transmitted {transmitted} B; peers sent {traffic.FrameBytesSentByPeers} B in frames, /metrics says received {received} B; "
            + $"exact {traffic.BytesExactAfter.TotalMilliseconds:F0} ms after the last close was counted");
        Assert.Equal(traffic.BytesReceivedByPeers, (long)transmitted);
        Assert.Equal(traffic.FrameBytesSentByPeers, (long)received);
        // The close line counts the notice too: no protocol-error close says 0 bytes out.
        Assert.DoesNotContain(traffic.Log.Split('\n'), l => l.Contains("closed: protocol-error", StringComparison.Ordinal) && l.Contains(" 0 bytes out", StringComparison.Ordinal));
    }

    [GeneratedRegex("""(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{""")]
    private static partial Regex MetricSelector();

    [Fact]
    public void Every_metric_the_grafana_dashboard_queries_must_exist_in_the_real_metrics_output()
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Repository("deploy/grafana-dashboard.json")));
        var exposed = SampleLine().Matches(traffic.Text).Select(m => m.Groups["name"].Value).ToHashSet();
        var expressions = dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .Where(p => p.TryGetProperty("targets", out _))
            .SelectMany(p => p.GetProperty("targets").EnumerateArray().Select(t => (Panel: p.GetProperty("title").GetString(), Expr: t.GetProperty("expr").GetString()!)))
            .ToArray();
        Assert.True(expressions.Length >= 15, $"only {expressions.Length} queries in the dashboard");
        var variable = dashboard.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray()
            .Single(v => v.GetProperty("name").GetString() == "instance").GetProperty("definition").GetString()!;
        foreach (var (panel, expr) in expressions.Append(("instance variable", variable)))
        {
            // Every selector in the dashboard is written with braces (the instance filter), so names are found by them.
            var names = MetricSelector().Matches(expr).Select(m => m.Groups["name"].Value).ToArray();
            Assert.True(names.Length > 0, $"{panel}: no metric selector in {expr}");
            foreach (var name in names)
                Assert.True(exposed.Contains(name), $"{panel}: {name} (in {expr}) is not in /metrics");
        }
        output.WriteLine($"{expressions.Length} queries over {expressions.SelectMany(e => MetricSelector().Matches(e.Expr).Select(m => m.Groups["name"].Value)).Distinct().Count()} metrics, all exposed");
    }
}
