using System.Buffers;
using BenchmarkDotNet.Attributes;
using Supervisor.Messages.Wire;

namespace Microbench;

/// <summary>The json-lines and binary codecs and the frame reader, one heartbeat per operation.</summary>
public class CodecBenchmarks
{
    internal static readonly byte[] HeartbeatLine = "{\"type\":0,\"timestamp\":1700000000,\"seq\":12345}"u8.ToArray();
    internal static readonly byte[] HeartbeatChunk = "{\"type\":0,\"timestamp\":1700000000,\"seq\":12345}\n"u8.ToArray();

    internal static readonly byte[] BinaryHeartbeatChunk = BinaryCodec.Instance.EncodeToArray(new Frame(FrameType.Heartbeat, 1700000000, null, 12345));

    private readonly FrameReader _framer = new(JsonLinesCodec.Instance, 64 * 1024);
    private readonly FrameReader _binaryFramer = new(BinaryCodec.Instance, 64 * 1024);
    private readonly FrameHandler _countFrame = (_, _) => true;
    private readonly IFrameCodec _json = JsonLinesCodec.Instance;
    private readonly IFrameCodec _binary = BinaryCodec.Instance;
    private readonly Frame _response = Frame.HeartbeatResponse(1795618897, 12345);
    private readonly ArrayBufferWriter<byte> _output = new(256);

    [Benchmark(Description = "decode a heartbeat line (Frame)")]
    public Frame? DecodeHeartbeat() => JsonLinesCodec.Decode(HeartbeatLine).Frame;

    [Benchmark(Description = "decode a heartbeat line (value)")]
    public long DecodeHeartbeatValue() => JsonLinesCodec.TryDecode(HeartbeatLine, out var frame, out _) ? frame.Timestamp : -1;

    [Benchmark(Description = "framer: feed one heartbeat chunk")]
    public FeedResult FramerFeed() => _framer.Feed(HeartbeatChunk, _countFrame);

    [Benchmark(Description = "json-lines via IFrameCodec: decode a heartbeat (value)")]
    public long DecodeHeartbeatViaSeam() => _json.TryDecode(HeartbeatLine, out var frame, out _) ? frame.Timestamp : -1;

    [Benchmark(Description = "json-lines via IFrameCodec: encode a heartbeat response on the stack")]
    public int EncodeResponseOnStackViaSeam()
    {
        Span<byte> line = stackalloc byte[96];
        _json.TryEncodeWithoutData(FrameType.HeartbeatResponse, 1795618897, 12345, line, out var written);
        return written;
    }

    [Benchmark(Description = "binary: framer: feed one heartbeat chunk")]
    public FeedResult BinaryFramerFeed() => _binaryFramer.Feed(BinaryHeartbeatChunk, _countFrame);

    [Benchmark(Description = "binary: decode a heartbeat (value)")]
    public long BinaryDecodeHeartbeat() => _binary.TryDecode(BinaryHeartbeatChunk.AsSpan(BinaryCodec.PrefixLength), out var frame, out _) ? frame.Timestamp : -1;

    [Benchmark(Description = "binary: encode a heartbeat response on the stack")]
    public int BinaryEncodeResponseOnStack()
    {
        Span<byte> frame = stackalloc byte[96];
        _binary.TryEncodeWithoutData(FrameType.HeartbeatResponse, 1795618897, 12345, frame, out var written);
        return written;
    }

    [Benchmark(Description = "encode a heartbeat response to byte[]")]
    public byte[] EncodeResponseToArray() => JsonLinesCodec.Encode(_response);

    [Benchmark(Description = "encode a heartbeat response on the stack")]
    public int EncodeResponseOnStack()
    {
        Span<byte> line = stackalloc byte[JsonLinesCodec.MaxLengthWithoutData];
        JsonLinesCodec.TryEncodeWithoutData(FrameType.HeartbeatResponse, 1795618897, 12345, line, out var written);
        return written;
    }

    [Benchmark(Description = "encode a heartbeat response to IBufferWriter")]
    public int EncodeResponseToWriter()
    {
        _output.ResetWrittenCount();
        JsonLinesCodec.Encode(_response, _output);
        return _output.WrittenCount;
    }
}
