using System.Diagnostics;
using System.Diagnostics.Metrics;
using Akka.Actor;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Monitoring;

/// <summary>The monitor inside the real service, over real sockets.</summary>
public sealed class MonitorTests(ITestOutputHelper output)
{
    private static async Task<MonitorProtocol.Alerts> AlertsAsync(TestService service)
    {
        return await service.Monitor.Ask<MonitorProtocol.Alerts>(MonitorProtocol.GetAlerts.Instance, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_rule_over_a_4s_window_must_raise_within_a_second_of_the_4th_timeout_and_resolve_when_the_window_drains()
    {
        await using var service = await TestService.StartAsync("""
            supervisor.heartbeat { interval = 200ms, timeout = 600ms }
            supervisor.monitor.rules.quick-timeouts { metric = connections.closed.heartbeat-timeout, window = 4s, raise-above = 3, clear-below = 0, severity = critical }
            """);
        var peers = new List<TestPeer>();
        var closedAt = new List<DateTimeOffset>();
        for (var i = 0; i < 6; i++)
        {
            var peer = await TestPeer.ConnectAsync(service.Port);
            peers.Add(peer);
            await peer.SendHeartbeatAsync(i);
            await peer.ReceiveFrameAsync();
            await Task.Delay(100); // spread the timeouts
        }
        foreach (var peer in peers)
        {
            var notice = Assert.Single(await peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(3)));
            Assert.StartsWith("heartbeat-timeout", notice.Data);
            closedAt.Add(DateTimeOffset.UtcNow);
        }
        var active = (await AlertsAsync(service)).Active;
        var alert = Assert.Single(active, a => a.Rule == "quick-timeouts");
        var fourth = closedAt.Order().ElementAt(3);
        output.WriteLine($"4th timeout seen by its peer at {fourth:HH:mm:ss.fff}, alert raised at {alert.RaisedAt:HH:mm:ss.fff}");
        Assert.InRange((alert.RaisedAt - fourth).TotalMilliseconds, -200, 1000);
        Assert.Equal(AlertSeverity.Critical, alert.Severity);

        // The window drains 4 s after the last timeout; evaluation runs every second.
        var clock = Stopwatch.StartNew();
        MonitorProtocol.Alerts alerts;
        do
        {
            await Task.Delay(200);
            alerts = await AlertsAsync(service);
        } while (alerts.Active.Any(a => a.Rule == "quick-timeouts") && clock.Elapsed < TimeSpan.FromSeconds(10));
        var resolved = Assert.Single(alerts.History, a => a.Rule == "quick-timeouts");
        Assert.NotNull(resolved.ResolvedAt);
        Assert.InRange((resolved.ResolvedAt!.Value - closedAt.Max()).TotalSeconds, 3.5, 5.5);
        Assert.DoesNotContain(alerts.Active, a => a.Rule == "quick-timeouts");
        foreach (var peer in peers) peer.Dispose();
    }

    [Fact]
    public async Task Many_peer_hung_closes_must_raise_one_application_incident_and_keep_the_dead_peer_rule_quiet()
    {
        // Loopback peers that stop sending but whose kernel answers the suspect's keep-alive probes: peer-hung. The
        // heartbeat-timeouts rule is set as low as the incident's, so only the incident's suppression keeps it quiet.
        await using var service = await TestService.StartAsync("""
            supervisor.heartbeat { interval = 1s, timeout = 3s }
            supervisor.monitor.mass-disconnect.enabled = off
            supervisor.monitor.rules.heartbeat-timeouts { raise-above = 3, clear-below = 0 }
            supervisor.monitor.rules.application-incident { raise-above = 3, clear-below = 0 }
            """);
        var peers = new List<TestPeer>();
        for (var i = 0; i < 6; i++)
        {
            var peer = await TestPeer.ConnectAsync(service.Port);
            peers.Add(peer);
            await peer.SendHeartbeatAsync(i);
            await peer.ReceiveFrameAsync();
        }
        foreach (var peer in peers)
        {
            var notice = Assert.Single(await peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(6)));
            output.WriteLine(notice.Data);
            Assert.Contains("cause peer-hung", notice.Data);
        }
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // a few evaluation ticks after the last close
        var alerts = await AlertsAsync(service);
        var all = alerts.Active.Concat(alerts.History).ToArray();
        foreach (var alert in all) output.WriteLine($"{alert.Rule}: {alert.Message}");
        Assert.Single(all, a => a.Rule == "application-incident");
        Assert.DoesNotContain(all, a => a.Rule is "heartbeat-timeouts" or "network-incident");
        foreach (var peer in peers) peer.Dispose();
    }

    [Fact]
    public async Task Every_meter_instrument_must_be_observed_through_a_MeterListener()
    {
        await using var service = await TestService.StartAsync("supervisor.heartbeat { interval = 200ms, timeout = 1s, server-ping = on }");
        var meter = service.Services.GetRequiredService<SupervisorMetrics>().Meter;
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<string, List<KeyValuePair<string, object?>>>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) => { if (instrument.Meter == meter) l.EnableMeasurementEvents(instrument); };
        void Record<T>(Instrument instrument, T value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
        {
            var copy = tags.ToArray();
            seen.AddOrUpdate(instrument.Name, _ => [.. copy], (_, list) => { lock (list) list.AddRange(copy); return list; });
        }
        listener.SetMeasurementEventCallback<long>(Record);
        listener.SetMeasurementEventCallback<int>(Record);
        listener.SetMeasurementEventCallback<double>(Record);
        listener.Start();

        using (var peer = await TestPeer.ConnectAsync(service.Port))
        {
            await peer.SendHeartbeatAsync(1);
            await peer.ReceiveFrameAsync();
            var ping = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(2)); // after 200 ms of silence
            Assert.Equal(FrameType.Heartbeat, ping!.Type);
            await peer.SendFrameAsync(Frame.HeartbeatResponse(1, ping.Seq));
            await Task.Delay(100);
            listener.RecordObservableInstruments();
        }
        await service.WaitForStatsAsync(s => s.Active == 0);
        listener.RecordObservableInstruments();

        string[] expected =
        [
            "supervisor.connections.accepted", "supervisor.connections.closed", "supervisor.connections.active",
            "supervisor.heartbeats.received", "supervisor.heartbeats.missed", "supervisor.heartbeat.rtt",
            "supervisor.network.io", "supervisor.alerts.active",
        ];
        Assert.All(expected, name => Assert.True(seen.ContainsKey(name), $"{name} was never recorded; seen: {string.Join(", ", seen.Keys)}"));
        Assert.Contains(seen["supervisor.connections.closed"], tag => tag.Key == "reason" && (string?)tag.Value == "peer-closed");
        Assert.Contains(seen["supervisor.network.io"], tag => tag.Key == "network.io.direction" && (string?)tag.Value == "receive");
        Assert.Contains(seen["supervisor.network.io"], tag => tag.Key == "network.io.direction" && (string?)tag.Value == "transmit");
    }

    [Fact]
    public async Task Start_up_must_log_the_liveness_budget_and_warn_about_a_suspicious_profile_naming_the_keys()
    {
        await using var service = await TestService.StartAsync("""
            supervisor.heartbeat { interval = 10s, timeout = 15s }
            supervisor.tcp.user-timeout = 5s
            """);
        await Task.Delay(200);
        var lines = service.Logs.Lines;
        foreach (var line in lines.Where(l => l.Category.EndsWith("LivenessBudget"))) output.WriteLine($"{line.Level}: {line.Message}");
        Assert.Contains(lines, l => l.Level == LogLevel.Information && l.Message.StartsWith("Liveness budget of listener tcp") && l.Message.Contains("heartbeat within 15s"));
        Assert.Contains(lines, l => l.Level == LogLevel.Warning && l.Message.Contains("supervisor.heartbeat.timeout = 15s is under 2 x supervisor.heartbeat.interval = 10s"));
        Assert.Contains(lines, l => l.Level == LogLevel.Warning && l.Message.Contains("supervisor.tcp.user-timeout = 5s is shorter than the keep-alive span"));
    }
}
