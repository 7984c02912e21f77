using System.Buffers;

namespace Supervisor.Messages.Wire;

/// <summary>What <see cref="IFrameCodec.Scan"/> found at the start of a buffer.</summary>
public enum FrameScan
{
    /// <summary>A whole frame: its bounds are set.</summary>
    Complete,
    /// <summary>The start of a frame that is not complete yet (or nothing at all).</summary>
    Incomplete,
    /// <summary>A frame longer than the maximum frame length; known before its body is read where the format allows.</summary>
    TooLarge,
}

/// <summary>Where one frame lies in a buffer: its body (what <see cref="IFrameCodec.TryDecode"/> takes) and its length on the wire.</summary>
/// <param name="BodyStart">Offset of the body from the start of the frame.</param>
/// <param name="BodyLength">Length of the body: what max-frame-length bounds.</param>
/// <param name="WireLength">Bytes the frame occupies on the wire, delimiter or length prefix included.</param>
public readonly record struct FrameBounds(int BodyStart, int BodyLength, int WireLength);

/// <summary>
/// A wire format: how frames are cut from a byte stream, decoded and encoded (DESIGN §2). Implementations are
/// stateless and shared by every connection of a listener; the maximum frame length is the listener's and is
/// passed in. Decoding is total: every byte sequence is a frame or a protocol error with a message that says
/// what was wrong. <see cref="FrameReader"/> does the buffering of a stream transport on top of
/// <see cref="Scan"/> and <see cref="BytesWanted"/>; a message transport (WebSocket) carries one frame per message
/// (<see cref="MessageBody"/>, <see cref="EncodeMessage"/>).
/// </summary>
public interface IFrameCodec
{
    /// <summary>The name in configuration (<c>codec = json-lines | binary</c>).</summary>
    string Name { get; }

    /// <summary>True when a frame is text (WebSocket text messages), false when bytes (binary messages).</summary>
    bool IsText { get; }

    /// <summary>The most bytes one frame of at most <paramref name="maxFrameLength"/> occupies on the wire: what a reader holds for an unfinished frame at most.</summary>
    int MaxWireLength(int maxFrameLength);

    /// <summary>Looks for one frame at the start of <paramref name="buffer"/>.</summary>
    FrameScan Scan(ReadOnlySpan<byte> buffer, int maxFrameLength, out FrameBounds frame);

    /// <summary>
    /// How many bytes at the start of <paramref name="next"/> belong to the frame begun by <paramref name="unfinished"/>
    /// (non-empty, and <see cref="FrameScan.Incomplete"/>): at least 1, at most <c>next.Length</c>, and no byte past
    /// that frame's end or past what is needed to learn its length.
    /// </summary>
    int BytesWanted(ReadOnlySpan<byte> unfinished, ReadOnlySpan<byte> next);

    /// <summary>Decodes one frame body; a frame without data (every heartbeat) allocates nothing. On failure <paramref name="error"/> says what was wrong.</summary>
    bool TryDecode(ReadOnlySpan<byte> body, out DecodedFrame frame, out string? error);

    /// <summary>Writes <paramref name="frame"/> as it goes on a stream, delimiter or length prefix included.</summary>
    void Encode(Frame frame, IBufferWriter<byte> output);

    /// <summary>The frame body a message transport received as one message, without what delimits it on a stream.</summary>
    ReadOnlySpan<byte> MessageBody(ReadOnlySpan<byte> message);

    /// <summary>Writes <paramref name="frame"/> as one message of a message transport: without delimiter or length prefix.</summary>
    void EncodeMessage(Frame frame, IBufferWriter<byte> output);

    /// <summary>Longest frame <see cref="TryEncodeWithoutData(FrameType, long, long?, int?, Span{byte}, out int)"/> writes.</summary>
    int MaxLengthWithoutData { get; }

    /// <summary>
    /// Writes a frame without data (a heartbeat or its response) as <see cref="Encode"/> would, byte for byte,
    /// without allocating; false if <paramref name="output"/> is shorter than <see cref="MaxLengthWithoutData"/>.
    /// </summary>
    bool TryEncodeWithoutData(FrameType type, long timestamp, long? seq, Span<byte> output, out int written) =>
        TryEncodeWithoutData(type, timestamp, seq, null, output, out written);

    /// <summary>As the overload without it, with the heartbeat's <c>interval</c> field (ms) when <paramref name="interval"/> is set.</summary>
    bool TryEncodeWithoutData(FrameType type, long timestamp, long? seq, int? interval, Span<byte> output, out int written);
}

/// <summary>The codecs that ship, by name, and helpers over any codec.</summary>
public static class FrameCodecs
{
    /// <summary>The names <c>codec</c> takes, the default first.</summary>
    public static IReadOnlyList<string> Names { get; } = [JsonLinesCodec.CodecName, BinaryCodec.CodecName];

    /// <summary>The codec called <paramref name="name"/>; false for a name that is not one of <see cref="Names"/>.</summary>
    public static bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IFrameCodec? codec)
    {
        codec = name switch
        {
            JsonLinesCodec.CodecName => JsonLinesCodec.Instance,
            BinaryCodec.CodecName => BinaryCodec.Instance,
            _ => null,
        };
        return codec is not null;
    }

    /// <summary>The frame as it goes on a stream, as a new array.</summary>
    public static byte[] EncodeToArray(this IFrameCodec codec, Frame frame)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        codec.Encode(frame, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The frame as one message of a message transport, as a new array.</summary>
    public static byte[] EncodeMessageToArray(this IFrameCodec codec, Frame frame)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        codec.EncodeMessage(frame, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Decodes the frame a message transport received as one message: too long is <c>frame-too-large</c>
    /// (<paramref name="tooLarge"/>), anything else wrong a protocol error.
    /// </summary>
    public static bool TryDecodeMessage(this IFrameCodec codec, ReadOnlySpan<byte> message, int maxFrameLength, out DecodedFrame frame, out string? error, out bool tooLarge)
    {
        var body = codec.MessageBody(message);
        tooLarge = body.Length > maxFrameLength;
        if (tooLarge)
        {
            frame = default;
            error = TooLargeDetail(maxFrameLength);
            return false;
        }
        return codec.TryDecode(body, out frame, out error);
    }

    /// <summary>The detail of every <c>frame-too-large</c> close for a frame past the listener's limit.</summary>
    public static string TooLargeDetail(int maxFrameLength) => $"frame longer than max-frame-length ({maxFrameLength} bytes)";
}
