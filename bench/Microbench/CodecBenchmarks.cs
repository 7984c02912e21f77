using System.Buffers;
using BenchmarkDotNet.Attributes;
using Supervisor.Messages.Wire;

namespace Microbench;

/// <summary>The json-lines codec and the line framer, one heartbeat per operation.</summary>
public class CodecBenchmarks
{
    internal static readonly byte[] HeartbeatLine = "{\"type\":0,\"timestamp\":1700000000,\"seq\":12345}"u8.ToArray();
    internal static readonly byte[] HeartbeatChunk = "{\"type\":0,\"timestamp\":1700000000,\"seq\":12345}\n"u8.ToArray();

    private readonly LineFramer _framer = new(64 * 1024);
    private readonly LineHandler _countLine = _ => true;
    private readonly Frame _response = Frame.HeartbeatResponse(1795618897, 12345);
    private readonly ArrayBufferWriter<byte> _output = new(256);

    [Benchmark(Description = "decode a heartbeat line (Frame)")]
    public Frame? DecodeHeartbeat() => JsonLinesCodec.Decode(HeartbeatLine).Frame;

    [Benchmark(Description = "decode a heartbeat line (value)")]
    public long DecodeHeartbeatValue() => JsonLinesCodec.TryDecode(HeartbeatLine, out var frame, out _) ? frame.Timestamp : -1;

    [Benchmark(Description = "framer: feed one heartbeat chunk")]
    public FeedResult FramerFeed() => _framer.Feed(HeartbeatChunk, _countLine);

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
