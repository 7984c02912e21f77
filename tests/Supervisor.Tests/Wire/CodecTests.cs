using System.Text;
using Supervisor.Messages.Wire;

namespace Supervisor.Tests.Wire;

public sealed class CodecTests
{
    [Fact]
    public void Encoded_frames_must_decode_to_themselves()
    {
        var frames = new[]
        {
            new Frame(FrameType.Heartbeat, 1700000000, null, 5),
            Frame.HeartbeatResponse(1, null),
            new Frame(FrameType.Data, 2, "line\nbreak \"quoted\" 世界", null),
            Frame.ErrorNotice(3, "protocol-error: x"),
        };
        foreach (var frame in frames)
        {
            var bytes = JsonLinesCodec.Encode(frame);
            Assert.Equal((byte)'\n', bytes[^1]);
            Assert.Equal(1, bytes.Count(b => b == (byte)'\n'));
            Assert.Equal(frame, JsonLinesCodec.Decode(bytes.AsSpan(0, bytes.Length - 1)).Frame);
        }
    }

    [Fact]
    public void Source_document_heartbeat_must_decode()
    {
        var decoded = JsonLinesCodec.Decode("{\"type\":0,\"timestamp\":1700000000,\"data\":\"\"}"u8);
        Assert.Equal(new Frame(FrameType.Heartbeat, 1700000000, "", null), decoded.Frame);
    }

    [Theory]
    [InlineData("", "frame is empty")]
    [InlineData("{", "not valid JSON")]
    [InlineData("\"text\"", "not a JSON object")]
    [InlineData("{\"type\":4}", "unknown frame type 4")]
    [InlineData("{\"type\":-1}", "unknown frame type -1")]
    [InlineData("{\"type\":0,\"seq\":\"1\"}", "'seq' must be an int64")]
    [InlineData("{\"type\":0,\"timestamp\":1e3}", "'timestamp' must be an int64")]
    [InlineData("{\"type\":2,\"timestamp\":1,\"data\":\"\\ud800\"}", "'data' is not valid text")]
    [InlineData("{\"type\":2,\"data\":\"a\\udc00b\"}", "'data' is not valid text")]
    [InlineData("{\"type\":2,\"data\":\"\\ud800\\ud800\"}", "'data' is not valid text")]
    [InlineData("{\"\\ud800\":0,\"type\":0,\"seq\":1}", "field name that is not valid text")]
    [InlineData("{\"\\udc00\":", "field name that is not valid text")]
    public void Bad_lines_must_be_refused_with_a_reason(string line, string error)
    {
        var decoded = JsonLinesCodec.Decode(Encoding.UTF8.GetBytes(line));
        Assert.Null(decoded.Frame);
        Assert.Contains(error, decoded.Error);
    }

    [Fact]
    public void Framer_must_split_lines_and_strip_crlf()
    {
        using var framer = new FrameReader(JsonLinesCodec.Instance, 100);
        var lines = new List<string>();
        var result = framer.Feed("a\r\nbb\nc"u8, (line, _) => { lines.Add(Encoding.UTF8.GetString(line)); return true; });
        Assert.Equal(FeedResult.Consumed, result);
        Assert.Equal(["a", "bb"], lines);
        Assert.Equal(1, framer.PendingBytes);
        framer.Feed("cc\n"u8, (line, _) => { lines.Add(Encoding.UTF8.GetString(line)); return true; });
        Assert.Equal(["a", "bb", "ccc"], lines);
        Assert.Equal(0, framer.PendingBytes);
    }

    [Fact]
    public void Framer_must_refuse_an_endless_line_as_soon_as_it_passes_the_limit_and_hold_no_more()
    {
        using var framer = new FrameReader(JsonLinesCodec.Instance, 64 * 1024);
        var chunk = new byte[4096];
        Array.Fill(chunk, (byte)'x');
        var fed = 0;
        FeedResult result;
        do
        {
            result = framer.Feed(chunk, (_, _) => true);
            fed += chunk.Length;
            Assert.True(framer.PendingBytes <= 64 * 1024 + 1);
        } while (result == FeedResult.Consumed && fed < 64 * 1024 * 1024);
        Assert.Equal(FeedResult.FrameTooLarge, result);
        Assert.Equal(68 * 1024, fed); // refused in the chunk that crossed 64 KiB, not at a newline
        Assert.Equal(0, framer.PendingBytes);
    }

    [Fact]
    public void Framer_must_tell_its_buffer_observer_each_rent_and_return_by_delegate_or_interface_and_feed_a_sink_as_a_handler()
    {
        var byDelegate = new List<int>();
        var byInterface = new Observer();
        using var withDelegate = new FrameReader(JsonLinesCodec.Instance, 100, byDelegate.Add);
        using var withInterface = new FrameReader(JsonLinesCodec.Instance, 100, byInterface);
        var sink = new Sink();
        foreach (var framer in new[] { withDelegate, withInterface })
        {
            Assert.Equal(FeedResult.Consumed, framer.Feed("{\"type\":0,"u8, sink));   // unfinished: a buffer is rented
            Assert.Equal(FeedResult.Consumed, framer.Feed("\"ts\":1}\nx\n"u8, sink)); // done: returned; "x" whole in the chunk
        }
        Assert.Equal(["{\"type\":0,\"ts\":1}", "x", "{\"type\":0,\"ts\":1}", "x"], sink.Lines);
        foreach (var changes in new[] { byDelegate, byInterface.Changes })
        {
            Assert.Equal(2, changes.Count);
            Assert.True(changes[0] > 0);
            Assert.Equal(0, changes.Sum());
        }
    }

    private sealed class Observer : IFrameBufferObserver
    {
        public List<int> Changes { get; } = [];
        public void BufferChanged(int bytes) => Changes.Add(bytes);
    }

    private sealed class Sink : IFrameSink
    {
        public List<string> Lines { get; } = [];
        public bool OnFrame(ReadOnlySpan<byte> body, int wireLength)
        {
            Lines.Add(Encoding.UTF8.GetString(body));
            return true;
        }
    }

    [Fact]
    public void Framer_must_accept_a_line_of_exactly_the_limit_with_crlf()
    {
        using var framer = new FrameReader(JsonLinesCodec.Instance, 10);
        var seen = 0;
        Assert.Equal(FeedResult.Consumed, framer.Feed("0123456789\r\n"u8, (line, _) => { seen = line.Length; return true; }));
        Assert.Equal(10, seen);
        Assert.Equal(FeedResult.FrameTooLarge, framer.Feed("0123456789A\n"u8, (_, _) => true));
    }

    [Theory]
    [InlineData(FrameType.HeartbeatResponse, 1795618897L, 12345L)]
    [InlineData(FrameType.HeartbeatResponse, 0L, null)]
    [InlineData(FrameType.Heartbeat, long.MinValue, long.MaxValue)]
    [InlineData(FrameType.HeartbeatResponse, long.MaxValue, long.MinValue)]
    public void Stack_encoding_must_write_the_same_bytes_as_the_json_writer(FrameType type, long timestamp, long? seq)
    {
        Span<byte> line = stackalloc byte[JsonLinesCodec.MaxLengthWithoutData];
        Assert.True(JsonLinesCodec.TryEncodeWithoutData(type, timestamp, seq, line, out var written));
        Assert.Equal(JsonLinesCodec.Encode(new Frame(type, timestamp, null, seq)), line[..written].ToArray());
        Assert.False(JsonLinesCodec.TryEncodeWithoutData(type, timestamp, seq, new byte[JsonLinesCodec.MaxLengthWithoutData - 1], out _));
    }

    [Fact]
    public void Value_decoding_must_agree_with_record_decoding()
    {
        foreach (var line in new[] { "{\"type\":0,\"timestamp\":5,\"seq\":7}", "{\"type\":2,\"data\":\"x\"}", "{\"type\":9}", "[]", "" })
        {
            var bytes = Encoding.UTF8.GetBytes(line);
            var record = JsonLinesCodec.Decode(bytes);
            var ok = JsonLinesCodec.TryDecode(bytes, out var value, out var error);
            Assert.Equal(record.Frame is not null, ok);
            Assert.Equal(record.Error, error);
            if (ok) Assert.Equal(record.Frame, value.ToFrame());
        }
    }
}
