using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Supervisor.Tests.Http;
using Supervisor.Tests.Processes;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Cluster;

/// <summary>
/// Three supervisor processes on loopback as one Akka.Cluster, with real peers on each node's TCP listener:
/// any node answers for the whole cluster, and a node's loss (SIGKILL) or graceful leave (SIGTERM) is
/// accounted for on the survivors.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ClusterTests(ITestOutputHelper output)
{
    private static readonly int[] PeersPerNode = [3, 4, 5];

    private static long Long(JsonElement e, string property) => e.GetProperty(property).GetInt64();

    /// <summary>The totals of the dashboard's first snapshot on <c>/api/events</c>.</summary>
    private static async Task<JsonElement> DashboardStatsAsync(ApiClient api)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var response = await api.Http.GetAsync("/api/events", HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeout.Token));
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal))
                return JsonDocument.Parse(line["data: ".Length..]).RootElement.GetProperty("stats").Clone();
        throw new InvalidOperationException("/api/events ended before its first snapshot");
    }

    private static long ClosedBy(JsonElement stats, string reason) => stats.GetProperty("closedByReason").GetProperty(reason).GetInt64();

    private static IEnumerable<string> Ids(JsonElement page) => page.GetProperty("items").EnumerateArray().Select(c => c.GetProperty("id").GetString()!);

    private static async Task<List<TestPeer>[]> ConnectEveryNodeAsync(ClusterNodes cluster)
    {
        var peers = new List<TestPeer>[cluster.Nodes.Count];
        for (var i = 0; i < peers.Length; i++)
            peers[i] = await ClusterNodes.ConnectAsync(cluster[i], PeersPerNode[i]);
        return peers;
    }

    [Fact]
    public async Task Any_node_must_list_every_nodes_connections_and_all_must_agree_on_totals_within_a_second()
    {
        await using var cluster = await ClusterNodes.StartAsync(3, output);
        var peers = await ConnectEveryNodeAsync(cluster);
        var total = PeersPerNode.Sum();
        try
        {
            var agreed = await cluster.UntilAllStatsAsync(s => Long(s, "active") == total && Long(s, "accepted") == total, TimeSpan.FromSeconds(1));
            output.WriteLine($"all three nodes reported active = accepted = {total} {agreed.TotalMilliseconds:F0} ms after the last peer's heartbeat was answered");

            foreach (var node in cluster.Nodes)
            {
                var page = await node.Api.GetOkAsync("/api/connections");
                Assert.Equal(total, page.GetProperty("total").GetInt32());
                var ids = Ids(page).ToArray();
                Assert.Equal(total, ids.Distinct().Count());
                for (var i = 0; i < PeersPerNode.Length; i++)
                    Assert.Equal(PeersPerNode[i], ids.Count(id => id.EndsWith("@" + cluster[i].Name, StringComparison.Ordinal)));
            }

            // A page is cut on every node and merged: the same members, in the same order, from any node.
            var pages = await Task.WhenAll(cluster.Nodes.Select(n => n.Api.GetOkAsync("/api/connections?offset=3&limit=4&state=active&listener=tcp")));
            foreach (var page in pages)
            {
                Assert.Equal(total, page.GetProperty("total").GetInt32());
                Assert.False(page.GetProperty("partial").GetBoolean());
                Assert.Equal(Ids(pages[0]), Ids(page));
                Assert.Equal(4, Ids(page).Count());
            }
            Assert.Equal(Ids(await cluster[0].Api.GetOkAsync("/api/connections")).Skip(3).Take(4), Ids(pages[0]));

            // Membership and each node's connection count, as every node sees them (replicated within the interval).
            foreach (var node in cluster.Nodes)
            {
                var view = await node.Api.WaitForAsync("/api/cluster", v => v.GetProperty("members").EnumerateArray()
                    .All(m => m.GetProperty("connections").GetInt64() == PeersPerNode[cluster.Nodes.ToList().FindIndex(n => n.Name == m.GetProperty("node").GetString())]),
                    TimeSpan.FromSeconds(2));
                Assert.True(view.GetProperty("enabled").GetBoolean());
                Assert.Equal(node.Name, view.GetProperty("self").GetString());
                Assert.Equal(3, ClusterNodes.UpMembers(view));
                Assert.Equal(cluster[0].Name, view.GetProperty("singleton").GetString()); // the oldest node
            }

            // The command line's status table, from any node, lists the members.
            using (var statusCommand = new ChildProcess("status", Tools.DotnetHost,
                       [ServiceProcess.SupervisorDll, "status", "--url", cluster[1].Api.Http.BaseAddress!.ToString()], output: output))
            {
                Assert.Equal(0, await statusCommand.WaitForExitAsync(TimeSpan.FromSeconds(20)));
                var text = string.Join('\n', statusCommand.StandardOutput);
                Assert.Contains("NODES (3 of 3 up and reachable", text, StringComparison.Ordinal);
                foreach (var node in cluster.Nodes) Assert.Contains(node.Name, text, StringComparison.Ordinal);
            }

            // One connection held by the third node, read and closed through the first.
            var remoteId = Ids(await cluster[0].Api.GetOkAsync("/api/connections")).First(id => id.EndsWith("@" + cluster[2].Name, StringComparison.Ordinal));
            var status = await cluster[0].Api.GetOkAsync($"/api/connections/{remoteId}");
            Assert.Equal(remoteId, status.GetProperty("id").GetString());
            var (code, body) = await cluster[0].Api.SendAsync(HttpMethod.Delete, $"/api/connections/{remoteId}");
            Assert.True(code == HttpStatusCode.Accepted, $"DELETE {remoteId}: {(int)code} {body}");
            Assert.Equal(HttpStatusCode.NotFound, (await cluster[1].Api.GetJsonAsync("/api/connections/c999@" + cluster[2].Name)).Status);

            // Exactly one of the third node's peers is closed, with the admin-closed notice.
            var closedPeers = 0;
            foreach (var peer in peers[2])
            {
                await peer.SendHeartbeatAsync();
                var frames = new List<Messages.Wire.Frame>();
                while (await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(2)) is { } frame)
                {
                    frames.Add(frame);
                    if (frame.Type == Messages.Wire.FrameType.HeartbeatResponse) break;
                }
                if (frames.Any(f => f.Type == Messages.Wire.FrameType.ErrorNotice && f.Data!.StartsWith("admin-closed", StringComparison.Ordinal)))
                {
                    closedPeers++;
                    // A client closes on the notice; the registry lets go of the connection when its socket is released.
                    peer.Dispose();
                }
            }
            Assert.Equal(1, closedPeers);
            await cluster.UntilAllStatsAsync(s => Long(s, "active") == total - 1 && ClosedBy(s, "admin-closed") == 1, TimeSpan.FromSeconds(1));
        }
        finally
        {
            foreach (var peer in peers.SelectMany(p => p)) peer.Dispose();
        }
    }

    /// <summary>Killing the youngest node leaves the singleton monitor where it is; killing the oldest moves it.</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(0)]
    public async Task A_killed_node_must_be_reported_node_down_once_and_no_other_connection_touched(int victim)
    {
        await using var cluster = await ClusterNodes.StartAsync(3, output);
        var peers = await ConnectEveryNodeAsync(cluster);
        var total = PeersPerNode.Sum();
        var lost = PeersPerNode[victim];
        var survivors = cluster.Nodes.Where((_, i) => i != victim).ToArray();
        var dead = cluster[victim];
        try
        {
            await cluster.UntilAllStatsAsync(s => Long(s, "active") == total, TimeSpan.FromSeconds(1));
            // Every survivor holds the victim's ledger (ids and totals) before it dies.
            foreach (var node in survivors)
                await node.Api.WaitForAsync("/api/cluster", v => v.GetProperty("members").EnumerateArray()
                    .Any(m => m.GetProperty("node").GetString() == dead.Name && m.GetProperty("connections").GetInt64() == lost), TimeSpan.FromSeconds(2));
            var survivorIds = Ids(await survivors[0].Api.GetOkAsync("/api/connections"))
                .Where(id => !id.EndsWith("@" + dead.Name, StringComparison.Ordinal)).Order().ToArray();
            var deadIds = Ids(await survivors[0].Api.GetOkAsync("/api/connections"))
                .Where(id => id.EndsWith("@" + dead.Name, StringComparison.Ordinal)).ToArray();
            Assert.Equal(lost, deadIds.Length);

            var killedAt = Stopwatch.StartNew();
            dead.Process.Signal(ChildProcess.SigKill);

            // Before the failure detector notices, the dead node is still a member: the totals wait for it only
            // stats-timeout (500 ms), then count it from its replica.
            var asked = Stopwatch.StartNew();
            var meanwhile = await survivors[0].Api.GetOkAsync("/api/stats");
            Assert.True(asked.Elapsed < TimeSpan.FromSeconds(1), $"/api/stats took {asked.ElapsedMilliseconds} ms while the node was being detected");
            Assert.Equal(total, Long(meanwhile, "accepted"));
            Assert.Equal(total, Long(meanwhile, "active") + Long(meanwhile, "closed"));
            output.WriteLine($"/api/stats answered in {asked.ElapsedMilliseconds} ms right after the kill: active {Long(meanwhile, "active")}");
            // A list cannot borrow the dead node's rows: it says whose are missing rather than pass for complete.
            var partialPage = await survivors[1].Api.GetOkAsync("/api/connections");
            Assert.True(partialPage.GetProperty("partial").GetBoolean(), partialPage.ToString());
            Assert.Equal([dead.Name], partialPage.GetProperty("unanswered").EnumerateArray().Select(u => u.GetString()));
            Assert.Equal(total - lost, partialPage.GetProperty("total").GetInt32());

            foreach (var node in survivors)
                await node.Api.WaitForAsync("/api/cluster", v => v.GetProperty("departures").EnumerateArray()
                    .Any(d => d.GetProperty("node").GetString() == dead.Name && d.GetProperty("reason").GetString() == "node-down"),
                    ClusterNodes.DowningBudget);
            var reportedAfter = killedAt.Elapsed;
            output.WriteLine($"both survivors reported {dead.Name} node-down {reportedAfter.TotalMilliseconds:F0} ms after SIGKILL " +
                $"(pause 1 s + stable-after 1 s; budget {ClusterNodes.DowningBudget.TotalSeconds:F0} s)");

            // Its connections closed with node-down; nothing else closed; the books balance on both survivors.
            await cluster.UntilAllStatsAsync(s =>
                    ClosedBy(s, "node-down") == lost && Long(s, "closed") == lost && Long(s, "active") == total - lost && Long(s, "accepted") == total,
                TimeSpan.FromSeconds(2), survivors);

            // One node-down alert, raised by the cluster monitor (wherever it now runs), seen alike on both survivors.
            var alertIds = new List<string>();
            foreach (var node in survivors)
            {
                var alerts = await node.Api.WaitForAsync("/api/alerts", a => a.GetProperty("active").EnumerateArray()
                    .Any(x => x.GetProperty("rule").GetString() == "node-down:" + dead.Name), TimeSpan.FromSeconds(10));
                var nodeDown = alerts.GetProperty("active").EnumerateArray().Concat(alerts.GetProperty("history").EnumerateArray())
                    .Where(x => x.GetProperty("rule").GetString()!.StartsWith("node-down", StringComparison.Ordinal)).ToArray();
                var alert = Assert.Single(nodeDown);
                Assert.Equal("cluster", alert.GetProperty("scope").GetString());
                Assert.Equal(lost, alert.GetProperty("value").GetDouble());
                alertIds.Add(alert.GetProperty("id").GetString()!);
            }
            Assert.Single(alertIds.Distinct());
            Assert.Equal(1, survivors.Sum(n => n.Process.StandardOutput.Count(l => l.Contains("Alert raised:", StringComparison.Ordinal) && l.Contains("node-down", StringComparison.Ordinal))));

            // Each lost connection's close line is written once, by one survivor.
            foreach (var id in deadIds)
                Assert.Equal(1, survivors.Sum(n => n.Process.StandardOutput.Count(l => l.Contains($"Connection {id} closed: node-down", StringComparison.Ordinal))));

            // The survivors' connections are untouched: still listed, still answered, never closed.
            foreach (var node in survivors)
                Assert.Equal(survivorIds, Ids(await node.Api.GetOkAsync("/api/connections")).Order().ToArray());
            foreach (var peer in peers.Where((_, i) => i != victim).SelectMany(p => p))
            {
                await peer.SendHeartbeatAsync(seq: 42);
                var answer = await peer.ReceiveFrameAsync();
                Assert.NotNull(answer);
                Assert.Equal(42, answer.Seq);
            }
            Assert.DoesNotContain(survivors.SelectMany(n => n.Process.StandardOutput), l => l.Contains(" closed: ", StringComparison.Ordinal) && !l.Contains("node-down", StringComparison.Ordinal));

            // One ledger on every survivor: the dashboard's feed and the cluster monitor give the totals /api/stats gives,
            // and they balance; each node's /metrics counts its own accepts, and the survivors' node-down closes add up to the lost.
            var nodeDownCounted = 0L;
            for (var i = 0; i < cluster.Nodes.Count; i++)
            {
                if (i == victim) continue;
                var node = cluster[i];
                var stats = await node.Api.GetOkAsync("/api/stats");
                var dashboard = await DashboardStatsAsync(node.Api);
                output.WriteLine($"{node.Name}: /api/stats {stats}; dashboard {dashboard}");
                foreach (var name in new[] { "active", "accepted", "closed", "refused" })
                    Assert.Equal(Long(stats, name), Long(dashboard, name));
                Assert.Equal(Long(stats, "accepted"), Long(stats, "active") + Long(stats, "closed"));
                // The cluster monitor's books (the singleton's, wherever it now runs, shown in /api/cluster) are the same:
                // it adds up every node's totals as the node counts them, the lost node's accepts and node-down closes
                // included. It hears each node every replication-interval, so it is waited for; then it must match exactly.
                static bool Same(JsonElement monitor, JsonElement stats) =>
                    new[] { "active", "accepted", "closed", "refused" }.All(name => Long(monitor, name) == Long(stats, name));
                var view = await node.Api.WaitForAsync("/api/cluster", v => v.GetProperty("monitor") is { ValueKind: JsonValueKind.Object } m && Same(m, stats),
                    TimeSpan.FromSeconds(10));
                var monitor = view.GetProperty("monitor");
                output.WriteLine($"{node.Name}: cluster monitor {monitor}");
                foreach (var name in new[] { "active", "accepted", "closed", "refused" })
                    Assert.Equal(Long(stats, name), Long(monitor, name));
                var monitorClosed = monitor.GetProperty("closedByReason").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
                foreach (var reason in stats.GetProperty("closedByReason").EnumerateObject())
                    Assert.Equal(reason.Value.GetInt64(), monitorClosed.GetValueOrDefault(reason.Name));
                Assert.Empty(monitorClosed.Where(r => r.Value != 0).Select(r => r.Key).Except(stats.GetProperty("closedByReason").EnumerateObject().Select(r => r.Name)));
                Assert.Equal(lost, monitorClosed.GetValueOrDefault("node-down"));
                Assert.Equal(Long(monitor, "accepted"), Long(monitor, "active") + Long(monitor, "closed"));

                var metrics = PrometheusText.Parse(await node.Api.Http.GetStringAsync("/metrics"));
                Assert.Equal(PeersPerNode[i], (long)metrics.Sum("supervisor_connections_accepted_total"));
                Assert.Equal(PeersPerNode[i], (long)metrics.Sum("supervisor_connections_active"));
                nodeDownCounted += (long)metrics.Sum("supervisor_connections_closed_total", "reason=\"node-down\"");
            }
            Assert.Equal(lost, nodeDownCounted);
        }
        finally
        {
            foreach (var peer in peers.SelectMany(p => p)) peer.Dispose();
        }
    }

    [Fact]
    public async Task A_node_frozen_past_the_downing_time_must_be_reported_node_down_and_stop_with_exit_1_when_it_wakes()
    {
        await using var cluster = await ClusterNodes.StartAsync(3, output);
        var peers = await ConnectEveryNodeAsync(cluster);
        var total = PeersPerNode.Sum();
        var frozen = cluster[2];
        var survivors = new[] { cluster[0], cluster[1] };
        try
        {
            await cluster.UntilAllStatsAsync(s => Long(s, "active") == total, TimeSpan.FromSeconds(1));
            foreach (var node in survivors)
                await node.Api.WaitForAsync("/api/cluster", v => v.GetProperty("members").EnumerateArray()
                    .Any(m => m.GetProperty("node").GetString() == frozen.Name && m.GetProperty("connections").GetInt64() == PeersPerNode[2]), TimeSpan.FromSeconds(2));

            // A stop-the-world pause, as a long GC or a stalled VM would give.
            frozen.Process.Signal(ChildProcess.SigStop);
            foreach (var node in survivors)
                await node.Api.WaitForAsync("/api/cluster", v => v.GetProperty("departures").EnumerateArray()
                    .Any(d => d.GetProperty("node").GetString() == frozen.Name && d.GetProperty("reason").GetString() == "node-down"), ClusterNodes.DowningBudget);
            await cluster.UntilAllStatsAsync(s => ClosedBy(s, "node-down") == PeersPerNode[2] && Long(s, "active") == total - PeersPerNode[2],
                TimeSpan.FromSeconds(2), survivors);

            // Removed by them (and so quarantined), as after any stall longer than the downing time.
            foreach (var node in survivors)
                await node.Api.WaitForAsync("/api/cluster", v => v.GetProperty("members").EnumerateArray()
                    .All(m => m.GetProperty("node").GetString() != frozen.Name), ClusterNodes.DowningBudget);

            // Woken, it knows it was marked down (frozen past the downing time, its peers the majority): it downs itself
            // before its own resolver acts on what it saw before the freeze, closes its sockets (its peers are told) and
            // exits 1 to be restarted.
            frozen.Process.Signal(ChildProcess.SigCont);
            var code = await frozen.Process.WaitForExitAsync(TimeSpan.FromSeconds(20));
            if (code != 1) throw frozen.Process.Failure($"exit code {code?.ToString() ?? "none"}, expected 1");
            var line = Assert.Single(frozen.Process.StandardError, l => l.Trim().Length > 0);
            Assert.StartsWith("supervisor: this node was marked down by the cluster", line, StringComparison.Ordinal);
            Assert.Contains(frozen.Process.StandardOutput, l => l.Contains("was frozen for", StringComparison.Ordinal) && l.Contains("marks itself down", StringComparison.Ordinal));
            // It never took the survivors for lost: its resolver did not act on the picture the freeze left it.
            Assert.DoesNotContain(frozen.Process.StandardOutput, l => l.Contains("SBR took decision", StringComparison.Ordinal));
            foreach (var peer in peers[2])
                Assert.Contains(await peer.ReceiveUntilClosedAsync(), f => f.Data?.StartsWith("server-shutdown", StringComparison.Ordinal) == true);
            // It did not take the survivors for departed, and they still count its connections once.
            Assert.DoesNotContain(frozen.Process.StandardOutput, l => l.Contains("left gracefully", StringComparison.Ordinal));
            await cluster.UntilAllStatsAsync(s => ClosedBy(s, "node-down") == PeersPerNode[2] && Long(s, "closed") == PeersPerNode[2] && Long(s, "accepted") == total,
                TimeSpan.FromSeconds(2), survivors);
            foreach (var peer in peers.Take(2).SelectMany(p => p))
            {
                await peer.SendHeartbeatAsync(seq: 7);
                Assert.Equal(7, (await peer.ReceiveFrameAsync())?.Seq);
            }
        }
        finally
        {
            foreach (var peer in peers.SelectMany(p => p)) peer.Dispose();
        }
    }

    [Fact]
    public async Task A_node_whose_seeds_are_not_up_must_still_supervise_and_report_its_own_connections()
    {
        var nobody = Client.ClientTestSupport.FreePort();
        using var service = ServiceProcess.Start(ServiceProcess.Config($$"""
            supervisor {
              http { enabled = on, port = 0 }
              cluster { enabled = on, port = 0, seed-nodes = ["127.0.0.1:{{nobody}}"] }
            }
            """), output: output);
        var tcp = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(30));
        var http = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(30), listener: "http");
        using var api = new Http.ApiClient(new Uri($"http://127.0.0.1:{http}/"));
        var peers = await ClusterNodes.ConnectAsync(new ClusterNode(service, tcp, api, "?"), 2);
        try
        {
            await api.WaitForAsync("/api/stats", s => Long(s, "active") == 2, TimeSpan.FromSeconds(2));
            var view = await api.GetOkAsync("/api/cluster");
            var self = Assert.Single(view.GetProperty("members").EnumerateArray());
            Assert.Equal("not-joined", self.GetProperty("status").GetString());
            Assert.Equal(2, self.GetProperty("connections").GetInt64());
            Assert.Equal(2, (await api.GetOkAsync("/api/connections")).GetProperty("total").GetInt32());
        }
        finally
        {
            foreach (var peer in peers) peer.Dispose();
        }
    }

    [Fact]
    public async Task A_node_that_leaves_gracefully_must_close_its_connections_as_server_shutdown_with_no_node_down()
    {
        await using var cluster = await ClusterNodes.StartAsync(3, output);
        var peers = await ConnectEveryNodeAsync(cluster);
        var total = PeersPerNode.Sum();
        var leaving = cluster[2];
        var survivors = new[] { cluster[0], cluster[1] };
        try
        {
            await cluster.UntilAllStatsAsync(s => Long(s, "active") == total, TimeSpan.FromSeconds(1));
            leaving.Process.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, await leaving.Process.WaitForExitAsync(TimeSpan.FromSeconds(15)));
            foreach (var peer in peers[2])
                Assert.Contains((await peer.ReceiveUntilClosedAsync()), f => f.Data?.StartsWith("server-shutdown", StringComparison.Ordinal) == true);

            foreach (var node in survivors)
                await node.Api.WaitForAsync("/api/cluster", v => v.GetProperty("departures").EnumerateArray()
                    .Any(d => d.GetProperty("node").GetString() == leaving.Name && d.GetProperty("reason").GetString() == "left"), TimeSpan.FromSeconds(10));
            await cluster.UntilAllStatsAsync(s =>
                    ClosedBy(s, "server-shutdown") == PeersPerNode[2] && ClosedBy(s, "node-down") == 0 && Long(s, "active") == total - PeersPerNode[2] && Long(s, "accepted") == total,
                TimeSpan.FromSeconds(2), survivors);
            foreach (var node in survivors)
            {
                var alerts = await node.Api.GetOkAsync("/api/alerts");
                Assert.DoesNotContain(alerts.GetProperty("active").EnumerateArray(), a => a.GetProperty("rule").GetString()!.StartsWith("node-down", StringComparison.Ordinal));
            }
        }
        finally
        {
            foreach (var peer in peers.SelectMany(p => p)) peer.Dispose();
        }
    }

    [Fact]
    public async Task Three_nodes_stopped_at_once_must_all_exit_0_within_the_5_seconds_the_readme_promises()
    {
        // Nobody is left to see the others leave: each waits supervisor.cluster.leave-timeout (3 s), not Akka's 10 s.
        await using var cluster = await ClusterNodes.StartAsync(3, output);
        var watch = Stopwatch.StartNew();
        foreach (var node in cluster.Nodes) node.Process.Signal(ChildProcess.SigTerm);
        var exits = await Task.WhenAll(cluster.Nodes.Select(async node =>
            (Node: node.Name, Code: await node.Process.WaitForExitAsync(TimeSpan.FromSeconds(20)), After: watch.Elapsed)));
        output.WriteLine(string.Join("; ", exits.Select(e => $"{e.Node} exit {e.Code} after {e.After.TotalSeconds:F2} s")));
        Assert.All(exits, e => Assert.Equal(0, e.Code));
        Assert.All(exits, e => Assert.True(e.After < TimeSpan.FromSeconds(5), $"{e.Node} took {e.After.TotalSeconds:F2} s to stop"));
    }
}
