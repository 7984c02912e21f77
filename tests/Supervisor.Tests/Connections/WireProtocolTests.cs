using System.Text;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;

namespace Supervisor.Tests.Connections;

/// <summary>
/// DESIGN §2 over real loopback sockets against the real service. The theories run over both codecs: the
/// default listener speaks json-lines, the listener "bin" binary, both with max-frame-length 1 KiB.
/// </summary>
public sealed class WireProtocolTests : IAsyncLifetime
{
    private TestService _service = null!;

    public async Task InitializeAsync() => _service = await TestService.StartAsync("""
        supervisor.tcp.max-frame-length = 1KiB
        supervisor.listeners.bin { port = 0, codec = binary }
        """);

    public async Task DisposeAsync() => await _service.DisposeAsync();

    public static TheoryData<string> Codecs => new(FrameCodecs.Names);

    private Task<TestPeer> ConnectAsync(string codec) =>
        TestPeer.ConnectAsync(codec == BinaryCodec.CodecName ? _service.PortOf("bin") : _service.Port, codec);

    [Theory]
    [MemberData(nameof(Codecs))]
    public async Task Heartbeat_must_be_answered_with_a_response_echoing_its_seq(string codec)
    {
        using var peer = await ConnectAsync(codec);
        await peer.SendFrameAsync(new Frame(FrameType.Heartbeat, 1700000000, null, 42));
        var response = await peer.ReceiveFrameAsync();
        Assert.NotNull(response);
        Assert.Equal(FrameType.HeartbeatResponse, response.Type);
        Assert.Equal(42, response.Seq);
        Assert.InRange(response.Timestamp, DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 5, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public async Task Heartbeat_without_seq_must_be_answered_without_seq(string codec)
    {
        using var peer = await ConnectAsync(codec);
        await peer.SendFrameAsync(new Frame(FrameType.Heartbeat, 1));
        var response = await peer.ReceiveFrameAsync();
        Assert.Equal(FrameType.HeartbeatResponse, response!.Type);
        Assert.Null(response.Seq);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public async Task Data_frame_must_be_echoed_by_the_default_handler(string codec)
    {
        using var peer = await ConnectAsync(codec);
        await peer.SendFrameAsync(new Frame(FrameType.Data, 1, "hello 世界 😀"));
        var echo = await peer.ReceiveFrameAsync();
        Assert.Equal(FrameType.Data, echo!.Type);
        Assert.Equal("hello 世界 😀", echo.Data);
    }

    [Fact]
    public async Task Non_ascii_data_must_be_echoed_as_utf8_not_escaped()
    {
        using var peer = await TestPeer.ConnectAsync(_service.Port);
        await peer.SendAsync("{\"type\":2,\"timestamp\":1,\"data\":\"\\u00e9 😀\"}\n");
        var echo = new byte[256];
        var read = await peer.Socket.ReceiveAsync(echo, System.Net.Sockets.SocketFlags.None);
        var line = Encoding.UTF8.GetString(echo, 0, read);
        Assert.Matches("^\\{\"type\":2,\"timestamp\":\\d+,\"data\":\"é 😀\"\\}\n$", line);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public async Task Data_holding_a_json_object_must_be_echoed_as_the_same_json_value(string codec)
    {
        using var peer = await ConnectAsync(codec);
        if (codec == JsonLinesCodec.CodecName) await peer.SendAsync("{\"type\":2,\"timestamp\":1,\"data\":{\"x\":1, \"é\":[true,null]}}\n");
        else await peer.SendFrameAsync(Frame.JsonData(1, "{\"x\":1, \"é\":[true,null]}"));
        var echo = await peer.ReceiveFrameAsync();
        Assert.Equal(FrameType.Data, echo!.Type);
        Assert.True(echo.DataIsJson);
        // The value as it was sent, in both codecs.
        Assert.Equal("{\"x\":1, \"é\":[true,null]}", echo.Data);
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

    public static TheoryData<string, string> BinaryProtocolErrors => new()
    {
        { "0000000A07000000000000000001", "unknown frame type 7" },
        { "00000003000102", "shorter than the 10-byte header" },
        { "0000000A00100000000000000001", "flags 0x10 have unknown bits" },
        { "0000000C02020000000000000001C328", "'data' is not valid UTF-8" },
        { "00000000", "frame is empty" },
    };

    [Theory]
    [MemberData(nameof(BinaryProtocolErrors))]
    public async Task Malformed_binary_frame_must_get_a_binary_error_notice_then_close_with_protocol_error(string hex, string expectedError)
    {
        using var peer = await ConnectAsync(BinaryCodec.CodecName);
        await peer.SendAsync(Convert.FromHexString(hex));
        var notice = Assert.Single(await peer.ReceiveUntilClosedAsync());
        Assert.Equal(FrameType.ErrorNotice, notice.Type);
        Assert.StartsWith("protocol-error: ", notice.Data);
        Assert.Contains(expectedError, notice.Data);
        await _service.WaitForStatsAsync(s => s.Closed(CloseReason.ProtocolError) == 1 && s.Active == 0);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public async Task Frame_over_max_frame_length_must_close_with_frame_too_large(string codec)
    {
        using var peer = await ConnectAsync(codec);
        await peer.SendFrameAsync(new Frame(FrameType.Data, 1, new string('x', 1100)));
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

    [Theory]
    [MemberData(nameof(Codecs))]
    public async Task Frame_of_exactly_max_frame_length_must_be_accepted(string codec)
    {
        using var peer = await ConnectAsync(codec);
        // A frame's body (what max-frame-length bounds) is the frame as one message: without newline or length prefix.
        var empty = new Frame(FrameType.Data, 1, "");
        var data = new string('y', 1024 - peer.Codec.EncodeMessageToArray(empty).Length);
        await peer.SendFrameAsync(empty with { Data = data });
        Assert.Equal(data, (await peer.ReceiveFrameAsync())!.Data);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public async Task Frame_past_the_limit_must_be_refused_before_its_end_arrives(string codec)
    {
        using var peer = await ConnectAsync(codec);
        // json-lines: 2 KiB, never a newline: the server must not wait for one. binary: a length prefix of
        // 2 KiB and nothing after it: the prefix alone is enough.
        await peer.SendAsync(codec == JsonLinesCodec.CodecName
            ? Encoding.UTF8.GetBytes("{\"type\":2,\"data\":\"" + new string('z', 2048))
            : [0, 0, 8, 0]);
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
