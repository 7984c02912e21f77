using System.Buffers.Binary;
using System.Text;
using Supervisor.Messages.Wire;

namespace Supervisor.Tests.Wire;

/// <summary>The optional <c>interval</c> of a heartbeat and its response (issue 15 point 3) in both codecs.</summary>
public sealed class NegotiatedIntervalCodecTests
{
    public static TheoryData<string> Codecs => new(FrameCodecs.Names);

    private static IFrameCodec Codec(string name) => FrameCodecs.TryGet(name, out var codec) ? codec : throw new ArgumentException(name);

    private static Frame RoundTrip(IFrameCodec codec, Frame frame)
    {
        var bytes = codec.EncodeToArray(frame);
        Assert.Equal(FrameScan.Complete, codec.Scan(bytes, 1024, out var bounds));
        Assert.True(codec.TryDecode(bytes.AsSpan(bounds.BodyStart, bounds.BodyLength), out var decoded, out var error), error);
        return decoded.ToFrame();
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public void An_interval_must_survive_encode_and_decode_with_and_without_seq_and_data(string name)
    {
        var codec = Codec(name);
        foreach (var frame in new[]
                 {
                     new Frame(FrameType.Heartbeat, 1, null, 3) { Interval = 5000 },
                     new Frame(FrameType.Heartbeat, 1) { Interval = 1 },
                     Frame.HeartbeatResponse(9, 4) with { Interval = int.MaxValue },
                     new Frame(FrameType.Data, 2, "x", 1) { Interval = 7 },
                 })
            Assert.Equal(frame, RoundTrip(codec, frame));
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public void A_frame_without_interval_must_encode_exactly_as_before_and_decode_without_one(string name)
    {
        var codec = Codec(name);
        var frame = new Frame(FrameType.Heartbeat, 1, null, 3);
        var expected = name == JsonLinesCodec.CodecName
            ? "{\"type\":0,\"timestamp\":1,\"seq\":3}\n"u8.ToArray()
            : [0, 0, 0, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3];
        Assert.Equal(expected, codec.EncodeToArray(frame));
        Assert.Null(RoundTrip(codec, frame).Interval);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public void The_allocation_free_encoder_must_write_the_interval_byte_for_byte_as_Encode(string name)
    {
        var codec = Codec(name);
        Span<byte> output = stackalloc byte[codec.MaxLengthWithoutData];
        foreach (var (seq, interval) in new (long?, int?)[] { (long.MinValue, int.MaxValue), (null, 1), (5, null), (long.MaxValue, 2000) })
        {
            Assert.True(codec.TryEncodeWithoutData(FrameType.HeartbeatResponse, long.MinValue, seq, interval, output, out var written));
            Assert.Equal(codec.EncodeToArray(Frame.HeartbeatResponse(long.MinValue, seq) with { Interval = interval }), output[..written].ToArray());
        }
    }

    [Fact]
    public void The_json_lines_example_of_the_issue_must_decode()
    {
        Assert.True(JsonLinesCodec.TryDecode("{\"type\":0,\"timestamp\":1,\"seq\":3,\"interval\":5000}"u8, out var frame, out var error), error);
        Assert.Equal(5000, frame.Interval);
        Assert.Equal(3, frame.Seq);
        Assert.True(JsonLinesCodec.TryDecode("{\"type\":0,\"interval\":null}"u8, out frame, out _));
        Assert.Null(frame.Interval);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("-5000")]
    [InlineData("2147483648")]
    [InlineData("99999999999999999999")]
    [InlineData("5000.5")]
    [InlineData("5e3")]
    [InlineData("\"5000\"")]
    [InlineData("true")]
    [InlineData("[5000]")]
    [InlineData("{}")]
    public void A_bad_json_interval_must_be_a_protocol_error_that_names_the_field(string value)
    {
        Assert.False(JsonLinesCodec.TryDecode(Encoding.UTF8.GetBytes($"{{\"type\":0,\"timestamp\":1,\"interval\":{value}}}"), out _, out var error));
        Assert.Equal("field 'interval' must be a positive integer of milliseconds (1 to 2147483647)", error);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void A_bad_binary_interval_must_be_a_protocol_error_that_names_the_field(int value)
    {
        var body = new byte[BinaryCodec.HeaderLength + 4];
        body[1] = BinaryCodec.FlagInterval;
        BinaryPrimitives.WriteInt32BigEndian(body.AsSpan(BinaryCodec.HeaderLength), value);
        Assert.False(BinaryCodec.Instance.TryDecode(body, out _, out var error));
        Assert.Equal($"field 'interval' is {value}: it must be a positive number of milliseconds", error);
    }

    [Fact]
    public void A_binary_interval_cut_short_must_be_a_protocol_error()
    {
        var body = new byte[BinaryCodec.HeaderLength + 8 + 2];
        body[1] = BinaryCodec.FlagInterval | BinaryCodec.FlagSeq;
        Assert.False(BinaryCodec.Instance.TryDecode(body, out _, out var error));
        Assert.Equal("flag 0x08 (interval) is set but the frame ends 2 bytes into the 4-byte interval", error);
    }

    [Theory]
    [MemberData(nameof(Codecs))]
    public void Encoding_an_interval_the_decoder_refuses_must_throw(string name)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Codec(name).EncodeToArray(new Frame(FrameType.Heartbeat, 1) { Interval = 0 }));
    }
}
