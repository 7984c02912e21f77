using System.Net;
using System.Text.Json;
using Supervisor.Http;
using Supervisor.Tests.Support;
using Supervisor.Tests.WebSockets;
using Xunit.Abstractions;

namespace Supervisor.Tests.Http;

/// <summary>
/// Tests that compare the service's view of the kernel's socket tables with the test's own reading. They
/// run alone, after the parallel tests, so that other tests' sockets do not move the numbers in between.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KernelTablesCollection
{
    public const string Name = "Kernel socket tables";
}

/// <summary><c>GET /api/diagnostics</c>: /proc/net/sockstat, per-listener socket states, per-connection TCP_INFO.</summary>
[Collection(KernelTablesCollection.Name)]
public sealed class DiagnosticsTests(ITestOutputHelper output)
{
    private static IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> ReadSockstat() =>
        ProcNet.ParseSockstat(File.ReadAllText("/proc/net/sockstat") + "\n" + File.ReadAllText("/proc/net/sockstat6"));

    [Fact]
    public async Task Diagnostics_sockstat_must_agree_with_proc_net_sockstat_read_by_the_test()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var peers = new DisposableList<TestPeer>();
        for (var i = 0; i < 5; i++) peers.Add(await TestPeer.ConnectAsync(service.Port));
        await api.WaitForAsync("/api/stats", s => s.GetProperty("active").GetInt64() == 5);
        await api.GetOkAsync("/api/diagnostics"); // the HTTP connection is open before the readings

        var before = ReadSockstat();
        var report = await api.GetOkAsync("/api/diagnostics");
        var after = ReadSockstat();
        output.WriteLine($"test before: {Describe(before["tcp"])}\nservice:     {report.GetProperty("sockstat").GetProperty("tcp")}\ntest after:  {Describe(after["tcp"])}");

        var tcp = report.GetProperty("sockstat").GetProperty("tcp");
        foreach (var field in new[] { "inuse", "orphan", "tw", "alloc", "mem" })
        {
            var low = Math.Min(before["tcp"][field], after["tcp"][field]);
            var high = Math.Max(before["tcp"][field], after["tcp"][field]);
            // The kernel's own timers (TIME_WAIT expiry, memory accounting) may move a count by a little meanwhile.
            var slack = field == "mem" ? 4 : 2;
            Assert.InRange(tcp.GetProperty(field).GetInt64(), low - slack, high + slack);
        }
        Assert.True(tcp.GetProperty("inuse").GetInt64() >= 10, "five peers and their five server sockets are in use");
        Assert.Equal(before["tcp6"]["inuse"], report.GetProperty("sockstat").GetProperty("tcp6").GetProperty("inuse").GetInt64());
        Assert.True(report.GetProperty("sockstat").GetProperty("sockets").GetProperty("used").GetInt64() > 0);
    }

    [Fact]
    public async Task Diagnostics_must_count_established_and_time_wait_sockets_on_each_listener_port()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var peers = new DisposableList<TestPeer>();
        for (var i = 0; i < 3; i++) peers.Add(await TestPeer.ConnectAsync(service.Port));
        using var ws = await WsPeer.ConnectAsync(service.WebSocketPort);
        var page = await api.WaitForAsync("/api/connections?protocol=tcp", p => p.GetProperty("total").GetInt32() == 3);

        var report = await api.GetOkAsync("/api/diagnostics");
        var listeners = report.GetProperty("listeners").EnumerateArray().ToDictionary(l => l.GetProperty("name").GetString()!);
        Assert.Equal(3, listeners["tcp"].GetProperty("established").GetInt32());
        Assert.Equal($"127.0.0.1:{service.Port}", listeners["tcp"].GetProperty("endpoint").GetString());
        Assert.Equal(1, listeners["websocket"].GetProperty("established").GetInt32());
        Assert.Equal("ws", listeners["websocket"].GetProperty("protocol").GetString());
        Assert.True(listeners["http"].GetProperty("established").GetInt32() >= 1, "this very request");

        // The server announces an admin close and sends FIN first, so its side ends in TIME_WAIT.
        var id = page.GetProperty("items")[0].GetProperty("id").GetString();
        Assert.Equal(HttpStatusCode.Accepted, (await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}")).Status);
        var closed = peers.Items.Single(p => p.Socket.LocalEndPoint!.ToString() == page.GetProperty("items")[0].GetProperty("remote").GetString());
        await closed.ReceiveUntilClosedAsync();
        closed.Dispose();
        var afterClose = await api.WaitForAsync("/api/diagnostics", r => r.GetProperty("listeners").EnumerateArray()
            .Single(l => l.GetProperty("name").GetString() == "tcp").GetProperty("timeWait").GetInt32() >= 1);
        var tcpAfter = afterClose.GetProperty("listeners").EnumerateArray().Single(l => l.GetProperty("name").GetString() == "tcp");
        Assert.Equal(2, tcpAfter.GetProperty("established").GetInt32());
    }

    [Fact]
    public async Task A_live_connection_must_show_the_kernels_tcp_info_with_an_rtt()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var tcp = await TestPeer.ConnectAsync(service.Port);
        using var ws = await WsPeer.ConnectAsync(service.WebSocketPort);
        // Some traffic both ways, so the kernel has round trips to measure.
        for (var seq = 1; seq <= 3; seq++)
        {
            await tcp.SendHeartbeatAsync(seq);
            await tcp.ReceiveFrameAsync();
            await ws.SendFrameAsync(new Messages.Wire.Frame(Messages.Wire.FrameType.Heartbeat, 1, null, seq));
            await ws.ReceiveFrameAsync();
        }
        await api.WaitForAsync("/api/stats", s => s.GetProperty("active").GetInt64() == 2);

        var report = await api.GetOkAsync("/api/diagnostics");
        output.WriteLine(report.GetProperty("connections").ToString());
        var connections = report.GetProperty("connections");
        Assert.Equal(2, connections.GetProperty("total").GetInt32());
        foreach (var item in connections.GetProperty("items").EnumerateArray())
        {
            Assert.Equal(JsonValueKind.Null, item.GetProperty("error").ValueKind);
            var info = item.GetProperty("tcpInfo");
            Assert.Equal("established", info.GetProperty("state").GetString());
            Assert.True(info.GetProperty("rttMs").GetDouble() > 0, $"no rtt for {item}");
            Assert.True(info.GetProperty("rttVarMs").GetDouble() >= 0);
            Assert.True(info.GetProperty("rtoMs").GetDouble() >= 200, "Linux never sets the RTO below 200 ms");
            foreach (var field in new[] { "retransmits", "unacked", "lost", "totalRetrans", "sendCongestionWindow" })
                Assert.True(info.GetProperty(field).GetInt64() >= 0, $"{field} missing or negative in {info}");
        }
        Assert.Contains(connections.GetProperty("items").EnumerateArray(), i => i.GetProperty("protocol").GetString() == "ws");

        var paged = await api.GetOkAsync("/api/diagnostics?protocol=ws&limit=1");
        Assert.Equal("ws", Assert.Single(paged.GetProperty("connections").GetProperty("items").EnumerateArray()).GetProperty("protocol").GetString());
    }

    private static string Describe(IReadOnlyDictionary<string, long> values) => string.Join(' ', values.Select(kv => $"{kv.Key}={kv.Value}"));

    /// <summary>Disposes every item it holds.</summary>
    private sealed class DisposableList<T> : IDisposable where T : IDisposable
    {
        public List<T> Items { get; } = [];

        public void Add(T item) => Items.Add(item);

        public void Dispose()
        {
            foreach (var item in Items) item.Dispose();
        }
    }
}
