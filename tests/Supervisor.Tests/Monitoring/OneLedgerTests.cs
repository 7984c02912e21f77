using System.Net.Http;
using System.Text.Json;
using Akka.Actor;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Supervisor.Client;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Tests.Client;
using Supervisor.Tests.Http;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Monitoring;

/// <summary>
/// One lifecycle, one set of books (DESIGN §2): after a mixed workload, /api/stats, /metrics, the monitor's counters and
/// the dashboard's feed agree exactly, and accepted = active + closed holds in every answer sampled during the run.
/// Heartbeats and bytes are live: on /api/stats the moment the peer has its answer, not a status refresh later.
/// </summary>
[Collection(OperatorSurfaceCollection.Name)]
public sealed class OneLedgerTests(ITestOutputHelper output)
{
    private const string Config = """
        supervisor.heartbeat { interval = 1s, timeout = 3s }
        supervisor.tcp { max-connections = 8, max-frame-length = 1KiB, limits { max-frames-per-second = 20, frame-burst = 20, first-frame-timeout = off } }
        """;

    [Fact]
    public async Task After_a_mixed_workload_stats_metrics_monitor_and_dashboard_must_agree_and_every_sample_must_balance()
    {
        await using var service = await TestService.StartAsync(Config);
        using var api = new ApiClient(service);
        var metrics = service.Services.GetRequiredService<SupervisorMetrics>();
        using var sampling = new CancellationTokenSource();
        var samples = 0;
        var unbalanced = new List<string>();

        // Samplers: /api/stats and the monitor as fast as they answer, the dashboard's feed once a second.
        async Task SampleStats()
        {
            while (!sampling.IsCancellationRequested)
            {
                var stats = await api.GetOkAsync("/api/stats");
                var counters = await service.Monitor.Ask<MonitorProtocol.Counters>(MonitorProtocol.GetCounters.Instance, TimeSpan.FromSeconds(5));
                lock (unbalanced)
                {
                    samples++;
                    if (!Balanced(stats)) unbalanced.Add($"/api/stats {stats}");
                    if (counters.Accepted != counters.Active + counters.ClosedByReason.Values.Sum())
                        unbalanced.Add($"monitor accepted {counters.Accepted} active {counters.Active} closed {counters.ClosedByReason.Values.Sum()}");
                }
                await Task.Delay(20);
            }
        }
        var dashboard = new List<JsonElement>();
        async Task ReadDashboard()
        {
            using var response = await api.Http.GetAsync("/api/events", HttpCompletionOption.ResponseHeadersRead, sampling.Token);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(sampling.Token));
            try
            {
                while (await reader.ReadLineAsync(sampling.Token) is { } line)
                {
                    if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                    var stats = JsonDocument.Parse(line["data: ".Length..]).RootElement.GetProperty("stats").Clone();
                    lock (unbalanced)
                    {
                        dashboard.Add(stats);
                        if (!Balanced(stats)) unbalanced.Add($"dashboard {stats}");
                    }
                }
            }
            catch (OperationCanceledException) when (sampling.IsCancellationRequested)
            {
            }
        }
        var samplers = Task.WhenAll(SampleStats(), ReadDashboard());

        // Steady peers: a heartbeat and a data frame every 300 ms, in the background for the whole run (answers are left unread).
        var steady = new List<TestPeer>();
        for (var i = 0; i < 3; i++) steady.Add(await TestPeer.ConnectAsync(service.Port));
        using var beating = new CancellationTokenSource();
        var beater = Task.Run(async () =>
        {
            for (var seq = 1L; !beating.IsCancellationRequested; seq++)
            {
                TestPeer[] peers;
                lock (steady) peers = [.. steady];
                foreach (var peer in peers)
                {
                    await peer.SendHeartbeatAsync(seq);
                    await peer.SendFrameAsync(new Frame(FrameType.Data, 1, $"data {seq}"));
                }
                await Task.Delay(300);
            }
        });
        await service.WaitForStatsAsync(s => s.Heartbeats >= 6);

        // Every close reason the server decides, and two the peer does.
        async Task Fault(Func<TestPeer, Task> act)
        {
            using var peer = await TestPeer.ConnectAsync(service.Port);
            await act(peer);
            await peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(10));
        }
        await Fault(p => p.SendAsync("garbage\n"));                                              // protocol-error
        await Fault(p => p.SendAsync(new string('x', 2000)));                                    // frame-too-large
        await Fault(p => p.SendAsync(string.Concat(Enumerable.Repeat("{\"type\":0}\n", 60))));   // rate-limited
        await Fault(_ => Task.CompletedTask);                                                    // heartbeat-timeout
        await Fault(async p =>                                                                   // admin-closed
        {
            await p.SendHeartbeatAsync(1);
            await p.ReceiveFrameAsync();
            var id = (await service.ConnectionsAsync()).Items.Single(c => c.Remote == p.Socket.LocalEndPoint!.ToString()).Id;
            await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}");
        });
        using (var reset = await TestPeer.ConnectAsync(service.Port))                            // peer-reset
        {
            await reset.SendHeartbeatAsync(1);
            await reset.ReceiveFrameAsync();
            reset.Abort();
        }
        using (var leaving = await TestPeer.ConnectAsync(service.Port))                          // peer-closed
        {
            // Served first: a peer that leaves before it is served at all is counted refused (DESIGN §3).
            await leaving.SendHeartbeatAsync(1);
            await leaving.ReceiveFrameAsync();
            leaving.Socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
            await leaving.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(10));
        }

        // An outbound client of this process (to its own listener), whose server side the operator closes twice: it reconnects.
        var events = service.System.ActorOf(Props.Create(() => new EventLog()));
        var client = service.System.ActorOf(HeartbeatClient.Props("upstream",
            ClientTestSupport.Fast(service.Port, interval: TimeSpan.FromMilliseconds(300), timeout: TimeSpan.FromSeconds(3)),
            new ClientServices(service.Registry, metrics, NullLogger.Instance), [events]), "upstream");
        for (var kill = 0; kill < 2; kill++)
        {
            var connected = await service.WaitForStatsAsync(s => s.Outbound.Active == 1 && s.Outbound.Opened == kill + 1, TimeSpan.FromSeconds(15));
            var local = (await client.Ask<ClientProtocol.ClientStatus>(ClientProtocol.GetStatus.Instance, TimeSpan.FromSeconds(5))).Local;
            var serverSide = (await service.ConnectionsAsync()).Items.Single(c => c.Protocol == "tcp" && c.Remote == local && c.State != ConnectionState.Closing);
            await api.SendAsync(HttpMethod.Delete, $"/api/connections/{serverSide.Id}");
            output.WriteLine($"outbound {connected.Outbound}; closed {serverSide.Id} by the operator");
        }
        await service.WaitForStatsAsync(s => s.Outbound.Opened == 3 && s.Outbound.Active == 1, TimeSpan.FromSeconds(15));

        // Refusals at capacity: fill the listener with heartbeating holders, then two more wait out their grace and are refused.
        await service.WaitForStatsAsync(s => s.Active == 4, TimeSpan.FromSeconds(10)); // 3 steady + the client's server side
        var holders = new List<TestPeer>();
        for (var i = 0; i < 4; i++) holders.Add(await TestPeer.ConnectAsync(service.Port));
        lock (steady) steady.AddRange(holders); // heartbeating: they hold every slot through the 1 s admission grace
        await service.WaitForStatsAsync(s => s.Active == 8);
        var refusedPeers = await Task.WhenAll(TestPeer.ConnectAsync(service.Port), TestPeer.ConnectAsync(service.Port));
        foreach (var refused in refusedPeers)
        {
            Assert.StartsWith("rejected-capacity", Assert.Single(await refused.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(10))).Data);
            refused.Dispose();
        }

        // Everyone leaves; the client is stopped.
        beating.Cancel();
        await beater;
        foreach (var peer in steady) peer.Dispose();
        await client.GracefulStop(TimeSpan.FromSeconds(5));
        var final = await service.WaitForStatsAsync(s => s.Active == 0 && s.Outbound.Active == 0, TimeSpan.FromSeconds(15));
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // a dashboard snapshot after the last close, and the exporter's scrape cache
        sampling.Cancel();
        await samplers;

        // The books agree exactly.
        var stats = await api.GetOkAsync("/api/stats");
        output.WriteLine($"/api/stats {stats}");
        var counters = await service.Monitor.Ask<MonitorProtocol.Counters>(MonitorProtocol.GetCounters.Instance, TimeSpan.FromSeconds(5));
        var prometheus = PrometheusText.Parse(await api.Http.GetStringAsync("/metrics"));
        JsonElement lastDashboard;
        lock (unbalanced) lastDashboard = dashboard[^1];
        output.WriteLine($"dashboard {lastDashboard}");
        output.WriteLine($"{samples} samples of /api/stats and the monitor, {dashboard.Count} dashboard snapshots");

        long Long(JsonElement e, string name) => e.GetProperty(name).GetInt64();
        var accepted = Long(stats, "accepted");
        Assert.Equal(0, Long(stats, "active"));
        Assert.Equal(final.Accepted, accepted);
        Assert.Equal(accepted, counters.Accepted);
        Assert.Equal(accepted, (long)prometheus.Sum("supervisor_connections_accepted_total"));
        Assert.Equal(0, counters.Active);
        Assert.Equal(0, (long)prometheus.Sum("supervisor_connections_active"));
        Assert.Equal(Long(stats, "refused"), counters.Refused);
        Assert.Equal(2, Long(stats, "refused"));
        foreach (var reason in CloseReasons.All)
        {
            var name = reason.ToWireName();
            var closed = stats.GetProperty("closedByReason").GetProperty(name).GetInt64();
            Assert.Equal(closed, counters.ClosedByReason.GetValueOrDefault(name));
            Assert.Equal(closed, (long)prometheus.Sum("supervisor_connections_closed_total", $"reason=\"{name}\""));
            Assert.Equal(closed, lastDashboard.GetProperty("closedByReason").GetProperty(name).GetInt64());
        }
        foreach (var reason in new[] { CloseReason.ProtocolError, CloseReason.FrameTooLarge, CloseReason.RateLimited, CloseReason.HeartbeatTimeout,
                     CloseReason.AdminClosed, CloseReason.PeerReset, CloseReason.PeerClosed, CloseReason.RejectedCapacity })
            Assert.True(stats.GetProperty("closedByReason").GetProperty(reason.ToWireName()).GetInt64() > 0, $"no {reason.ToWireName()} close");
        foreach (var name in new[] { "active", "accepted", "closed", "refused", "heartbeats", "bytesIn", "bytesOut" })
            Assert.Equal(Long(stats, name), Long(lastDashboard, name));
        Assert.Equal(Long(stats, "heartbeats"), (long)prometheus.Sum("supervisor_heartbeats_received_total"));
        Assert.Equal(Long(stats, "bytesIn"), (long)prometheus.Sum("supervisor_network_io_bytes_total", "network_io_direction=\"receive\""));
        Assert.Equal(Long(stats, "bytesOut"), (long)prometheus.Sum("supervisor_network_io_bytes_total", "network_io_direction=\"transmit\""));
        // Outbound in its own totals: every connect an open, and the meter's client series say the same.
        var outbound = stats.GetProperty("outbound");
        Assert.Equal((3L, 0L, 3L), (Long(outbound, "opened"), Long(outbound, "active"), Long(outbound, "closed")));
        Assert.Equal(3, (long)prometheus.Sum("supervisor_client_connects_total", "client=\"upstream\""));
        Assert.Equal(3, (long)prometheus.Sum("supervisor_client_disconnects_total", "client=\"upstream\""));

        Assert.True(samples >= 10, $"only {samples} samples");
        Assert.Empty(unbalanced);
    }

    [Fact]
    public async Task Two_peers_heartbeating_every_400ms_must_show_on_stats_and_the_dashboard_within_a_second()
    {
        // The default status refresh (10 s) stays: the totals must not wait for it.
        await using var service = await TestService.StartAsync("supervisor.heartbeat { interval = 2s, timeout = 6s }");
        using var api = new ApiClient(service);
        using var a = await TestPeer.ConnectAsync(service.Port);
        using var b = await TestPeer.ConnectAsync(service.Port);
        using var events = await api.Http.GetAsync("/api/events", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await events.Content.ReadAsStreamAsync());

        long sent = 0, bytesSent = 0;
        for (var round = 1; round <= 5; round++)
        {
            foreach (var peer in new[] { a, b })
            {
                await peer.SendHeartbeatAsync(round);
                Assert.Equal(FrameType.HeartbeatResponse, (await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(5)))!.Type);
                sent++;
            }
            // The peer has its answer, so the server has counted the heartbeat: /api/stats shows it now, exactly.
            var stats = await api.GetOkAsync("/api/stats");
            Assert.Equal(sent, stats.GetProperty("heartbeats").GetInt64());
            Assert.True(stats.GetProperty("bytesIn").GetInt64() > bytesSent, $"bytes in {stats.GetProperty("bytesIn")} after round {round}");
            bytesSent = stats.GetProperty("bytesIn").GetInt64();
            await Task.Delay(400);
        }

        // The dashboard's next snapshot (one a second) carries them all.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long shown = 0;
        while (shown < sent)
        {
            var line = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(5));
            if (line is not null && line.StartsWith("data: ", StringComparison.Ordinal))
                shown = JsonDocument.Parse(line["data: ".Length..]).RootElement.GetProperty("stats").GetProperty("heartbeats").GetInt64();
        }
        output.WriteLine($"dashboard showed {shown} heartbeats {clock.ElapsedMilliseconds} ms after the last was answered");
        // A snapshot a second; 2 s of slack for a busy machine (the point is seconds, not the 10 s status refresh).
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(3));
    }

    /// <summary>accepted = active + every close, in an /api/stats answer or a dashboard snapshot; and outbound opened = active + closed.</summary>
    private static bool Balanced(JsonElement stats)
    {
        var closed = stats.GetProperty("closedByReason").EnumerateObject().Sum(p => p.Value.GetInt64());
        var outbound = stats.GetProperty("outbound");
        return stats.GetProperty("accepted").GetInt64() == stats.GetProperty("active").GetInt64() + closed
               && closed == stats.GetProperty("closed").GetInt64()
               && outbound.GetProperty("opened").GetInt64() == outbound.GetProperty("active").GetInt64() + outbound.GetProperty("closed").GetInt64();
    }

    /// <summary>Takes the client's events, so it has a subscriber as a pool would.</summary>
    private sealed class EventLog : ReceiveActor
    {
        public EventLog() => ReceiveAny(_ => { });
    }
}
