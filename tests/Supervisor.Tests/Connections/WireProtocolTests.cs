using System.Text;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;

namespace Supervisor.Tests.Connections;

/// <summary>DESIGN §2 over real loopback sockets against the real service.</summary>
public sealed class WireProtocolTests : IAsyncLifetime
{
    private TestService _service = null!;

    public async Task InitializeAsync() => _service = await TestService.StartAsync("supervisor.tcp.max-frame-length = 1KiB");

    public async Task DisposeAsync() => await _service.DisposeAsync();

    [Fact]
    public async Task Heartbeat_must_be_answered_with_a_response_echoing_its_seq()
    {
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        await peer.SendAsync("{\"type\":0,\"timestamp\":1700000000,\"seq\":42}\n");
        var response = await peer.ReceiveFrameAsync();
        Assert.NotNull(response);
        Assert.Equal(FrameType.HeartbeatResponse, response.Type);
        Assert.Equal(42, response.Seq);
        Assert.InRange(response.Timestamp, DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 5, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);
    }

    [Fact]
    public async Task Heartbeat_without_seq_must_be_answered_without_seq()
    {
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        await peer.SendAsync("{\"type\":0,\"timestamp\":1}\n");
        var response = await peer.ReceiveFrameAsync();
        Assert.Equal(FrameType.HeartbeatResponse, response!.Type);
        Assert.Null(response.Seq);
    }

    [Fact]
    public async Task Data_frame_must_be_echoed_by_the_default_handler()
    {
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        await peer.SendAsync("{\"type\":2,\"timestamp\":1,\"data\":\"hello 世界\"}\n");
        var echo = await peer.ReceiveFrameAsync();
        Assert.Equal(FrameType.Data, echo!.Type);
        Assert.Equal("hello 世界", echo.Data);
    }

    [Fact]
    public async Task Crlf_endings_and_unknown_fields_must_be_accepted()
    {
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        await peer.SendAsync("{\"type\":0,\"extra\":{\"a\":[1,2]},\"timestamp\":1,\"seq\":3,\"note\":\"x\"}\r\n");
        var response = await peer.ReceiveFrameAsync();
        Assert.Equal(FrameType.HeartbeatResponse, response!.Type);
        Assert.Equal(3, response.Seq);
    }

    [Fact]
    public async Task Frames_split_across_many_writes_must_be_reassembled()
    {
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        foreach (var piece in new[] { "{\"ty", "pe\":0,\"times", "tamp\":1,\"seq\":9}", "\n{\"type\":0,\"seq\":10}\n" })
        {
            await peer.SendAsync(piece);
            await Task.Delay(20);
        }
        Assert.Equal(9, (await peer.ReceiveFrameAsync())!.Seq);
        Assert.Equal(10, (await peer.ReceiveFrameAsync())!.Seq);
    }

    public static TheoryData<string, string> ProtocolErrors => new()
    {
        { "not json at all\n", "not valid JSON" },
        { "{\"type\":7,\"timestamp\":1}\n", "unknown frame type 7" },
        { "{\"type\":\"0\"}\n", "'type' must be an integer" },
        { "{\"timestamp\":1}\n", "'type' is missing" },
        { "[1,2,3]\n", "not a JSON object" },
        { "{\"type\":0} {\"type\":0}\n", "not valid JSON" },
        { "{\"type\":1.5}\n", "'type' must be an integer" },
    };

    [Theory]
    [MemberData(nameof(ProtocolErrors))]
    public async Task Malformed_frame_must_get_an_error_notice_then_close_with_protocol_error(string line, string expectedError)
    {
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        await peer.SendAsync(line);
        var frames = await peer.ReceiveUntilClosedAsync();
        var notice = Assert.Single(frames);
        Assert.Equal(FrameType.ErrorNotice, notice.Type);
        Assert.StartsWith("protocol-error: ", notice.Data);
        Assert.Contains(expectedError, notice.Data);
        await _service.WaitForStatsAsync(s => s.Closed(CloseReason.ProtocolError) == 1 && s.Active == 0);
    }

    [Fact]
    public async Task Invalid_utf8_must_get_an_error_notice_then_close_with_protocol_error()
    {
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        var bytes = Encoding.UTF8.GetBytes("{\"type\":2,\"data\":\"xx\"}\n");
        bytes[17] = 0xC3; // a lead byte followed by 'x' is not UTF-8
        await peer.SendAsync(bytes);
        var notice = Assert.Single(await peer.ReceiveUntilClosedAsync());
        Assert.Equal("protocol-error: frame is not valid UTF-8", notice.Data);
        await _service.WaitForStatsAsync(s => s.Closed(CloseReason.ProtocolError) == 1);
    }

    [Fact]
    public async Task Line_over_max_frame_length_must_close_with_frame_too_large()
    {
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        await peer.SendAsync("{\"type\":2,\"data\":\"" + new string('x', 1100) + "\"}\n");
        var notice = Assert.Single(await peer.ReceiveUntilClosedAsync());
        Assert.Equal(FrameType.ErrorNotice, notice.Type);
        Assert.StartsWith("frame-too-large: ", notice.Data);
        await _service.WaitForStatsAsync(s => s.Closed(CloseReason.FrameTooLarge) == 1);
    }

    [Fact]
    public async Task Line_at_exactly_max_frame_length_must_be_accepted()
    {
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        var prefix = "{\"type\":2,\"data\":\"";
        var data = new string('y', 1024 - prefix.Length - 2);
        await peer.SendAsync(prefix + data + "\"}\r\n");
        Assert.Equal(data, (await peer.ReceiveFrameAsync())!.Data);
    }

    [Fact]
    public async Task Endless_line_without_newline_must_be_refused_before_any_newline_arrives()
    {
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        // 2 KiB, never a newline: the server must not wait for one.
        await peer.SendAsync("{\"type\":2,\"data\":\"" + new string('z', 2048));
        var notice = Assert.Single(await peer.ReceiveUntilClosedAsync());
        Assert.StartsWith("frame-too-large: ", notice.Data);
        await _service.WaitForStatsAsync(s => s.Closed(CloseReason.FrameTooLarge) == 1);
    }

    [Fact]
    public async Task Streaming_megabytes_without_newline_must_not_grow_memory()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        var before = GC.GetTotalMemory(forceFullCollection: true);
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        var chunk = new byte[64 * 1024];
        Array.Fill(chunk, (byte)'a');
        long sent = 0;
        try
        {
            for (var i = 0; i < 256; i++) // up to 16 MiB
            {
                await peer.Socket.SendAsync(chunk, System.Net.Sockets.SocketFlags.None);
                sent += chunk.Length;
            }
        }
        catch (System.Net.Sockets.SocketException)
        {
            // The server refused the line and, after its linger, dropped the socket: expected.
        }
        await _service.WaitForStatsAsync(s => s.Closed(CloseReason.FrameTooLarge) == 1);
        var after = GC.GetTotalMemory(forceFullCollection: true);
        Assert.True(after - before < 4 * 1024 * 1024, $"managed heap grew {after - before} bytes after the peer streamed {sent} bytes");
    }

    [Fact]
    public async Task Other_connections_must_be_untouched_by_one_peers_bad_input()
    {
        using var good1 = await TestPeer.ConnectAsync(_service.Port);
        using var bad = await TestPeer.ConnectAsync(_service.Port);
        using var good2 = await TestPeer.ConnectAsync(_service.Port);
        await good1.SendHeartbeatAsync(1);
        await good2.SendHeartbeatAsync(1);
        Assert.Equal(1, (await good1.ReceiveFrameAsync())!.Seq);
        Assert.Equal(1, (await good2.ReceiveFrameAsync())!.Seq);

        await bad.SendAsync("garbage\n");
        Assert.Single(await bad.ReceiveUntilClosedAsync());

        await good1.SendHeartbeatAsync(2);
        await good2.SendAsync("{\"type\":2,\"data\":\"still here\"}\n");
        Assert.Equal(2, (await good1.ReceiveFrameAsync())!.Seq);
        Assert.Equal("still here", (await good2.ReceiveFrameAsync())!.Data);
        var stats = await _service.WaitForStatsAsync(s => s.Closed(CloseReason.ProtocolError) == 1);
        Assert.Equal(2, stats.Active);
    }

    [Fact]
    public async Task Peer_closing_must_be_recorded_as_peer_closed_and_rst_as_peer_reset()
    {
        var closing = await TestPeer.ConnectAsync(_service.Port);
        var resetting = await TestPeer.ConnectAsync(_service.Port);
        await _service.WaitForStatsAsync(s => s.Active == 2);
        closing.Socket.Shutdown(System.Net.Sockets.SocketShutdown.Both);
        closing.Dispose();
        resetting.Abort();
        var stats = await _service.WaitForStatsAsync(s => s.Active == 0);
        Assert.Equal(1, stats.Closed(CloseReason.PeerClosed));
        Assert.Equal(1, stats.Closed(CloseReason.PeerReset));
    }
}
