using System.Buffers.Binary;
using System.Text;
using Supervisor.Messages.Wire;

namespace Supervisor.Tests.Wire;

/// <summary>What every codec must do (the same cases over json-lines and binary), then what each one's format says.</summary>
public sealed class FrameCodecTests
{
    public static TheoryData<string> Codecs => new(FrameCodecs.Names);

    private static IFrameCodec Codec(string name) => FrameCodecs.TryGet(name, out var codec) ? codec : throw new ArgumentException(name);

    private static readonly Frame[] Frames =
    [
        new(FrameType.Heartbeat, 1700000000, null, 1),
        new(FrameType.Heartbeat, 0),
        Frame.HeartbeatResponse(long.MaxValue, long.MinValue),
        Frame.HeartbeatResponse(long.MinValue, long.MaxValue),
        new(FrameType.Data, 2, "héllo 世界 😀 \u2028 \t\"quoted\"\n \\ \u0001 \u0085 \u00a0 \uFEFF"),
        new(FrameType.Data, -1, ""),
        new(FrameType.Data, 7, "{\"x\":[1,\"é\",{\"y\":null}]}", 9) { DataIsJson = true },
        new(FrameType.Data, 7, "3.25") { DataIsJson = true },
        Frame.ErrorNotice(3, "protocol-error: x"),
        new(FrameType.Heartbeat, 1, null, 3) { Interval = 5000 },
        new(FrameType.Heartbeat, 1) { Interval = int.MaxValue },
        Frame.HeartbeatResponse(1, 3) with { Interval = 2000 },
    ];

    /// <summary>Decodes every frame in <paramref name="stream"/> fed in the given pieces; the outcome and what was left pending.</summary>
    private static (List<Frame> Frames, FeedResult Result, string? Error, int Pending) Feed(IFrameCodec codec, byte[] stream, IEnumerable<int> cuts, int maxFrameLength = 64 * 1024)
    {
        using var reader = new FrameReader(codec, maxFrameLength);
        var frames = new List<Frame>();
        string? error = null;
        var result = FeedResult.Consumed;
        var offset = 0;
        foreach (var cut in cuts.Append(stream.Length))
        {
            var end = Math.Clamp(cut, offset, stream.Length);
            result = reader.Feed(stream.AsSpan(offset, end - offset), (body, _) =>
            {
                if (!codec.TryDecode(body, out var frame, out error)) return false;
                frames.Add(frame.ToFrame());
                return true;
            });
            offset = end;
            if (result != FeedResult.Consumed) break;
        }
        return (frames, result, error, reader.PendingBytes);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public void Every_frame_must_decode_to_itself_from_a_stream_split_at_every_byte(string name)
    {
        var codec = Codec(name);
        var stream = Frames.SelectMany(codec.EncodeToArray).ToArray();
        for (var cut = 0; cut <= stream.Length; cut++)
        {
            var (frames, result, error, pending) = Feed(codec, stream, [cut]);
            Assert.True(result == FeedResult.Consumed, $"cut at {cut}: {result} {error}");
            Assert.Equal(0, pending);
            Assert.Equal(Frames, frames);
        }
        Assert.Equal(Frames, Feed(codec, stream, Enumerable.Range(1, stream.Length)).Frames);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public void A_frame_must_survive_a_message_transport_round_trip(string name)
    {
        var codec = Codec(name);
        foreach (var frame in Frames)
        {
            var message = codec.EncodeMessageToArray(frame);
            Assert.True(codec.TryDecodeMessage(message, 64 * 1024, out var decoded, out var error, out _), error);
            Assert.Equal(frame, decoded.ToFrame());
        }
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public void Non_ascii_text_must_round_trip_as_utf8(string name)
    {
        var codec = Codec(name);
        var text = "é 世界 😀 🫨 \u00a0";
        var bytes = codec.EncodeToArray(new Frame(FrameType.Data, 1, text));
        Assert.True(bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0, Convert.ToHexString(bytes));
        Assert.DoesNotContain("\\u", Encoding.UTF8.GetString(bytes));
        Assert.Equal(text, Feed(codec, bytes, []).Frames.Single().Data);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public void A_lone_surrogate_an_application_sends_must_go_out_as_the_replacement_character(string name)
    {
        var codec = Codec(name);
        var bytes = codec.EncodeToArray(new Frame(FrameType.Data, 1, "a\ud800b\udc00"));
        Assert.Equal("a\uFFFDb\uFFFD", Feed(codec, bytes, []).Frames.Single().Data);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public void The_stack_encoding_must_write_the_same_bytes_as_the_general_one(string name)
    {
        var codec = Codec(name);
        Span<byte> output = stackalloc byte[codec.MaxLengthWithoutData];
        foreach (var (type, timestamp, seq) in new (FrameType, long, long?)[]
                 { (FrameType.HeartbeatResponse, 1795618897, 12345), (FrameType.HeartbeatResponse, 0, null), (FrameType.Heartbeat, long.MinValue, long.MaxValue), (FrameType.HeartbeatResponse, long.MaxValue, long.MinValue) })
        {
            Assert.True(codec.TryEncodeWithoutData(type, timestamp, seq, output, out var written));
            Assert.Equal(codec.EncodeToArray(new Frame(type, timestamp, null, seq)), output[..written].ToArray());
            Assert.False(codec.TryEncodeWithoutData(type, timestamp, seq, new byte[codec.MaxLengthWithoutData - 1], out _));
        }
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public void A_frame_of_exactly_the_limit_must_pass_and_one_byte_more_must_be_too_large(string name)
    {
        var codec = Codec(name);
        // A message is the frame's body, what max-frame-length bounds: the body with empty data, plus one byte per 'x'.
        var frame = new Frame(FrameType.Data, 1, "");
        var overhead = codec.EncodeMessageToArray(frame).Length;
        const int limit = 200;
        var fits = frame with { Data = new string('x', limit - overhead) };
        var body = Feed(codec, codec.EncodeToArray(fits), [], limit);
        Assert.Equal(FeedResult.Consumed, body.Result);
        Assert.Equal(fits, body.Frames.Single());
        var tooLong = frame with { Data = new string('x', limit - overhead + 1) };
        Assert.Equal(FeedResult.FrameTooLarge, Feed(codec, codec.EncodeToArray(tooLong), [], limit).Result);
        Assert.Equal(FeedResult.FrameTooLarge, Feed(codec, codec.EncodeToArray(tooLong), Enumerable.Range(1, 300), limit).Result);
    }

    // ---- json-lines ----

    [Fact]
    public void Json_lines_must_write_text_as_utf8_and_escape_only_what_json_or_line_readers_need()
    {
        var line = JsonLinesCodec.EncodeToString(new Frame(FrameType.Data, 1, "é😀\"\\\n\r\t\u0001\u007f\u0085\u2028\u2029<>&'"));
        Assert.Equal("{\"type\":2,\"timestamp\":1,\"data\":\"é😀\\\"\\\\\\n\\r\\t\\u0001\\u007F\\u0085\\u2028\\u2029<>&'\"}\n", line);
    }

    [Fact]
    public void Json_lines_must_keep_a_data_object_as_its_json_value_and_write_it_back_the_same()
    {
        var decoded = JsonLinesCodec.Decode("{\"type\":2,\"timestamp\":5,\"data\":{\"x\":1}}"u8).Frame;
        Assert.Equal(new Frame(FrameType.Data, 5, "{\"x\":1}") { DataIsJson = true }, decoded);
        Assert.Equal("{\"type\":2,\"timestamp\":5,\"data\":{\"x\":1}}\n", JsonLinesCodec.EncodeToString(decoded!));

        // Written back exactly as it came, spaces and escapes included, so a decoded frame encodes back to itself.
        var spaced = JsonLinesCodec.Decode("{\"type\":2,\"data\": [ 1 , {\"é\" :\"\\u00e9\"} ] }"u8).Frame!;
        Assert.Equal("[ 1 , {\"é\" :\"\\u00e9\"} ]", spaced.Data);
        Assert.Equal("{\"type\":2,\"timestamp\":0,\"data\":[ 1 , {\"é\" :\"\\u00e9\"} ]}\n", JsonLinesCodec.EncodeToString(spaced));
    }

    [Fact]
    public void A_json_data_value_with_escapes_must_survive_encode_and_decode()
    {
        // Found by the codec fuzz (case seed 295594093): re-written, "\u7c12" came back as the character and "\u001f"
        // as "\u001F", so the frame decoded from the echo was not the frame sent.
        var line = "{\"data\":{\"\\\"\\u001f\\u0000'\\u7c12\":{\"type\":1e308,\"type\":1.5E-400},\"type\":\"\\u5cdd\"},\"type\":0,\"seq\":-7066821942996965684}"u8;
        var decoded = JsonLinesCodec.Decode(line).Frame!;
        Assert.True(decoded.DataIsJson);
        var again = JsonLinesCodec.Decode(System.Text.Encoding.UTF8.GetBytes(JsonLinesCodec.EncodeToString(decoded).TrimEnd('\n'))).Frame;
        Assert.Equal(decoded, again);
    }

    [Fact]
    public void Json_data_from_an_application_must_stay_on_one_line_and_invalid_json_must_be_refused()
    {
        var frame = Frame.JsonData(1, "{\n  \"a\": \"x\\ny\"\n}");
        Assert.Equal("{\"type\":2,\"timestamp\":1,\"data\":{\"a\":\"x\\ny\"}}\n", JsonLinesCodec.EncodeToString(frame));
        Assert.Throws<ArgumentException>(() => Frame.JsonData(1, "{\"a\":"));
        Assert.Throws<ArgumentException>(() => Frame.JsonData(1, "1 2"));
        Assert.Throws<ArgumentException>(() => JsonLinesCodec.Encode(new Frame(FrameType.Data, 1, "nope") { DataIsJson = true }));
        Assert.Throws<ArgumentException>(() => BinaryCodec.Instance.EncodeToArray(new Frame(FrameType.Data, 1, "nope") { DataIsJson = true }));
    }

    // ---- binary ----

    [Fact]
    public void Binary_must_lay_out_a_heartbeat_as_documented()
    {
        var bytes = BinaryCodec.Instance.EncodeToArray(new Frame(FrameType.Heartbeat, 0x0102030405060708, null, -2));
        Assert.Equal("00000012" + "00" + "01" + "0102030405060708" + "FFFFFFFFFFFFFFFE", Convert.ToHexString(bytes));
        var data = BinaryCodec.Instance.EncodeToArray(new Frame(FrameType.Data, 1, "é"));
        Assert.Equal("0000000C" + "02" + "02" + "0000000000000001" + "C3A9", Convert.ToHexString(data));
        var json = BinaryCodec.Instance.EncodeToArray(new Frame(FrameType.Data, 1, "[]") { DataIsJson = true });
        Assert.Equal("0000000C" + "02" + "06" + "0000000000000001" + "5B5D", Convert.ToHexString(json));
    }

    [Fact]
    public void Binary_must_refuse_a_length_past_the_limit_from_the_prefix_alone()
    {
        foreach (var length in new uint[] { 201, 0x7FFFFFFF, 0x80000000, uint.MaxValue })
        {
            var prefix = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(prefix, length);
            Assert.Equal(FeedResult.FrameTooLarge, Feed(BinaryCodec.Instance, prefix, [], 200).Result);
            Assert.Equal(FeedResult.FrameTooLarge, Feed(BinaryCodec.Instance, prefix, [1, 2, 3], 200).Result);
        }
        var atLimit = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(atLimit, 200);
        var held = Feed(BinaryCodec.Instance, atLimit, [], 200);
        Assert.Equal((FeedResult.Consumed, 4), (held.Result, held.Pending));
    }

    [Theory]
    [InlineData("00000000", "frame is empty")]
    [InlineData("0000000300010203", "shorter than the 10-byte header")]
    [InlineData("0000000A04000000000000000001", "unknown frame type 4")]
    [InlineData("0000000AFF000000000000000001", "unknown frame type 255")]
    [InlineData("0000000A00100000000000000001", "flags 0x10 have unknown bits")]
    [InlineData("0000000A00080000000000000001", "flag 0x08 (interval) is set but the frame ends 0 bytes into")]
    [InlineData("0000000C000100000000000000010203", "ends 2 bytes into the 8-byte seq")]
    [InlineData("0000000B0000000000000000000100", "1 bytes follow the fields of a frame without data")]
    [InlineData("0000000C02020000000000000001C328", "'data' is not valid UTF-8")]
    [InlineData("0000000D02020000000000000001EDA080", "'data' is not valid UTF-8")]
    [InlineData("0000000A02040000000000000001", "flag 0x04 (data is JSON) is set without flag 0x02")]
    [InlineData("0000000D020600000000000000017B2261", "flagged as JSON (0x04) but is not one JSON value")]
    public void Binary_must_refuse_a_malformed_frame_with_what_is_wrong(string hex, string error)
    {
        var stream = Convert.FromHexString(hex);
        var (frames, result, decodeError, _) = Feed(BinaryCodec.Instance, stream, []);
        if (result == FeedResult.Consumed)
        {
            // The length says more than the test gives: the frame is still unfinished (the deadlines end it).
            Assert.Empty(frames);
            Assert.Fail($"frame {hex} was not complete");
        }
        Assert.Equal(FeedResult.Stopped, result);
        Assert.Empty(frames);
        Assert.Contains(error, decodeError);
    }
}
