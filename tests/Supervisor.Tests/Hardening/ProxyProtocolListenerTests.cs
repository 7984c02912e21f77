using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Text;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Hardening;

/// <summary>
/// A TCP listener with PROXY protocol on, over real loopback sockets: the client a trusted balancer's header
/// names is the connection's remote for the registry, the per-address cap and the logs; every way the header
/// can go wrong closes that one connection with a truthful reason and leaves nothing behind.
/// </summary>
public sealed class ProxyProtocolListenerTests(ITestOutputHelper output)
{
    private static readonly IPEndPoint Client = IPEndPoint.Parse("203.0.113.7:51234");
    private static readonly IPEndPoint Balancer = IPEndPoint.Parse("10.0.0.5:8081");
    private static readonly byte[] Heartbeat = Encoding.UTF8.GetBytes("{\"type\":0,\"timestamp\":1,\"seq\":5}\n");

    private static Task<TestService> StartAsync(string proxy = "trusted-networks = [\"127.0.0.1\"]", string extra = "") =>
        TestService.StartAsync($"supervisor.tcp.proxy-protocol {{ enabled = on, {proxy} }}\n{extra}");

    private static async Task AssertHeartbeatAnsweredAsync(TestPeer peer)
    {
        var response = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(FrameType.HeartbeatResponse, response?.Type);
        Assert.Equal(5, response!.Seq);
    }

    /// <summary>Waits for a log line: the registry may count a refusal before the supervisor has written its line.</summary>
    private static async Task WaitForLogAsync(TestService service, Func<string, bool> match)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!service.Logs.Lines.Any(l => match(l.Message)))
        {
            if (DateTime.UtcNow > deadline)
                throw new Xunit.Sdk.XunitException("no such log line; connection lines: " + string.Join("\n", service.Logs.Lines.Select(l => l.Message).Where(m => m.StartsWith("Connection", StringComparison.Ordinal))));
            await Task.Delay(20);
        }
    }

    private async Task<string> SingleNoticeAsync(TestPeer peer)
    {
        var frames = await peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(10));
        var notice = Assert.Single(frames);
        Assert.Equal(FrameType.ErrorNotice, notice.Type);
        output.WriteLine($"notice: {notice.Data}");
        return notice.Data!;
    }

    [Fact]
    public async Task A_v2_header_dripped_a_byte_at_a_time_must_make_the_client_it_names_the_connections_remote()
    {
        await using var service = await StartAsync();
        using var peer = await TestPeer.ConnectAsync(service.Port);
        foreach (var b in ProxyHeaders.V2(Client, Balancer, (0x05, "unique-id"u8.ToArray())))
        {
            await peer.SendAsync([b]);
            await Task.Delay(3);
        }
        await peer.SendAsync(Heartbeat);
        await AssertHeartbeatAnsweredAsync(peer);

        var connection = Assert.Single((await service.ConnectionsAsync()).Items);
        Assert.Equal("203.0.113.7:51234", connection.Remote);
        Assert.Equal("tcp", connection.Protocol);
        await WaitForLogAsync(service, l => l == $"Connection {connection.Id} opened from 203.0.113.7:51234 on listener tcp");
    }

    [Fact]
    public async Task A_v1_header_in_the_same_segment_as_the_first_frame_must_be_taken_exactly_and_the_frame_served()
    {
        await using var service = await StartAsync();
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await peer.SendAsync([.. ProxyHeaders.V1(IPEndPoint.Parse("[2001:db8::7]:40000"), IPEndPoint.Parse("[2001:db8::5]:8081")), .. Heartbeat]);
        await AssertHeartbeatAnsweredAsync(peer);
        Assert.Equal("[2001:db8::7]:40000", Assert.Single((await service.ConnectionsAsync()).Items).Remote);
    }

    [Fact]
    public async Task A_v2_LOCAL_header_must_keep_the_sockets_own_address()
    {
        await using var service = await StartAsync();
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await peer.SendAsync([.. ProxyHeaders.V2Local(), .. Heartbeat]);
        await AssertHeartbeatAnsweredAsync(peer);
        Assert.Equal(peer.Socket.LocalEndPoint!.ToString(), Assert.Single((await service.ConnectionsAsync()).Items).Remote);
    }

    [Fact]
    public async Task A_PROXY_header_from_an_untrusted_source_must_be_refused_with_its_reason()
    {
        await using var service = await StartAsync("trusted-networks = [\"10.0.0.0/8\", \"fd00::/8\"]");
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await peer.SendAsync([.. ProxyHeaders.V2(Client, Balancer), .. Heartbeat]);
        var notice = await SingleNoticeAsync(peer);
        Assert.Equal("protocol-error: PROXY protocol listener: 127.0.0.1 is not in proxy-protocol.trusted-networks, and only trusted proxies may connect", notice);
        var stats = await service.WaitForStatsAsync(s => s.Closed(CloseReason.ProtocolError) == 1);
        Assert.Equal(0, stats.Active);
        await WaitForLogAsync(service, l => l.StartsWith("Connection from 127.0.0.1:", StringComparison.Ordinal)
            && l.Contains("on listener tcp refused: protocol-error (PROXY protocol listener: 127.0.0.1 is not in proxy-protocol.trusted-networks"));
    }

    public static TheoryData<string, byte[], string> BrokenHeaders => new()
    {
        { "no header at all", Heartbeat, "protocol-error: PROXY header missing: the connection began with 7B 22 74 79 70 65 22 3A" },
        { "a v1 line ended by LF alone", [.. "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"u8, .. Heartbeat], "protocol-error: PROXY header (v1) malformed: its line ends with LF alone, not CRLF" },
        { "a v1 line without CRLF in 107 bytes", Encoding.ASCII.GetBytes("PROXY UNKNOWN " + new string('x', 200)), "protocol-error: PROXY header (v1) has no CRLF within 107 bytes" },
        { "a v2 header past 536 bytes", ProxyHeaders.V2Raw(0x21, 0x11, new byte[600]), "protocol-error: PROXY header (v2) of 616 bytes is longer than the 536 bytes a header may have" },
        { "garbage", [0xFF, 0x00, 0x13, 0x37], "protocol-error: PROXY header missing: the connection began with FF 00 13 37" },
    };

    [Theory]
    [MemberData(nameof(BrokenHeaders))]
    public async Task A_trusted_source_whose_header_is_missing_or_malformed_must_be_closed_with_protocol_error(string name, byte[] input, string expected)
    {
        await using var service = await StartAsync();
        using var bystander = await TestPeer.ConnectAsync(service.Port);
        await bystander.SendAsync([.. ProxyHeaders.V1(Client, Balancer), .. Heartbeat]);
        await AssertHeartbeatAnsweredAsync(bystander);

        using var peer = await TestPeer.ConnectAsync(service.Port);
        await peer.SendAsync(input);
        Assert.StartsWith(expected, await SingleNoticeAsync(peer));
        output.WriteLine(name);
        var stats = await service.WaitForStatsAsync(s => s.Closed(CloseReason.ProtocolError) == 1);
        Assert.Equal(1, stats.Active);
        await bystander.SendAsync(Heartbeat);
        await AssertHeartbeatAnsweredAsync(bystander);
    }

    [Fact]
    public async Task A_header_that_does_not_arrive_within_header_timeout_must_be_closed_with_first_frame_timeout()
    {
        await using var service = await StartAsync("trusted-networks = [\"127.0.0.1/32\"], header-timeout = 300ms");
        // Timed from before the connect: the server's deadline starts at accept, which the connect's return may trail by a lot under load.
        var opened = Stopwatch.StartNew();
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await peer.SendAsync(ProxyHeaders.V2(Client, Balancer)[..5]);
        var notice = await SingleNoticeAsync(peer);
        output.WriteLine($"closed after {opened.ElapsedMilliseconds} ms");
        Assert.Equal("first-frame-timeout: PROXY header not complete within 300ms of connecting (5 bytes received)", notice);
        // 300 ms on a quiet box; the upper bound leaves room for a loaded one.
        Assert.InRange(opened.ElapsedMilliseconds, 290, 3000);
        await service.WaitForStatsAsync(s => s.Closed(CloseReason.FirstFrameTimeout) == 1 && s.Active == 0);
    }

    [Fact]
    public async Task The_header_deadline_must_never_outlast_the_first_frame_deadline()
    {
        await using var service = await StartAsync("trusted-networks = [\"127.0.0.1\"], header-timeout = 30s",
            "supervisor.tcp.limits.first-frame-timeout = 300ms");
        var opened = Stopwatch.StartNew();
        using var peer = await TestPeer.ConnectAsync(service.Port);
        var notice = await SingleNoticeAsync(peer);
        Assert.Equal("first-frame-timeout: PROXY header not complete within 300ms of connecting (0 bytes received)", notice);
        Assert.InRange(opened.ElapsedMilliseconds, 290, 3000);
    }

    [Fact]
    public async Task A_peer_that_closes_in_the_middle_of_its_header_must_be_counted_peer_closed_and_leave_no_row()
    {
        await using var service = await StartAsync();
        using (var peer = await TestPeer.ConnectAsync(service.Port))
            await peer.SendAsync("PROXY TCP4 1.2"u8.ToArray());
        var closing = Stopwatch.StartNew();
        var stats = await service.WaitForStatsAsync(s => s.Closed(CloseReason.PeerClosed) == 1);
        output.WriteLine($"counted {closing.ElapsedMilliseconds} ms after the close");
        Assert.Equal(0, stats.Active);
        Assert.Empty((await service.ConnectionsAsync()).Items);
        await WaitForLogAsync(service, l => l.Contains("refused: peer-closed (peer closed the connection before its PROXY header was complete (14 bytes received))"));
    }

    [Fact]
    public async Task The_per_address_cap_must_count_the_client_the_header_names_not_the_balancer()
    {
        await using var service = await StartAsync(extra: "supervisor.tcp.limits.max-connections-per-address = 1");
        var first = IPEndPoint.Parse("198.51.100.1:1000");
        var second = IPEndPoint.Parse("198.51.100.2:1000");
        using var a = await TestPeer.ConnectAsync(service.Port);
        await a.SendAsync([.. ProxyHeaders.V2(first, Balancer), .. Heartbeat]);
        await AssertHeartbeatAnsweredAsync(a);
        // Same balancer socket address, another client: a cap on the socket's address would refuse it.
        using var b = await TestPeer.ConnectAsync(service.Port);
        await b.SendAsync([.. ProxyHeaders.V2(second, Balancer), .. Heartbeat]);
        await AssertHeartbeatAnsweredAsync(b);

        using var c = await TestPeer.ConnectAsync(service.Port);
        await c.SendAsync([.. ProxyHeaders.V1(IPEndPoint.Parse("198.51.100.1:2000"), Balancer), .. Heartbeat]);
        Assert.Equal("rejected-capacity: address 198.51.100.1 holds its maximum of 1 connections on listener tcp", await SingleNoticeAsync(c));
        await WaitForLogAsync(service, l => l.StartsWith("Connection from 198.51.100.1:2000 on listener tcp refused: rejected-capacity", StringComparison.Ordinal));
        Assert.Equal(["198.51.100.1:1000", "198.51.100.2:1000"], (await service.ConnectionsAsync()).Items.Select(i => i.Remote).Order());
    }

    [Fact]
    public async Task A_socket_waiting_for_its_header_must_hold_a_listener_slot()
    {
        await using var service = await StartAsync(extra: "supervisor.tcp.max-connections = 1");
        using var waiting = await TestPeer.ConnectAsync(service.Port);
        await waiting.SendAsync("PROXY TCP4"u8.ToArray());
        await Task.Delay(200);
        using var late = await TestPeer.ConnectAsync(service.Port);
        await late.SendAsync([.. ProxyHeaders.V2(Client, Balancer), .. Heartbeat]);
        Assert.Equal("rejected-capacity: listener tcp holds its maximum of 1 connections", await SingleNoticeAsync(late));
        // The slot comes back once the header is complete: the waiting one is served.
        await waiting.SendAsync([.. " 192.0.2.9 10.0.0.5 7 8081\r\n"u8, .. Heartbeat]);
        await AssertHeartbeatAnsweredAsync(waiting);
        Assert.Equal("192.0.2.9:7", Assert.Single((await service.ConnectionsAsync()).Items).Remote);
    }

    [Fact]
    public async Task A_socket_waiting_for_its_header_at_shutdown_must_be_told_and_closed()
    {
        var service = await StartAsync();
        await using (service)
        {
            using var peer = await TestPeer.ConnectAsync(service.Port);
            await peer.SendAsync("PROX"u8.ToArray());
            await Task.Delay(200);
            var stopping = service.StopAsync();
            ShutdownNotices.AssertHinted(await SingleNoticeAsync(peer));
            await stopping;
        }
    }

    [Fact]
    public async Task On_a_tls_listener_the_header_must_come_before_the_handshake()
    {
        using var certificates = new TestCertificates();
        await using var service = await StartAsync(extra: certificates.Hocon("supervisor.tcp.tls"));
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await peer.SendAsync(ProxyHeaders.V2(Client, Balancer));
        await using var tls = new SslStream(new System.Net.Sockets.NetworkStream(peer.Socket, ownsSocket: false), false, (_, _, _, _) => true);
        await tls.AuthenticateAsClientAsync("localhost");
        await tls.WriteAsync(Heartbeat);
        var buffer = new byte[256];
        var read = await tls.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        var frame = JsonLinesCodec.Decode(buffer.AsSpan(0, read).TrimEnd((byte)'\n')).Frame;
        Assert.Equal(FrameType.HeartbeatResponse, frame?.Type);
        var connection = Assert.Single((await service.ConnectionsAsync()).Items);
        Assert.Equal(("tls", "203.0.113.7:51234"), (connection.Protocol, connection.Remote));
    }
}
