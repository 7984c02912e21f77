using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Supervisor.Tests.Support;

namespace Supervisor.Tests.Http;

/// <summary>
/// The operator API against web pages (DESIGN §5), over real HTTP: DNS rebinding (a foreign <c>Host</c>) gets 400
/// on every route, state-changing requests from other origins get 403, and the event feed has a client cap.
/// </summary>
[Collection(OperatorSurfaceCollection.Name)]
public sealed class ApiSafetyTests
{
    private const string RebindHost = "rebind.attacker.example";

    /// <summary>Every route of the operator endpoint, and one that does not exist; {id} is a live connection.</summary>
    private static readonly string[] Routes =
    [
        "/", "/api/events", "/api/connections", "/api/connections/{id}", "/api/stats", "/api/alerts", "/api/cluster",
        "/api/probes", "/api/diagnostics", "/healthz", "/readyz", "/metrics", "/no-such-route",
    ];

    private static Dictionary<string, string> Headers(params (string Name, string Value)[] headers) =>
        headers.ToDictionary(h => h.Name, h => h.Value);

    private static async Task<string> LiveConnectionIdAsync(ApiClient api, TestPeer peer)
    {
        await OperatorApiTests.SendHeartbeatAndWaitForAnswer(peer, 1);
        var local = ((IPEndPoint)peer.Socket.LocalEndPoint!).ToString();
        return (await api.WaitForAsync("/api/connections", p => p.GetProperty("items").EnumerateArray()
                .Any(c => c.GetProperty("remote").GetString() == local)))
            .GetProperty("items").EnumerateArray().Single(c => c.GetProperty("remote").GetString() == local).GetProperty("id").GetString()!;
    }

    [Fact]
    public async Task A_rebound_host_name_must_get_400_on_every_route_and_loopback_names_must_work_as_before()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var peer = await TestPeer.ConnectAsync(service.Port);
        var id = await LiveConnectionIdAsync(api, peer);
        var routes = Routes.Select(r => r.Replace("{id}", id)).ToArray();

        // What each route answers to the test's own client (Host: 127.0.0.1:PORT).
        var before = new Dictionary<string, HttpStatusCode>();
        foreach (var route in routes)
            before[route] = (await api.SendRawAsync(HttpMethod.Get, route)).Status;
        Assert.All(routes.SkipLast(1), route => Assert.Equal(HttpStatusCode.OK, before[route]));
        Assert.Equal(HttpStatusCode.NotFound, before["/no-such-route"]);

        foreach (var host in new[] { RebindHost, $"{RebindHost}:{service.HttpPort}", "localhost.attacker.example", "evil-localhost" })
        {
            foreach (var route in routes)
            {
                var (status, _, text) = await api.SendRawAsync(HttpMethod.Get, route, headers: Headers(("Host", host)));
                Assert.True(status == HttpStatusCode.BadRequest, $"GET {route} with Host {host}: {(int)status} {text}");
                Assert.Contains("supervisor.http.allowed-hosts", text);
            }
            var (deleted, refusal) = await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}",
                headers: Headers(("Host", host), ("Origin", $"http://{host}")));
            Assert.Equal(HttpStatusCode.BadRequest, deleted);
            Assert.Contains("DNS rebinding", refusal.GetProperty("error").GetString());
        }
        await OperatorApiTests.SendHeartbeatAndWaitForAnswer(peer, 2);

        var port = service.HttpPort;
        foreach (var host in new[] { "localhost", $"localhost:{port}", "LocalHost", "127.0.0.1", $"127.0.0.1:{port}", "[::1]", $"[::1]:{port}" })
        {
            foreach (var route in routes)
            {
                var (status, _, text) = await api.SendRawAsync(HttpMethod.Get, route, headers: Headers(("Host", host)));
                Assert.True(status == before[route], $"GET {route} with Host {host}: {(int)status}, expected {(int)before[route]}: {text}");
            }
        }
        var (closed, _) = await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}", headers: Headers(("Host", $"localhost:{port}")));
        Assert.Equal(HttpStatusCode.Accepted, closed);
        Assert.Equal("admin-closed: closed by the operator", Assert.Single(await peer.ReceiveUntilClosedAsync()).Data);
    }

    [Fact]
    public async Task Allowed_hosts_must_admit_the_names_listed_and_star_must_admit_any()
    {
        await using var listed = await TestService.StartAsync("""supervisor.http.allowed-hosts = ["ops.example.com", "*.svc.cluster.local"]""");
        using var api = new ApiClient(listed);
        foreach (var host in new[] { "ops.example.com", "OPS.example.com:8080", "supervisor.ops.svc.cluster.local", "10.1.2.3:8080" })
            Assert.Equal(HttpStatusCode.OK, (await api.SendRawAsync(HttpMethod.Get, "/api/stats", headers: Headers(("Host", host)))).Status);
        // The list replaces the default: localhost is no longer listed (IP addresses always pass).
        foreach (var host in new[] { "localhost", "svc.cluster.local", "ops.example.com.attacker.example" })
            Assert.Equal(HttpStatusCode.BadRequest, (await api.SendRawAsync(HttpMethod.Get, "/api/stats", headers: Headers(("Host", host)))).Status);

        await using var any = await TestService.StartAsync("""supervisor.http.allowed-hosts = ["*"]""");
        using var anyApi = new ApiClient(any);
        Assert.Equal(HttpStatusCode.OK, (await anyApi.SendRawAsync(HttpMethod.Get, "/api/stats", headers: Headers(("Host", RebindHost)))).Status);
    }

    [Fact]
    public async Task A_state_changing_request_from_another_origin_must_get_403_and_one_from_the_same_origin_or_no_browser_must_not()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var peer = await TestPeer.ConnectAsync(service.Port);
        var id = await LiveConnectionIdAsync(api, peer);
        var self = $"127.0.0.1:{service.HttpPort}";

        var crossOrigin = new[]
        {
            Headers(("Origin", "http://evil.example")),
            Headers(("Origin", "null")), // sandboxed frames and file pages
            Headers(("Origin", $"http://127.0.0.1:{service.HttpPort + 1}")), // another web app on this machine
            Headers(("Origin", $"http://localhost:{service.HttpPort}")), // same machine, another origin than the Host
            Headers(("Sec-Fetch-Site", "cross-site")),
            Headers(("Origin", "http://evil.example"), ("Sec-Fetch-Site", "cross-site")),
        };
        foreach (var headers in crossOrigin)
        {
            var (status, body) = await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}", headers: headers);
            Assert.True(status == HttpStatusCode.Forbidden, $"DELETE with {string.Join(", ", headers)}: {(int)status} {body}");
            Assert.Contains("cross-", body.GetProperty("error").GetString());
        }
        // Any method that is not a read, not only the routes that exist today.
        Assert.Equal(HttpStatusCode.Forbidden, (await api.SendAsync(HttpMethod.Post, $"/api/connections/{id}", headers: crossOrigin[0])).Status);
        // Reads are not refused by origin: the browser does not let another origin's page read the answer.
        Assert.Equal(HttpStatusCode.OK, (await api.SendRawAsync(HttpMethod.Get, "/api/stats", headers: crossOrigin[0])).Status);
        await OperatorApiTests.SendHeartbeatAndWaitForAnswer(peer, 2);

        // The page the API serves itself, as a browser sends its DELETE.
        var (accepted, _) = await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}",
            headers: Headers(("Host", self), ("Origin", $"http://{self}"), ("Sec-Fetch-Site", "same-origin")));
        Assert.Equal(HttpStatusCode.Accepted, accepted);
        Assert.Equal("admin-closed: closed by the operator", Assert.Single(await peer.ReceiveUntilClosedAsync()).Data);
    }

    [Fact]
    public async Task With_an_admin_token_a_cross_origin_delete_must_get_403_even_with_the_token_and_the_token_rules_must_hold_otherwise()
    {
        await using var service = await TestService.StartAsync("supervisor.http.admin-token = \"s3cret-token\"");
        using var api = new ApiClient(service);
        using var peer = await TestPeer.ConnectAsync(service.Port);
        var id = await LiveConnectionIdAsync(api, peer);
        var sameOrigin = Headers(("Origin", $"http://127.0.0.1:{service.HttpPort}"));

        Assert.Equal(HttpStatusCode.Forbidden,
            (await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}", "s3cret-token", Headers(("Origin", "http://evil.example")))).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}", headers: sameOrigin)).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}")).Status);
        await OperatorApiTests.SendHeartbeatAndWaitForAnswer(peer, 2);

        Assert.Equal(HttpStatusCode.Accepted, (await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}", "s3cret-token")).Status);
        Assert.Equal("admin-closed: closed by the operator", Assert.Single(await peer.ReceiveUntilClosedAsync()).Data);
    }

    [Fact]
    public async Task Event_streams_beyond_max_event_clients_must_get_503_with_retry_after_until_one_closes()
    {
        await using var service = await TestService.StartAsync("supervisor.http.max-event-clients = 2");
        using var api = new ApiClient(service);
        var first = await api.Http.GetAsync("/api/events", HttpCompletionOption.ResponseHeadersRead);
        using var second = await api.Http.GetAsync("/api/events?limit=1000", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (first.StatusCode, second.StatusCode));

        var (status, headers, text) = await api.SendRawAsync(HttpMethod.Get, "/api/events");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal(TimeSpan.FromSeconds(5), headers.RetryAfter?.Delta);
        Assert.Contains("supervisor.http.max-event-clients", text);
        // A page larger than the cap is refused outright, and does not hold a slot.
        var (tooLarge, _, why) = await api.SendRawAsync(HttpMethod.Get, "/api/events?limit=1001");
        Assert.Equal(HttpStatusCode.BadRequest, tooLarge);
        Assert.Contains("limit", why);

        var metrics = await api.Http.GetStringAsync("/metrics");
        Assert.Equal(2, Series(metrics, "supervisor_http_event_clients"));
        Assert.Equal(1, Series(metrics, "supervisor_http_event_clients_refused_total"));

        // A dashboard that goes away frees its slot: the server sees the stream end at its next write, within a second.
        first.Dispose();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        HttpStatusCode again;
        do
        {
            using var retry = await api.Http.GetAsync("/api/events", HttpCompletionOption.ResponseHeadersRead);
            again = retry.StatusCode;
            if (again != HttpStatusCode.OK) await Task.Delay(200);
        } while (again != HttpStatusCode.OK && DateTime.UtcNow < deadline);
        Assert.Equal(HttpStatusCode.OK, again);
    }

    private static double Series(string prometheusText, string name)
    {
        var match = Regex.Match(prometheusText, $@"^{name}(\{{[^}}]*\}})? (\S+)", RegexOptions.Multiline);
        Assert.True(match.Success, $"no {name} in /metrics");
        return double.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task The_websocket_listener_must_take_peers_by_any_host_name()
    {
        // Peers reach the public listener by whatever names the deployment gives it; what a browser page may do
        // there is decided by allowed-origins, and a peer can do nothing a peer elsewhere cannot.
        await using var service = await TestService.StartAsync();
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, service.WebSocketPort);
        var stream = client.GetStream();
        var upgrade = $"GET /ws HTTP/1.1\r\nHost: {RebindHost}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                      $"Sec-WebSocket-Key: {Convert.ToBase64String(new byte[16])}\r\nSec-WebSocket-Version: 13\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(upgrade));
        var buffer = new byte[256];
        var read = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.StartsWith("HTTP/1.1 101", Encoding.ASCII.GetString(buffer, 0, read));
    }

    [Theory]
    [InlineData("0.0.0.0", "", true)]
    [InlineData("0.0.0.0", "s3cret-token", false)]
    [InlineData("127.0.0.1", "", false)]
    public async Task Start_up_must_warn_once_naming_the_keys_when_the_api_listens_beyond_loopback_without_a_token(string host, string token, bool warns)
    {
        await using var service = await TestService.StartAsync($"supervisor.http {{ host = \"{host}\", admin-token = \"{token}\" }}");
        var warnings = service.Logs.Lines.Where(l => l.Level == LogLevel.Warning && l.Message.Contains("supervisor.http.admin-token")).ToArray();
        if (!warns)
        {
            Assert.Empty(warnings);
            return;
        }
        var warning = Assert.Single(warnings);
        Assert.Contains("supervisor.http.host = 0.0.0.0", warning.Message);
        Assert.Contains("beyond loopback", warning.Message);
    }
}
