using System.Net;
using System.Text.Json;
using Akka.Actor;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.Extensions.DependencyInjection;
using Supervisor.Connections;
using Supervisor.Hosting;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;

namespace Supervisor.Tests.Http;

/// <summary>DESIGN §5 over real HTTP against the real service on loopback, every port chosen by the kernel.</summary>
[Collection(OperatorSurfaceCollection.Name)]
public sealed class OperatorApiTests
{
    private static readonly string[] ConnectionFields =
        ["id", "remote", "protocol", "listener", "state", "connectedAt", "lastFrameAt", "lastHeartbeatAt", "missedHeartbeats", "rttMs", "bytesIn", "bytesOut"];

    internal static async Task SendHeartbeatAndWaitForAnswer(TestPeer peer, long seq)
    {
        await peer.SendHeartbeatAsync(seq);
        Assert.Equal(seq, (await peer.ReceiveFrameAsync())!.Seq);
    }

    [Fact]
    public async Task Connection_list_must_show_every_live_connection_with_the_fields_of_the_design()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var first = await TestPeer.ConnectAsync(service.Port);
        using var second = await TestPeer.ConnectAsync(service.Port);
        await SendHeartbeatAndWaitForAnswer(first, 1);
        await SendHeartbeatAndWaitForAnswer(second, 2);

        // The table is the registry's: a connection reports on open, on state changes and on its deadline ticks.
        var page = await api.WaitForAsync("/api/connections", p => p.GetProperty("total").GetInt32() == 2);
        Assert.Equal(0, page.GetProperty("offset").GetInt32());
        Assert.Equal(JsonValueKind.Null, page.GetProperty("limit").ValueKind);
        var items = page.GetProperty("items").EnumerateArray().ToArray();
        Assert.Equal(2, items.Length);
        foreach (var item in items)
        {
            foreach (var field in ConnectionFields)
                Assert.True(item.TryGetProperty(field, out _), $"connection lacks '{field}': {item}");
            Assert.Equal("tcp", item.GetProperty("protocol").GetString());
            Assert.Equal("tcp", item.GetProperty("listener").GetString());
            Assert.Equal("active", item.GetProperty("state").GetString());
            Assert.StartsWith("127.0.0.1:", item.GetProperty("remote").GetString());
            Assert.True(item.GetProperty("keepAlive").GetProperty("enabled").GetBoolean());
            Assert.Equal(600, item.GetProperty("keepAlive").GetProperty("idleSeconds").GetInt32());
        }
        var local = ((IPEndPoint)first.Socket.LocalEndPoint!).ToString();
        Assert.Contains(items, i => i.GetProperty("remote").GetString() == local);
    }

    [Fact]
    public async Task Connection_list_must_filter_by_state_and_page_on_the_server()
    {
        // Silent peers stay (suspect): the first-frame deadline, on by default, would close them.
        await using var service = await TestService.StartAsync("supervisor.heartbeat { interval = 300ms, timeout = 30s }\nsupervisor.tcp.limits.first-frame-timeout = off");
        using var api = new ApiClient(service);
        using var silentA = await TestPeer.ConnectAsync(service.Port);
        using var silentB = await TestPeer.ConnectAsync(service.Port);
        using var chatty = await TestPeer.ConnectAsync(service.Port);
        using var keepTalking = new CancellationTokenSource();
        var talking = Task.Run(async () =>
        {
            for (var seq = 1; !keepTalking.IsCancellationRequested; seq++)
            {
                await chatty.SendHeartbeatAsync(seq);
                await Task.Delay(50);
            }
        });

        var suspect = await api.WaitForAsync("/api/connections?state=suspect", p => p.GetProperty("total").GetInt32() == 2);
        Assert.All(suspect.GetProperty("items").EnumerateArray(), c =>
        {
            Assert.Equal("suspect", c.GetProperty("state").GetString());
            Assert.True(c.GetProperty("missedHeartbeats").GetInt32() >= 1);
        });
        var active = await api.GetOkAsync("/api/connections?state=active");
        Assert.Equal(1, active.GetProperty("total").GetInt32());
        Assert.Equal(0, active.GetProperty("items")[0].GetProperty("missedHeartbeats").GetInt32());

        var all = await api.GetOkAsync("/api/connections");
        var ids = all.GetProperty("items").EnumerateArray().Select(c => c.GetProperty("id").GetString()).ToArray();
        var second = await api.GetOkAsync("/api/connections?offset=1&limit=1");
        Assert.Equal(3, second.GetProperty("total").GetInt32());
        Assert.Equal(1, second.GetProperty("limit").GetInt32());
        Assert.Equal(ids[1], Assert.Single(second.GetProperty("items").EnumerateArray()).GetProperty("id").GetString());
        var both = await api.GetOkAsync("/api/connections?state=suspect,active&protocol=tcp&limit=10");
        Assert.Equal(3, both.GetProperty("total").GetInt32());
        var beyond = await api.GetOkAsync("/api/connections?offset=10");
        Assert.Equal(3, beyond.GetProperty("total").GetInt32());
        Assert.Empty(beyond.GetProperty("items").EnumerateArray());

        var (status, error) = await api.GetJsonAsync("/api/connections?state=asleep");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("asleep", error.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, (await api.GetJsonAsync("/api/connections?limit=0")).Status);

        keepTalking.Cancel();
        await talking;
    }

    [Fact]
    public async Task One_connection_must_be_answered_fresh_by_its_actor_and_an_unknown_id_must_get_404()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await SendHeartbeatAndWaitForAnswer(peer, 7);
        var id = (await api.WaitForAsync("/api/connections", p => p.GetProperty("total").GetInt32() == 1))
            .GetProperty("items")[0].GetProperty("id").GetString()!;

        await SendHeartbeatAndWaitForAnswer(peer, 8);
        var one = await api.GetOkAsync($"/api/connections/{id}");
        Assert.Equal(id, one.GetProperty("id").GetString());
        Assert.Equal(2, one.GetProperty("heartbeatsReceived").GetInt64());
        Assert.True(one.GetProperty("bytesIn").GetInt64() > 0);
        Assert.True(one.GetProperty("bytesOut").GetInt64() > 0);
        Assert.NotEqual(JsonValueKind.Null, one.GetProperty("lastHeartbeatAt").ValueKind);
        foreach (var field in ConnectionFields)
            Assert.True(one.TryGetProperty(field, out _), $"connection lacks '{field}': {one}");

        var (status, body) = await api.GetJsonAsync("/api/connections/c999999");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("c999999", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Delete_must_close_the_peers_socket_with_an_admin_closed_notice_and_count_it()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var peer = await TestPeer.ConnectAsync(service.Port);
        using var bystander = await TestPeer.ConnectAsync(service.Port);
        await SendHeartbeatAndWaitForAnswer(peer, 1);
        var local = ((IPEndPoint)peer.Socket.LocalEndPoint!).ToString();
        var id = (await api.WaitForAsync("/api/connections", p => p.GetProperty("total").GetInt32() == 2))
            .GetProperty("items").EnumerateArray().Single(c => c.GetProperty("remote").GetString() == local).GetProperty("id").GetString()!;

        var (status, accepted) = await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}");
        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal("admin-closed", accepted.GetProperty("reason").GetString());

        var notice = Assert.Single(await peer.ReceiveUntilClosedAsync());
        Assert.Equal(FrameType.ErrorNotice, notice.Type);
        Assert.Equal("admin-closed: closed by the operator", notice.Data);
        var stats = await api.WaitForAsync("/api/stats", s => s.GetProperty("closedByReason").GetProperty("admin-closed").GetInt64() == 1);
        Assert.Equal(1, stats.GetProperty("active").GetInt64());
        // Counted closed from the decision; until its socket is released (the peer's FIN, or close-linger) it is still
        // listed in state closing.
        var (lingering, row) = await api.GetJsonAsync($"/api/connections/{id}");
        if (lingering == HttpStatusCode.OK) Assert.Equal("closing", row.GetProperty("state").GetString());
        peer.Dispose();
        for (var deadline = DateTime.UtcNow.AddSeconds(10); (await api.GetJsonAsync($"/api/connections/{id}")).Status != HttpStatusCode.NotFound;)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{id} still listed after its peer left");
            await Task.Delay(50);
        }
        Assert.Equal(HttpStatusCode.NotFound, (await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}")).Status);
        await SendHeartbeatAndWaitForAnswer(bystander, 2);
    }

    [Fact]
    public async Task Delete_must_need_the_bearer_token_when_an_admin_token_is_set()
    {
        await using var service = await TestService.StartAsync("supervisor.http.admin-token = \"s3cret-token\"");
        using var api = new ApiClient(service);
        using var peer = await TestPeer.ConnectAsync(service.Port);
        var id = (await api.WaitForAsync("/api/connections", p => p.GetProperty("total").GetInt32() == 1))
            .GetProperty("items")[0].GetProperty("id").GetString()!;

        var (none, body) = await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}");
        Assert.Equal(HttpStatusCode.Unauthorized, none);
        Assert.Contains("Bearer", body.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}", bearer: "wrong")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.SendAsync(HttpMethod.Delete, "/api/connections/c999999")).Status);
        Assert.Equal(1, (await api.GetOkAsync("/api/stats")).GetProperty("active").GetInt64());
        // Reading needs no token.
        Assert.Equal(HttpStatusCode.OK, (await api.GetJsonAsync($"/api/connections/{id}")).Status);

        Assert.Equal(HttpStatusCode.Accepted, (await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}", bearer: "s3cret-token")).Status);
        Assert.Equal("admin-closed: closed by the operator", Assert.Single(await peer.ReceiveUntilClosedAsync()).Data);
    }

    [Fact]
    public async Task Stats_must_report_totals_with_every_close_reason()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using (var leaving = await TestPeer.ConnectAsync(service.Port))
            await SendHeartbeatAndWaitForAnswer(leaving, 1);
        using var staying = await TestPeer.ConnectAsync(service.Port);
        await SendHeartbeatAndWaitForAnswer(staying, 2);

        var stats = await api.WaitForAsync("/api/stats", s => s.GetProperty("closedByReason").GetProperty("peer-closed").GetInt64() == 1);
        Assert.Equal(1, stats.GetProperty("active").GetInt64());
        Assert.Equal(2, stats.GetProperty("accepted").GetInt64());
        Assert.Equal(1, stats.GetProperty("closed").GetInt64());
        // Heartbeats and bytes of live connections count as of their last report to the registry.
        Assert.True(stats.GetProperty("heartbeats").GetInt64() >= 1);
        Assert.True(stats.GetProperty("bytesIn").GetInt64() > 0);
        Assert.True(stats.GetProperty("bytesOut").GetInt64() > 0);
        var reasons = stats.GetProperty("closedByReason").EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(CloseReasons.All.Select(r => r.ToWireName()).Order(), reasons.Order());
    }

    [Fact]
    public async Task Probes_must_list_every_probe_with_its_state_latency_and_last_error()
    {
        var closed = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        closed.Start();
        var port = ((System.Net.IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop(); // nothing listens there now
        var open = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        open.Start();
        try
        {
            await using var service = await TestService.StartAsync($$"""
                supervisor.probes {
                  gone { kind = tcp-connect, endpoint = "127.0.0.1:{{port}}", interval = 100ms, timeout = 100ms, rise = 1, fall = 2 }
                  here { kind = tcp-connect, endpoint = "127.0.0.1:{{((System.Net.IPEndPoint)open.LocalEndpoint).Port}}", interval = 200ms, timeout = 200ms, rise = 2, fall = 2 }
                }
                """);
            using var api = new ApiClient(service);
            var probes = await api.WaitForAsync("/api/probes", x =>
                x.EnumerateArray().Any(p => p.GetProperty("name").GetString() == "gone" && p.GetProperty("state").GetString() == "down")
                && x.EnumerateArray().Any(p => p.GetProperty("name").GetString() == "here" && p.GetProperty("state").GetString() == "up"));
            var gone = probes.EnumerateArray().Single(p => p.GetProperty("name").GetString() == "gone");
            Assert.Equal("tcp-connect", gone.GetProperty("kind").GetString());
            Assert.Contains("refused", gone.GetProperty("lastError").GetString());
            Assert.True(gone.GetProperty("consecutiveFailures").GetInt32() >= 2);
            var here = probes.EnumerateArray().Single(p => p.GetProperty("name").GetString() == "here");
            Assert.True(here.GetProperty("lastLatencyMs").GetDouble() >= 0);
            foreach (var field in new[] { "endpoint", "details" })
                Assert.True(here.TryGetProperty(field, out _), $"probe lacks '{field}': {here}");
        }
        finally
        {
            open.Stop();
        }
    }

    [Fact]
    public async Task Alerts_must_show_the_monitors_active_alerts_and_their_history()
    {
        await using var service = await TestService.StartAsync(
            "supervisor.monitor.rules { crowd { metric = connections.active, raise-above = 1, clear-below = 0, severity = warning } }");
        using var api = new ApiClient(service);
        var empty = await api.GetOkAsync("/api/alerts");
        Assert.Empty(empty.GetProperty("active").EnumerateArray());
        Assert.Empty(empty.GetProperty("history").EnumerateArray());

        using (var a = await TestPeer.ConnectAsync(service.Port))
        using (var b = await TestPeer.ConnectAsync(service.Port))
        {
            var raised = await api.WaitForAsync("/api/alerts", x => x.GetProperty("active").GetArrayLength() == 1);
            var alert = raised.GetProperty("active")[0];
            Assert.Equal("crowd", alert.GetProperty("rule").GetString());
            Assert.Equal("warning", alert.GetProperty("severity").GetString());
            Assert.Equal(2, alert.GetProperty("value").GetDouble());
            Assert.Equal(1, alert.GetProperty("threshold").GetDouble());
            Assert.Equal(JsonValueKind.Null, alert.GetProperty("resolvedAt").ValueKind);
            foreach (var field in new[] { "id", "raisedAt", "message" })
                Assert.True(alert.TryGetProperty(field, out _), $"alert lacks '{field}': {alert}");
        }

        var resolved = await api.WaitForAsync("/api/alerts", x => x.GetProperty("active").GetArrayLength() == 0
            && x.GetProperty("history").GetArrayLength() == 1);
        var past = resolved.GetProperty("history")[0];
        Assert.Equal("crowd", past.GetProperty("rule").GetString());
        Assert.NotEqual(JsonValueKind.Null, past.GetProperty("resolvedAt").ValueKind);
    }

    [Fact]
    public async Task Health_must_be_live_and_ready_once_started_and_not_ready_once_a_listener_stops_accepting()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        var live = await api.GetOkAsync("/healthz");
        Assert.Equal("healthy", live.GetProperty("status").GetString());
        var ready = await api.GetOkAsync("/readyz");
        Assert.Equal("healthy", ready.GetProperty("status").GetString());
        Assert.Contains("tcp 127.0.0.1:", ready.GetProperty("checks")[0].GetProperty("description").GetString());

        var listeners = service.Services.GetRequiredService<Akka.Hosting.ActorRegistry>().Get<TcpListenerActor>();
        await listeners.Ask<ListenerGroup.AllUnbound>(TcpListenerActor.Unbind.Instance, TimeSpan.FromSeconds(5));
        var (status, body) = await api.GetJsonAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Contains("listener tcp is not accepting", body.GetProperty("checks")[0].GetProperty("description").GetString());
        Assert.Equal(HttpStatusCode.OK, (await api.GetJsonAsync("/healthz")).Status);
    }

    [Fact]
    public async Task Readiness_must_fail_as_soon_as_shutdown_starts_while_the_server_still_answers()
    {
        var service = await TestService.StartAsync("supervisor.tcp.close-linger = 3s\nsupervisor.shutdown.close-timeout = 5s");
        await using var _ = service;
        using var api = new ApiClient(service);
        // A peer that never reads nor closes keeps the shutdown waiting for close-linger.
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("active").GetInt64() == 1);
        Assert.Equal(HttpStatusCode.OK, (await api.GetJsonAsync("/readyz")).Status);

        var stopping = service.StopAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(3);
        HttpStatusCode status;
        JsonElement body;
        do
        {
            (status, body) = await api.GetJsonAsync("/readyz");
        } while (status == HttpStatusCode.OK && DateTime.UtcNow < deadline);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal("shutting down", body.GetProperty("checks")[0].GetProperty("description").GetString());

        var notice = Assert.Single(await peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(10)));
        ShutdownNotices.AssertHinted(notice.Data);
        await stopping;
    }

    [Fact]
    public async Task Events_must_push_a_snapshot_every_second_with_totals_a_filtered_page_alerts_and_the_chart_history()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var a = await TestPeer.ConnectAsync(service.Port);
        using var b = await TestPeer.ConnectAsync(service.Port);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("active").GetInt64() == 2);

        using var response = await api.Http.GetAsync("/api/events?limit=1&offset=1", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var snapshots = new List<JsonElement>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (snapshots.Count < 3)
        {
            var line = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(5));
            if (line is not null && line.StartsWith("data: ", StringComparison.Ordinal))
                snapshots.Add(JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone());
        }
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(5));

        var first = snapshots[0];
        Assert.True(first.GetProperty("ready").GetBoolean());
        Assert.Equal(2, first.GetProperty("stats").GetProperty("active").GetInt64());
        var page = first.GetProperty("connections");
        Assert.Equal((2, 1, 1), (page.GetProperty("total").GetInt32(), page.GetProperty("offset").GetInt32(), page.GetProperty("items").GetArrayLength()));
        Assert.Equal(JsonValueKind.Array, first.GetProperty("alerts").ValueKind);
        Assert.Equal(JsonValueKind.Array, first.GetProperty("history").ValueKind);
        Assert.True(first.GetProperty("history").GetArrayLength() >= 1);
        // Later snapshots carry the newest sample only.
        Assert.Equal(JsonValueKind.Null, snapshots[2].GetProperty("history").ValueKind);
        Assert.Equal(2, snapshots[2].GetProperty("sample").GetProperty("active").GetInt64());

        var (status, error) = await api.GetJsonAsync("/api/events?state=sleepy");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("sleepy", error.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Dashboard_page_must_be_served_at_the_root_as_one_self_contained_html_file()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var response = await api.Http.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Contains("new EventSource(\"/api/events?\"", html);
        // No CDN: nothing is loaded from another origin.
        Assert.DoesNotContain("src=\"http", html);
        Assert.DoesNotContain("href=\"http", html);
    }

    [Fact]
    public async Task Http_off_must_run_no_http_server_and_the_api_must_not_answer_on_the_websocket_port()
    {
        await using (var neither = await TestService.StartAsync("supervisor { http.enabled = off, websocket.enabled = off }"))
        {
            Assert.Null(neither.Services.GetService<IServer>());
            Assert.Throws<InvalidOperationException>(() => neither.HttpPort);
        }

        await using var wsOnly = await TestService.StartAsync("supervisor.http.enabled = off");
        Assert.Throws<InvalidOperationException>(() => wsOnly.HttpPort);
        using var onWsPort = new ApiClient(new Uri($"http://127.0.0.1:{wsOnly.WebSocketPort}/"));
        using var response = await onWsPort.Http.GetAsync("/api/stats");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);

        await using var both = await TestService.StartAsync();
        using var wsPort = new ApiClient(new Uri($"http://127.0.0.1:{both.WebSocketPort}/"));
        using var api = await wsPort.Http.GetAsync("/api/stats");
        Assert.Equal(HttpStatusCode.NotFound, api.StatusCode);
        using var metrics = await wsPort.Http.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.NotFound, metrics.StatusCode);
    }
}
