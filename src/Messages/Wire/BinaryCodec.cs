using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Unicode;

namespace Supervisor.Messages.Wire;

/// <summary>
/// The <c>binary</c> codec: length-prefixed frames with the same frame types, fields, limits and notices as
/// <c>json-lines</c> (DESIGN §2). All integers are big-endian.
/// <code>
/// offset  size  field
///  0      4     length: bytes after this field (uint32); at most max-frame-length
///  4      1     type: 0 heartbeat, 1 heartbeat response, 2 data, 3 error notice
///  5      1     flags: 0x01 seq present, 0x02 data present, 0x04 data is JSON text, 0x08 interval present; other bits 0
///  6      8     timestamp (int64, Unix seconds)
/// 14      8     seq (int64), only with flag 0x01
///  ..     4     interval (int32, milliseconds, at least 1), only with flag 0x08; after the seq when both are set
///  ..     rest  data (UTF-8), only with flag 0x02; the rest of the frame, possibly empty
/// </code>
/// A heartbeat with a seq is 22 bytes on the wire (the json-lines one about 42). A length past the limit is
/// <c>frame-too-large</c> as soon as its four bytes are in, before any of the body is read. On a WebSocket each
/// binary message is one frame from its type byte on (the message carries the length).
/// </summary>
public sealed class BinaryCodec : IFrameCodec
{
    /// <summary>The name in configuration.</summary>
    public const string CodecName = "binary";

    /// <summary>Bytes of the length prefix.</summary>
    public const int PrefixLength = 4;

    /// <summary>Bytes every frame body has: type, flags, timestamp.</summary>
    public const int HeaderLength = 10;

    /// <summary>Flag bit: an 8-byte seq follows the header.</summary>
    public const byte FlagSeq = 0x01;

    /// <summary>Flag bit: the rest of the frame is data (UTF-8), possibly empty; without it nothing may follow.</summary>
    public const byte FlagData = 0x02;

    /// <summary>Flag bit: the data is the text of one JSON value (<see cref="Frame.DataIsJson"/>); only with <see cref="FlagData"/>.</summary>
    public const byte FlagDataIsJson = 0x04;

    /// <summary>Flag bit: a 4-byte interval (int32, ms, at least 1) follows the seq, or the header without one (<see cref="Frame.Interval"/>).</summary>
    public const byte FlagInterval = 0x08;
    private const byte KnownFlags = FlagSeq | FlagData | FlagDataIsJson | FlagInterval;

    /// <summary>Longest frame <see cref="TryEncodeWithoutData(FrameType, long, long?, int?, Span{byte}, out int)"/> writes: prefix, header, seq and interval.</summary>
    public const int MaxLengthWithoutData = PrefixLength + HeaderLength + 8 + 4;

    /// <summary>The codec's one instance; it is stateless and shared by every connection.</summary>
    public static BinaryCodec Instance { get; } = new();

    private BinaryCodec()
    {
    }

    /// <summary><c>binary</c>, as <see cref="CodecName"/>.</summary>
    public string Name => CodecName;

    /// <summary>False: on a WebSocket a frame is one binary message.</summary>
    public bool IsText => false;

    /// <summary>The body's limit plus the 4-byte length prefix.</summary>
    public int MaxWireLength(int maxFrameLength) => PrefixLength + maxFrameLength;

    /// <summary>
    /// Reads the length prefix: <see cref="FrameScan.TooLarge"/> as soon as it exceeds <paramref name="maxFrameLength"/>,
    /// <see cref="FrameScan.Complete"/> once the whole body is in <paramref name="buffer"/>.
    /// </summary>
    public FrameScan Scan(ReadOnlySpan<byte> buffer, int maxFrameLength, out FrameBounds frame)
    {
        frame = default;
        if (buffer.Length < PrefixLength) return FrameScan.Incomplete;
        var length = BinaryPrimitives.ReadUInt32BigEndian(buffer);
        if (length > (uint)maxFrameLength) return FrameScan.TooLarge;
        if ((uint)(buffer.Length - PrefixLength) < length) return FrameScan.Incomplete;
        frame = new FrameBounds(PrefixLength, (int)length, PrefixLength + (int)length);
        return FrameScan.Complete;
    }

    /// <summary>The rest of the length prefix first, then the rest of the body it announces, at most what <paramref name="next"/> holds.</summary>
    public int BytesWanted(ReadOnlySpan<byte> unfinished, ReadOnlySpan<byte> next)
    {
        if (unfinished.Length < PrefixLength) return Math.Min(PrefixLength - unfinished.Length, next.Length);
        var end = PrefixLength + (long)BinaryPrimitives.ReadUInt32BigEndian(unfinished);
        return (int)Math.Min(end - unfinished.Length, next.Length);
    }

    /// <summary>
    /// Decodes one body (without the prefix): type, flags, timestamp, then seq and data as the flags say. Unknown types or
    /// flag bits, a short frame, invalid UTF-8 or bytes left over are protocol errors, described in <paramref name="error"/>.
    /// </summary>
    public bool TryDecode(ReadOnlySpan<byte> body, out DecodedFrame frame, out string? error)
    {
        frame = default;
        error = DecodeError(body, ref frame);
        return error is null;
    }

    private static string? DecodeError(ReadOnlySpan<byte> body, ref DecodedFrame frame)
    {
        if (body.IsEmpty)
            return "frame is empty";
        if (body.Length < HeaderLength)
            return $"frame of {body.Length} bytes is shorter than the {HeaderLength}-byte header (type, flags, timestamp)";
        var type = body[0];
        if (type > (byte)FrameType.ErrorNotice)
            return $"unknown frame type {type}";
        var flags = body[1];
        if ((flags & ~KnownFlags) != 0)
            return $"flags 0x{flags:X2} have unknown bits (known: 0x01 seq, 0x02 data, 0x04 data is JSON, 0x08 interval)";
        var timestamp = BinaryPrimitives.ReadInt64BigEndian(body[2..]);
        var rest = body[HeaderLength..];

        long? seq = null;
        if ((flags & FlagSeq) != 0)
        {
            if (rest.Length < 8)
                return $"flag 0x01 (seq) is set but the frame ends {rest.Length} bytes into the 8-byte seq";
            seq = BinaryPrimitives.ReadInt64BigEndian(rest);
            rest = rest[8..];
        }

        int? interval = null;
        if ((flags & FlagInterval) != 0)
        {
            if (rest.Length < 4)
                return $"flag 0x08 (interval) is set but the frame ends {rest.Length} bytes into the 4-byte interval";
            var ms = BinaryPrimitives.ReadInt32BigEndian(rest);
            if (ms < Frame.MinInterval)
                return $"field 'interval' is {ms}: it must be a positive number of milliseconds";
            interval = ms;
            rest = rest[4..];
        }

        string? data = null;
        var dataIsJson = (flags & FlagDataIsJson) != 0;
        if ((flags & FlagData) != 0)
        {
            if (!Utf8.IsValid(rest))
                return "field 'data' is not valid UTF-8";
            if (dataIsJson && !JsonLinesCodec.IsJsonValue(rest))
                return "field 'data' is flagged as JSON (0x04) but is not one JSON value";
            data = rest.IsEmpty ? "" : Encoding.UTF8.GetString(rest);
        }
        else if (dataIsJson)
            return "flag 0x04 (data is JSON) is set without flag 0x02 (data)";
        else if (!rest.IsEmpty)
            return $"{rest.Length} bytes follow the fields of a frame without data (flag 0x02 not set)";

        frame = new DecodedFrame((FrameType)type, timestamp, data, seq) { DataIsJson = dataIsJson, Interval = interval };
        return null;
    }

    /// <summary>Writes the frame with its length prefix. Data marked <see cref="Frame.DataIsJson"/> that is not one JSON value throws <see cref="ArgumentException"/>.</summary>
    public void Encode(Frame frame, IBufferWriter<byte> output) => Write(frame, output, withPrefix: true);

    /// <summary>Without the length prefix: the message carries the length.</summary>
    public ReadOnlySpan<byte> MessageBody(ReadOnlySpan<byte> message) => message;

    /// <summary>Writes the frame as one WebSocket message: the body alone, without the length prefix.</summary>
    public void EncodeMessage(Frame frame, IBufferWriter<byte> output) => Write(frame, output, withPrefix: false);

    private static void Write(Frame frame, IBufferWriter<byte> output, bool withPrefix)
    {
        var dataLength = frame.Data is null ? 0 : Encoding.UTF8.GetByteCount(frame.Data);
        var bodyLength = HeaderLength + (frame.Seq is null ? 0 : 8) + (frame.Interval is null ? 0 : 4) + dataLength;
        var prefix = withPrefix ? PrefixLength : 0;
        var span = output.GetSpan(prefix + bodyLength)[..(prefix + bodyLength)];
        if (withPrefix) BinaryPrimitives.WriteUInt32BigEndian(span, (uint)bodyLength);
        var body = span[prefix..];
        var at = WriteFields(body, frame.Type, frame.Timestamp, frame.Seq, CheckedInterval(frame.Interval),
            (byte)((frame.Data is null ? 0 : FlagData) | (frame.Data is not null && frame.DataIsJson ? FlagDataIsJson : 0)));
        if (frame.Data is not null)
        {
            Encoding.UTF8.GetBytes(frame.Data, body[at..]);
            if (frame.DataIsJson && !JsonLinesCodec.IsJsonValue(body[at..]))
                throw new ArgumentException("a frame's data is marked DataIsJson but is not one JSON value", nameof(frame));
        }
        output.Advance(prefix + bodyLength);
    }

    /// <summary>Type, flags, timestamp, seq and interval (when there are); returns the bytes written.</summary>
    private static int WriteFields(Span<byte> body, FrameType type, long timestamp, long? seq, int? interval, byte flags)
    {
        body[0] = (byte)type;
        body[1] = (byte)(flags | (seq is null ? 0 : FlagSeq) | (interval is null ? 0 : FlagInterval));
        BinaryPrimitives.WriteInt64BigEndian(body[2..], timestamp);
        var at = HeaderLength;
        if (seq is { } s)
        {
            BinaryPrimitives.WriteInt64BigEndian(body[at..], s);
            at += 8;
        }
        if (interval is { } ms)
        {
            BinaryPrimitives.WriteInt32BigEndian(body[at..], ms);
            at += 4;
        }
        return at;
    }

    /// <summary>An interval the decoder would refuse is not written: it throws <see cref="ArgumentOutOfRangeException"/>, as bad JSON data throws.</summary>
    internal static int? CheckedInterval(int? interval) =>
        interval is < Frame.MinInterval ? throw new ArgumentOutOfRangeException(nameof(interval), interval, "a frame's interval must be at least 1 ms") : interval;

    int IFrameCodec.MaxLengthWithoutData => MaxLengthWithoutData;

    /// <summary>
    /// Writes a frame without data (a heartbeat or its response), prefix included, as <see cref="Encode"/> would, without
    /// allocating; false if <paramref name="output"/> is shorter than <see cref="MaxLengthWithoutData"/>.
    /// </summary>
    public bool TryEncodeWithoutData(FrameType type, long timestamp, long? seq, Span<byte> output, out int written) =>
        TryEncodeWithoutData(type, timestamp, seq, null, output, out written);

    /// <summary>As the overload without it, with the interval (flag 0x08) when <paramref name="interval"/> is set.</summary>
    public bool TryEncodeWithoutData(FrameType type, long timestamp, long? seq, int? interval, Span<byte> output, out int written)
    {
        written = 0;
        if (output.Length < MaxLengthWithoutData) return false;
        var bodyLength = WriteFields(output[PrefixLength..], type, timestamp, seq, CheckedInterval(interval), 0);
        BinaryPrimitives.WriteUInt32BigEndian(output, (uint)bodyLength);
        written = PrefixLength + bodyLength;
        return true;
    }
}
