using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Http;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.WebSockets;

/// <summary>The WebSocket listener (DESIGN §5): the same frames, the same supervision, ping/pong as the heartbeat.</summary>
[Collection(OperatorSurfaceCollection.Name)]
public sealed class WebSocketTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Ping = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan Pong = TimeSpan.FromMilliseconds(300);

    [Fact]
    public async Task With_codec_binary_each_binary_message_must_be_one_frame_and_a_text_message_a_protocol_error()
    {
        await using var service = await TestService.StartAsync("supervisor.websocket.codec = binary");
        using var peer = await WsPeer.ConnectAsync(service.WebSocketPort);
        var codec = BinaryCodec.Instance;
        var buffer = new byte[1024];

        async Task<(WebSocketMessageType Type, byte[] Bytes)> ReceiveAsync()
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var result = await peer.Socket.ReceiveAsync(buffer, timeout.Token);
            Assert.True(result.EndOfMessage);
            return (result.MessageType, buffer[..result.Count]);
        }

        await peer.Socket.SendAsync(codec.EncodeMessageToArray(new Frame(FrameType.Heartbeat, 1, null, 42)), WebSocketMessageType.Binary, true, CancellationToken.None);
        var (type, bytes) = await ReceiveAsync();
        Assert.Equal(WebSocketMessageType.Binary, type);
        Assert.True(codec.TryDecodeMessage(bytes, 1024, out var response, out var error, out _), error);
        Assert.Equal((FrameType.HeartbeatResponse, 42L), (response.Type, response.Seq!.Value));

        await peer.Socket.SendAsync(codec.EncodeMessageToArray(new Frame(FrameType.Data, 1, "é 😀")), WebSocketMessageType.Binary, true, CancellationToken.None);
        (_, bytes) = await ReceiveAsync();
        Assert.True(codec.TryDecodeMessage(bytes, 1024, out var echo, out _, out _));
        Assert.Equal("é 😀", echo.Data);

        await peer.SendTextAsync("{\"type\":0}");
        (type, bytes) = await ReceiveAsync();
        Assert.Equal(WebSocketMessageType.Binary, type);
        Assert.True(codec.TryDecodeMessage(bytes, 1024, out var notice, out _, out _));
        Assert.Equal("protocol-error: text message; this listener speaks binary frames in binary messages", notice.Data);
        await service.WaitForStatsAsync(s => s.Closed(CloseReason.ProtocolError) == 1);
    }

    [Fact]
    public async Task Client_websocket_must_exchange_json_frames_and_get_its_seq_echoed()
    {
        await using var service = await TestService.StartAsync();
        using var peer = await WsPeer.ConnectAsync(service.WebSocketPort);

        await peer.SendTextAsync("{\"type\":0,\"timestamp\":1700000000,\"seq\":42}");
        var response = await peer.ReceiveFrameAsync();
        Assert.Equal(FrameType.HeartbeatResponse, response!.Type);
        Assert.Equal(42, response.Seq);
        Assert.InRange(response.Timestamp, DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 5, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);

        // A trailing newline, as a TCP peer would write it, is accepted too.
        await peer.SendTextAsync("{\"type\":2,\"timestamp\":1,\"data\":\"hello 世界\"}\n");
        var echo = await peer.ReceiveFrameAsync();
        Assert.Equal(FrameType.Data, echo!.Type);
        Assert.Equal("hello 世界", echo.Data);

        await peer.SendFrameAsync(new Frame(FrameType.Heartbeat, 1, null, 43));
        Assert.Equal(43, (await peer.ReceiveFrameAsync())!.Seq);
    }

    [Fact]
    public async Task Websocket_connections_must_appear_in_the_connection_table_with_protocol_ws()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var ws = await WsPeer.ConnectAsync(service.WebSocketPort);
        using var tcp = await TestPeer.ConnectAsync(service.Port);

        var page = await api.WaitForAsync("/api/connections?protocol=ws", p => p.GetProperty("total").GetInt32() == 1);
        var item = page.GetProperty("items")[0];
        Assert.Equal("ws", item.GetProperty("protocol").GetString());
        Assert.Equal("websocket", item.GetProperty("listener").GetString());
        Assert.StartsWith("127.0.0.1:", item.GetProperty("remote").GetString());
        Assert.Equal("active", item.GetProperty("state").GetString());
        Assert.True(item.GetProperty("keepAlive").GetProperty("enabled").GetBoolean());
        Assert.Equal(2, (await api.GetOkAsync("/api/connections")).GetProperty("total").GetInt32());

        var id = item.GetProperty("id").GetString();
        await ws.SendFrameAsync(new Frame(FrameType.Heartbeat, 1, null, 1));
        await ws.ReceiveFrameAsync();
        var fresh = await api.GetOkAsync($"/api/connections/{id}");
        Assert.Equal(1, fresh.GetProperty("heartbeatsReceived").GetInt64());
    }

    [Fact]
    public async Task Raw_socket_peer_that_never_answers_pings_must_get_the_heartbeat_timeout_notice_and_a_close_frame()
    {
        await using var service = await TestService.StartAsync($"supervisor.websocket {{ ping-interval = {Ping.TotalMilliseconds}ms, pong-timeout = {Pong.TotalMilliseconds}ms }}");
        using var api = new ApiClient(service);
        using var answering = await WsPeer.ConnectAsync(service.WebSocketPort);
        // A .NET client answers pings while it is receiving: keep a receive pending, as a real client does.
        var answer = answering.ReceiveFrameAsync(TimeSpan.FromSeconds(20));
        using var silent = await SilentWsPeer.HandshakeAsync(service.WebSocketPort);

        var (frames, closed) = await silent.ReadFramesUntilClosedAsync(TimeSpan.FromSeconds(10));
        foreach (var frame in frames)
            output.WriteLine($"after {frame.ArrivedAfter.TotalMilliseconds:F0} ms: opcode {frame.Opcode}, {frame.Payload.Length} bytes {(frame.Opcode == ServerWsFrame.Ping ? "" : frame.PayloadText)}");
        Assert.True(closed, "the server never closed the connection");
        var ping = frames.First(f => f.Opcode == ServerWsFrame.Ping);
        var notice = frames.Single(f => f.Opcode == ServerWsFrame.Text);
        var close = frames.Single(f => f.Opcode == ServerWsFrame.Close);
        Assert.StartsWith("{\"type\":3,", notice.PayloadText);
        Assert.Contains("heartbeat-timeout: no pong within 300ms of a ping", notice.PayloadText);
        Assert.Equal(1008, close.CloseStatus);
        Assert.Equal("heartbeat-timeout", close.CloseText);
        // The notice comes before the close frame, and not before the peer had its full pong-timeout after the ping.
        Assert.True(frames.ToList().IndexOf(notice) < frames.ToList().IndexOf(close));
        Assert.True(close.ArrivedAfter - ping.ArrivedAfter >= Pong - TimeSpan.FromMilliseconds(20),
            $"closed {(close.ArrivedAfter - ping.ArrivedAfter).TotalMilliseconds:F0} ms after the ping");
        // The transport's deadline: silent for ping-interval + one runtime keep-alive tick + pong-timeout. A second
        // of tolerance covers the timer and a busy machine.
        var limit = Supervisor.WebSockets.WebSocketTransport.SilenceLimit(Ping, Pong);
        Assert.InRange(close.ArrivedAfter, Ping + Pong, limit + TimeSpan.FromSeconds(1));

        var stats = await api.WaitForAsync("/api/stats", s => s.GetProperty("closedByReason").GetProperty("heartbeat-timeout").GetInt64() == 1);
        Assert.Equal(1, stats.GetProperty("active").GetInt64());
        var line = service.Logs.Lines.Single(l => l.Message.Contains(" closed: heartbeat-timeout", StringComparison.Ordinal));
        Assert.Contains("no pong within 300ms of a ping", line.Message);

        // The peer that answers pings is not touched, however long it sends no frame.
        await Task.Delay(3 * limit);
        await answering.SendFrameAsync(new Frame(FrameType.Heartbeat, 1, null, 5));
        Assert.Equal(5, (await answer)!.Seq);
        Assert.Equal(0, (await api.GetOkAsync("/api/stats")).GetProperty("closedByReason").GetProperty("peer-closed").GetInt64());
    }

    [Fact]
    public async Task A_peer_that_answers_pings_but_holds_a_message_open_must_be_closed_within_the_silence_limit()
    {
        await using var service = await TestService.StartAsync($"supervisor.websocket {{ ping-interval = {Ping.TotalMilliseconds}ms, pong-timeout = {Pong.TotalMilliseconds}ms }}");
        using var api = new ApiClient(service);
        using var holder = await WsPeer.ConnectAsync(service.WebSocketPort);
        // A receive stays pending, so the .NET client answers every ping: only the open message can end this peer.
        var received = holder.ReceiveFrameAsync(TimeSpan.FromSeconds(20));
        await holder.SendFrameAsync(new Frame(FrameType.Heartbeat, 1, null, 1));
        Assert.Equal(1, (await received)!.Seq);
        var closed = holder.ReceiveFrameAsync(TimeSpan.FromSeconds(20));
        var openedAt = Stopwatch.StartNew();
        // The start of a frame whose message never ends, cut inside a UTF-8 sequence (E2 82 of "€"), so not yet invalid.
        byte[] unfinished = [.. "{\"type\":2,\"timestamp\":1,\"data\":\""u8, 0xE2, 0x82];
        await holder.Socket.SendAsync(unfinished, WebSocketMessageType.Text, endOfMessage: false, CancellationToken.None);

        var notice = await closed;
        var after = openedAt.Elapsed;
        output.WriteLine($"closed {after.TotalMilliseconds:F0} ms after the message was opened: {notice}");
        Assert.NotNull(notice);
        Assert.Equal(FrameType.ErrorNotice, notice.Type);
        Assert.StartsWith("heartbeat-timeout: a message unfinished for ", notice.Data);
        var limit = Supervisor.WebSockets.WebSocketTransport.SilenceLimit(Ping, Pong);
        Assert.InRange(after, limit - TimeSpan.FromMilliseconds(50), limit + TimeSpan.FromSeconds(2));
        await api.WaitForAsync("/api/stats", s => s.GetProperty("closedByReason").GetProperty("heartbeat-timeout").GetInt64() == 1
            && s.GetProperty("active").GetInt64() == 0);
    }

    [Fact]
    public async Task Foreign_origin_must_get_403_and_the_same_host_or_a_listed_origin_must_be_accepted()
    {
        await using (var sameHostOnly = await TestService.StartAsync())
        {
            Assert.Equal(HttpStatusCode.Forbidden, await WsPeer.RefusedStatusAsync(sameHostOnly.WebSocketPort, origin: "http://evil.example"));
            using var page = await WsPeer.ConnectAsync(sameHostOnly.WebSocketPort, origin: $"http://127.0.0.1:{sameHostOnly.HttpPort}");
            using var noOrigin = await WsPeer.ConnectAsync(sameHostOnly.WebSocketPort);
        }

        await using var listed = await TestService.StartAsync("supervisor.websocket.allowed-origins = [\"https://app.example.com\"]");
        Assert.Equal(HttpStatusCode.Forbidden, await WsPeer.RefusedStatusAsync(listed.WebSocketPort, origin: "http://127.0.0.1"));
        Assert.Equal(HttpStatusCode.Forbidden, await WsPeer.RefusedStatusAsync(listed.WebSocketPort, origin: "https://app.example.com.evil.example"));
        using var allowed = await WsPeer.ConnectAsync(listed.WebSocketPort, origin: "https://APP.example.com:443");
        await allowed.SendFrameAsync(new Frame(FrameType.Heartbeat, 1, null, 9));
        Assert.Equal(9, (await allowed.ReceiveFrameAsync())!.Seq);
        using var api = new ApiClient(listed);
        Assert.Equal(0, (await api.GetOkAsync("/api/stats")).GetProperty("accepted").GetInt64() - 1);
    }

    [Fact]
    public async Task Wrong_path_must_get_404_and_a_plain_request_426()
    {
        await using var service = await TestService.StartAsync();
        Assert.Equal(HttpStatusCode.NotFound, await WsPeer.RefusedStatusAsync(service.WebSocketPort, path: "/other"));
        using var http = new HttpClient();
        using var plain = await http.GetAsync($"http://127.0.0.1:{service.WebSocketPort}/ws");
        Assert.Equal(HttpStatusCode.UpgradeRequired, plain.StatusCode);
    }

    [Fact]
    public async Task Message_over_max_frame_length_must_get_the_notice_then_a_close_frame_and_count_frame_too_large()
    {
        await using var service = await TestService.StartAsync("supervisor.websocket.max-frame-length = 1KiB");
        using var api = new ApiClient(service);
        using var peer = await WsPeer.ConnectAsync(service.WebSocketPort);
        await peer.SendTextAsync("{\"type\":2,\"data\":\"" + new string('x', 1100) + "\"}");

        var notice = Assert.Single(await peer.ReceiveUntilClosedAsync());
        Assert.Equal(FrameType.ErrorNotice, notice.Type);
        Assert.Equal("frame-too-large: frame longer than max-frame-length (1024 bytes)", notice.Data);
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, peer.Socket.CloseStatus);
        Assert.Equal("frame-too-large", peer.Socket.CloseStatusDescription);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("closedByReason").GetProperty("frame-too-large").GetInt64() == 1
            && s.GetProperty("active").GetInt64() == 0);
    }

    [Theory]
    [InlineData("not json", "protocol-error: frame is not valid JSON")]
    [InlineData("", "protocol-error: frame is empty")]
    [InlineData("{\"type\":9}", "protocol-error: unknown frame type 9")]
    public async Task Malformed_text_message_must_get_a_protocol_error_notice_then_a_close_frame(string message, string expected)
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var peer = await WsPeer.ConnectAsync(service.WebSocketPort);
        await peer.SendTextAsync(message);

        var notice = Assert.Single(await peer.ReceiveUntilClosedAsync());
        Assert.Equal(expected, notice.Data);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, peer.Socket.CloseStatus);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("closedByReason").GetProperty("protocol-error").GetInt64() == 1);
    }

    [Fact]
    public async Task Binary_message_must_close_with_protocol_error()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var peer = await WsPeer.ConnectAsync(service.WebSocketPort);
        await peer.Socket.SendAsync(new byte[] { 1, 2, 3 }, WebSocketMessageType.Binary, true, CancellationToken.None);

        var notice = Assert.Single(await peer.ReceiveUntilClosedAsync());
        Assert.Equal("protocol-error: binary message; frames are JSON text messages", notice.Data);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("closedByReason").GetProperty("protocol-error").GetInt64() == 1);
    }

    [Fact]
    public async Task Peer_close_frame_must_count_as_peer_closed_and_get_the_close_answered()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var peer = await WsPeer.ConnectAsync(service.WebSocketPort);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("active").GetInt64() == 1);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await peer.Socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", timeout.Token);
        Assert.Equal(WebSocketState.Closed, peer.Socket.State);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("closedByReason").GetProperty("peer-closed").GetInt64() == 1
            && s.GetProperty("active").GetInt64() == 0);
    }

    [Fact]
    public async Task Delete_must_close_a_websocket_with_the_admin_closed_notice_and_a_normal_close_frame()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        using var peer = await WsPeer.ConnectAsync(service.WebSocketPort);
        var id = (await api.WaitForAsync("/api/connections?protocol=ws", p => p.GetProperty("total").GetInt32() == 1))
            .GetProperty("items")[0].GetProperty("id").GetString();

        Assert.Equal(HttpStatusCode.Accepted, (await api.SendAsync(HttpMethod.Delete, $"/api/connections/{id}")).Status);
        var notice = Assert.Single(await peer.ReceiveUntilClosedAsync());
        Assert.Equal("admin-closed: closed by the operator", notice.Data);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, peer.Socket.CloseStatus);
        Assert.Equal("admin-closed", peer.Socket.CloseStatusDescription);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("closedByReason").GetProperty("admin-closed").GetInt64() == 1);
    }

    [Fact]
    public async Task Shutdown_must_close_websockets_with_the_server_shutdown_notice_and_a_going_away_close_frame()
    {
        var service = await TestService.StartAsync();
        await using var _ = service;
        using var peer = await WsPeer.ConnectAsync(service.WebSocketPort);
        using var api = new ApiClient(service);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("active").GetInt64() == 1);

        var clock = Stopwatch.StartNew();
        var stopping = service.StopAsync();
        var notice = Assert.Single(await peer.ReceiveUntilClosedAsync());
        ShutdownNotices.AssertHinted(notice.Data);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, peer.Socket.CloseStatus);
        await stopping;
        output.WriteLine($"host stopped {clock.ElapsedMilliseconds} ms after the stop began");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"stop took {clock.Elapsed}");
    }

    [Fact]
    public async Task Websocket_capacity_must_refuse_one_more_with_rejected_capacity()
    {
        await using var service = await TestService.StartAsync("supervisor.websocket.max-connections = 1");
        using var api = new ApiClient(service);
        using var first = await WsPeer.ConnectAsync(service.WebSocketPort);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("active").GetInt64() == 1);
        using var second = await WsPeer.ConnectAsync(service.WebSocketPort);

        var notice = Assert.Single(await second.ReceiveUntilClosedAsync());
        Assert.StartsWith("rejected-capacity: ", notice.Data);
        Assert.Equal((WebSocketCloseStatus)1013, second.Socket.CloseStatus);
        await api.WaitForAsync("/api/stats", s => s.GetProperty("closedByReason").GetProperty("rejected-capacity").GetInt64() == 1);
        await first.SendFrameAsync(new Frame(FrameType.Heartbeat, 1, null, 3));
        Assert.Equal(3, (await first.ReceiveFrameAsync())!.Seq);
    }
}
