using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Monitoring;

/// <summary>Alerts sent to a real Prometheus Alertmanager (Debian's prometheus-alertmanager, installed by scripts/setup.sh).</summary>
public sealed class AlertmanagerSinkTests(ITestOutputHelper output)
{
    private sealed class Alertmanager : IDisposable
    {
        private readonly Process _process;
        private readonly DirectoryInfo _directory;

        public Alertmanager()
        {
            _directory = Directory.CreateTempSubdirectory("alertmanager-");
            var config = Path.Combine(_directory.FullName, "alertmanager.yml");
            // One receiver that notifies nobody: the test reads what Alertmanager holds through its API.
            File.WriteAllText(config, "route:\n  receiver: nobody\n  group_wait: 1s\nreceivers:\n  - name: nobody\n");
            Port = Supervisor.Tests.Client.ClientTestSupport.FreePort();
            _process = Process.Start(new ProcessStartInfo("prometheus-alertmanager",
            [
                $"--config.file={config}", $"--storage.path={_directory.FullName}", $"--web.listen-address=127.0.0.1:{Port}",
                "--cluster.listen-address=",
            ])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            })!;
            _process.ErrorDataReceived += (_, _) => { };
            _process.BeginErrorReadLine();
            _process.BeginOutputReadLine();
        }

        public int Port { get; }

        public async Task<JsonElement[]> AlertsAsync(HttpClient http)
        {
            var text = await http.GetStringAsync($"http://127.0.0.1:{Port}/api/v2/alerts");
            return JsonDocument.Parse(text).RootElement.EnumerateArray().ToArray();
        }

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill();
            _process.WaitForExit(5000);
            _process.Dispose();
            _directory.Delete(recursive: true);
        }
    }

    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string what) where T : class
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (await probe() is { } found) return found;
            }
            catch (HttpRequestException)
            {
                // Alertmanager still starting.
            }
            if (clock.Elapsed > timeout) throw new TimeoutException($"{what} not seen within {timeout.TotalSeconds} s");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Alertmanager_must_show_the_alert_while_it_is_active_and_not_after_it_is_resolved()
    {
        using var alertmanager = new Alertmanager();
        using var http = new HttpClient();
        await EventuallyAsync(async () => (await alertmanager.AlertsAsync(http)) is { } a ? a : null, TimeSpan.FromSeconds(20), "Alertmanager's API");

        await using var service = await TestService.StartAsync($$"""
            supervisor.heartbeat { interval = 300ms, timeout = 60s }
            supervisor.monitor.rules { crowd { metric = connections.active, raise-above = 0, clear-below = 0, severity = critical } }
            supervisor.monitor.sinks.alertmanager { url = "http://127.0.0.1:{{alertmanager.Port}}", resend-interval = 1s }
            """);
        var peer = await TestPeer.ConnectAsync(service.Port);
        // A first frame, so the first-frame deadline (0.45 s with these heartbeat settings) does not close it.
        await peer.SendHeartbeatAsync(1);
        Assert.NotNull(await peer.ReceiveFrameAsync());

        var active = await EventuallyAsync(async () => (await alertmanager.AlertsAsync(http))
            .FirstOrDefault(a => a.GetProperty("labels").GetProperty("alertname").GetString() == "crowd") is { ValueKind: JsonValueKind.Object } a ? (object)a : null,
            TimeSpan.FromSeconds(20), "the crowd alert in Alertmanager");
        var alert = (JsonElement)active;
        output.WriteLine(alert.ToString());
        Assert.Equal("critical", alert.GetProperty("labels").GetProperty("severity").GetString());
        Assert.Equal("node", alert.GetProperty("labels").GetProperty("scope").GetString());
        Assert.Equal("active", alert.GetProperty("status").GetProperty("state").GetString());
        Assert.Contains("connections.active", alert.GetProperty("annotations").GetProperty("summary").GetString());

        // While it stands, the resends carry the current value and the peak, not the value at the raise.
        JsonElement? Crowd(IEnumerable<JsonElement> alerts) =>
            alerts.FirstOrDefault(a => a.GetProperty("labels").GetProperty("alertname").GetString() == "crowd") is { ValueKind: JsonValueKind.Object } a ? a : null;
        string Annotation(JsonElement a, string name) => a.GetProperty("annotations").GetProperty(name).GetString()!;
        var second = await TestPeer.ConnectAsync(service.Port);
        await second.SendHeartbeatAsync(1);
        Assert.NotNull(await second.ReceiveFrameAsync());
        await EventuallyAsync(async () => Crowd(await alertmanager.AlertsAsync(http)) is { } a && Annotation(a, "value") == "2" && Annotation(a, "peak") == "2" ? "2" : null,
            TimeSpan.FromSeconds(20), "the crowd alert at value 2, peak 2");
        second.Dispose();
        var fallen = (JsonElement)await EventuallyAsync(async () => Crowd(await alertmanager.AlertsAsync(http)) is { } a && Annotation(a, "value") == "1" ? (object)a : null,
            TimeSpan.FromSeconds(20), "the crowd alert back at value 1");
        Assert.Equal("2", Annotation(fallen, "peak"));

        peer.Dispose(); // the rule clears: connections.active is 0 again
        await EventuallyAsync(async () => (await alertmanager.AlertsAsync(http))
            .Any(a => a.GetProperty("labels").GetProperty("alertname").GetString() == "crowd") ? null : "gone",
            TimeSpan.FromSeconds(20), "the crowd alert resolved in Alertmanager");
    }
}
