using System.Net;
using System.Text.Json;
using Supervisor.Configuration;
using Supervisor.Monitoring;
using Supervisor.Simulation;
using Xunit.Abstractions;

namespace Supervisor.Tests.Monitoring;

/// <summary>The monitor's acceptance runs: real connection actors, registry and monitor in virtual time.</summary>
public sealed class SimulationTests(ITestOutputHelper output)
{
    private static SupervisorSettings Settings(string hocon = "") =>
        SupervisorConfig.Read(SupervisorConfig.Build(hocon, "realtime-game"));

    private static readonly TimeSpan Fifteen = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Ten_percent_silent_peers_must_each_close_15s_after_their_last_frame_and_alert_once_with_one_webhook_post_per_transition()
    {
        using var webhook = new WebhookReceiver();
        var settings = Settings($"supervisor.monitor.sinks.webhook {{ url = \"{webhook.Url}\", backoff = 50ms }}");
        var model = PeerModel.Regular(TimeSpan.FromSeconds(5));
        var report = await Simulation.Simulation.RunAsync(new SimulationOptions(
            settings.Listeners[0], settings.Monitor,
            [new PeerGroup(900, model), new PeerGroup(100, model with { SilentAfter = TimeSpan.FromSeconds(60) })],
            TimeSpan.FromMinutes(4)));
        output.WriteLine(report.ToText());

        Assert.Equal(0, report.FalseDisconnects);
        Assert.Equal(100, report.Closes.Count);
        Assert.All(report.Closes, c => Assert.Equal(Fifteen, c.AfterLastFrame));
        Assert.Equal(100, report.DeadPeersDetected);

        var transitions = report.Alerts.Where(a => a.Alert.Rule == "heartbeat-timeouts").ToArray();
        Assert.Equal(["raised", "resolved"], transitions.Select(t => t.Event));
        var closeTimes = report.Closes.Select(c => c.At).Order().ToArray();
        Assert.Equal(closeTimes[50], transitions[0].At); // the 51st timeout crosses raise-above = 50
        // Resolved when the 1 min window holds 25 or fewer: after the 75th close leaves it, on an evaluation tick.
        Assert.InRange(transitions[1].At, closeTimes[74] + TimeSpan.FromMinutes(1), closeTimes[74] + TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(1));
        Assert.Equal(report.Alerts.Count, report.Alerts.Count(a => a.Alert.Rule == "heartbeat-timeouts"));

        var posts = await webhook.WaitForAsync(2, TimeSpan.FromSeconds(10));
        await Task.Delay(300);
        Assert.True(webhook.Received.Count == 2, string.Join("\n", webhook.Received.Select(r => r.ToString())));
        Assert.Equal(["raised", "resolved"], posts.Select(p => p.GetProperty("event").GetString()));
        Assert.All(posts, p => Assert.Equal("heartbeat-timeouts", p.GetProperty("alert").GetProperty("rule").GetString()));
    }

    [Fact]
    public async Task Sixty_percent_of_peers_silent_at_once_must_raise_one_mass_disconnect_and_nothing_else()
    {
        var settings = Settings();
        var model = PeerModel.Regular(TimeSpan.FromSeconds(5));
        var report = await Simulation.Simulation.RunAsync(new SimulationOptions(
            settings.Listeners[0], settings.Monitor,
            [new PeerGroup(400, model), new PeerGroup(600, model with { SilentAfter = TimeSpan.FromSeconds(60) })],
            TimeSpan.FromMinutes(4)));
        output.WriteLine(report.ToText());

        Assert.Equal(600, report.DeadPeersDetected);
        Assert.Equal(0, report.FalseDisconnects);
        var raised = report.Alerts.Where(a => a.Event == "raised").ToArray();
        Assert.Equal(MonitorActor.MassDisconnectRule, Assert.Single(raised).Alert.Rule);
    }

    [Fact]
    public async Task A_five_second_server_stall_must_close_no_healthy_peer_and_raise_then_resolve_server_starved()
    {
        var settings = Settings();
        var report = await Simulation.Simulation.RunAsync(new SimulationOptions(
            settings.Listeners[0], settings.Monitor,
            [new PeerGroup(1000, PeerModel.Regular(TimeSpan.FromSeconds(5)))],
            TimeSpan.FromMinutes(2),
            Stalls: [new ServerStall(TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(5))]));
        output.WriteLine(report.ToText());

        Assert.Empty(report.Closes);
        var starved = report.Alerts.Where(a => a.Alert.Rule == MonitorActor.ServerStarvedRule).ToArray();
        Assert.Equal(["raised", "resolved"], starved.Select(a => a.Event));
        Assert.InRange(starved[0].At, TimeSpan.FromSeconds(65), TimeSpan.FromSeconds(66));
    }

    [Fact]
    public async Task A_stall_longer_than_the_timeout_must_still_close_no_healthy_peer()
    {
        var settings = Settings();
        var report = await Simulation.Simulation.RunAsync(new SimulationOptions(
            settings.Listeners[0], settings.Monitor,
            [new PeerGroup(200, PeerModel.Regular(TimeSpan.FromSeconds(5)))],
            TimeSpan.FromMinutes(2),
            Stalls: [new ServerStall(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(20))]));
        Assert.Empty(report.Closes);
    }

    [Theory]
    [InlineData("")] // the realtime-game profile, 5 s / 15 s: every deadline falls due in the stall
    [InlineData("supervisor.heartbeat { interval = 30s, timeout = 90s }")] // some fall due in its last second, hardly late themselves
    public async Task A_20s_server_stall_must_raise_server_starved_and_no_mass_disconnect_nor_count_a_missed_heartbeat(string heartbeat)
    {
        // The peers' heartbeats sent during the stall are read only after the stall's deadlines have fired,
        // as on a real server (a SIGSTOP once made every connection report a missed heartbeat at once).
        var settings = Settings(heartbeat);
        var interval = settings.Listeners[0].Heartbeat.Interval;
        SimulationOptions Run(params ServerStall[] stalls) => new(
            settings.Listeners[0], settings.Monitor, [new PeerGroup(1000, PeerModel.Regular(interval))], TimeSpan.FromMinutes(2), Stalls: stalls);
        var stalled = await Simulation.Simulation.RunAsync(Run(new ServerStall(TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(20))));
        var steady = await Simulation.Simulation.RunAsync(Run());
        output.WriteLine(stalled.ToText());
        output.WriteLine($"the same run without the stall: {steady.HeartbeatsMissed} missed heartbeats");

        Assert.Empty(stalled.Closes);
        Assert.Equal([MonitorActor.ServerStarvedRule], stalled.Alerts.Where(a => a.Event == "raised").Select(a => a.Alert.Rule));
        // The simulation's peers heartbeat exactly once an interval, so a few race their own deadline in any
        // run; the stall must add none.
        Assert.InRange(stalled.HeartbeatsMissed, 0, steady.HeartbeatsMissed);
    }

    [Fact]
    public async Task Lossless_regular_peers_must_see_no_false_disconnects_and_lossy_ones_must_be_reported()
    {
        var settings = Settings();
        var lossless = await Simulation.Simulation.RunAsync(new SimulationOptions(settings.Listeners[0], settings.Monitor,
            [new PeerGroup(500, PeerModel.Regular(TimeSpan.FromSeconds(5)))], TimeSpan.FromMinutes(10)));
        Assert.Equal(0, lossless.FalseDisconnects);
        Assert.Empty(lossless.Alerts);

        var lossy = await Simulation.Simulation.RunAsync(new SimulationOptions(settings.Listeners[0], settings.Monitor,
            [new PeerGroup(500, new PeerModel(TimeSpan.FromSeconds(5), Jitter: TimeSpan.FromMilliseconds(500), Loss: 0.2))], TimeSpan.FromMinutes(10)));
        output.WriteLine(lossy.ToText());
        Assert.True(lossy.FalseDisconnects > 0, "20 % loss against a 3-interval timeout must cost some peers");
        Assert.Equal(lossy.FalseDisconnects, lossy.Closes.Count);
    }

    [Fact]
    public async Task Flapping_peers_must_be_closed_in_their_silences_without_counting_as_false_disconnects()
    {
        var settings = Settings();
        var flapping = new PeerModel(TimeSpan.FromSeconds(5), FlapUp: TimeSpan.FromSeconds(30), FlapDown: TimeSpan.FromSeconds(20));
        var report = await Simulation.Simulation.RunAsync(new SimulationOptions(settings.Listeners[0], settings.Monitor,
            [new PeerGroup(100, flapping), new PeerGroup(100, PeerModel.Regular(TimeSpan.FromSeconds(5)))], TimeSpan.FromMinutes(2)));
        output.WriteLine(report.ToText());
        Assert.Equal(100, report.Closes.Count);
        Assert.Equal(0, report.FalseDisconnects);
        Assert.All(report.Closes, c => Assert.InRange(c.At, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(50)));
    }

    /// <summary>A real HTTP listener on loopback that records webhook POST bodies.</summary>
    private sealed class WebhookReceiver : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly List<JsonElement> _received = [];

        public WebhookReceiver()
        {
            var port = FreePort();
            Url = $"http://127.0.0.1:{port}/hook/";
            _listener.Prefixes.Add(Url);
            _listener.Start();
            _ = Task.Run(AcceptLoop);
        }

        public string Url { get; }

        public IReadOnlyList<JsonElement> Received { get { lock (_received) return _received.ToArray(); } }

        public async Task<IReadOnlyList<JsonElement>> WaitForAsync(int count, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (Received.Count < count && DateTime.UtcNow < deadline) await Task.Delay(20);
            return Received;
        }

        private async Task AcceptLoop()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try { context = await _listener.GetContextAsync(); }
                catch (Exception) { return; }
                using var body = new StreamReader(context.Request.InputStream);
                var json = JsonDocument.Parse(await body.ReadToEndAsync()).RootElement.Clone();
                lock (_received) _received.Add(json);
                context.Response.StatusCode = 204;
                context.Response.Close();
            }
        }

        private static int FreePort()
        {
            var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            return port;
        }

        public void Dispose() => _listener.Close();
    }
}
