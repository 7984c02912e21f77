using System.Buffers;
using System.Buffers.Text;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Supervisor.Messages.Wire;

/// <summary>The outcome of decoding one line: a frame, or what was wrong with it.</summary>
/// <param name="Frame">The frame; null when the line is none.</param>
/// <param name="Error">What was wrong; null when the line decoded.</param>
public readonly record struct DecodeResult(Frame? Frame, string? Error)
{
    /// <summary>A line that decoded to <paramref name="frame"/>.</summary>
    public static DecodeResult Ok(Frame frame) => new(frame, null);

    /// <summary>A line that is no frame; <paramref name="error"/> says what was wrong (the detail of the <c>protocol-error</c>).</summary>
    public static DecodeResult Invalid(string error) => new(null, error);
}

/// <summary>
/// The <c>json-lines</c> codec, the default and the source document's wire format: one JSON object per line
/// (DESIGN §2). Text goes out as UTF-8, escaped only where JSON or line framing needs it (<see cref="JsonTextEncoder"/>).
/// A <c>data</c> that is a JSON value other than a string is kept as that value's JSON text
/// (<see cref="Frame.DataIsJson"/>) and goes out as the same value. The static members encode and decode single
/// frames; <see cref="Instance"/> is the codec seen through <see cref="IFrameCodec"/>.
/// </summary>
public sealed class JsonLinesCodec : IFrameCodec
{
    /// <summary>The name in configuration.</summary>
    public const string CodecName = "json-lines";

    /// <summary>The codec's one instance, as an <see cref="IFrameCodec"/>; it is stateless and shared by every connection.</summary>
    public static JsonLinesCodec Instance { get; } = new();

    private static readonly JsonReaderOptions ReaderOptions = new() { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 16 };
    private static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true, Encoder = JsonTextEncoder.Instance };

    private JsonLinesCodec()
    {
    }

    string IFrameCodec.Name => CodecName;

    bool IFrameCodec.IsText => true;

    /// <summary>The line, then <c>\r\n</c> at most.</summary>
    int IFrameCodec.MaxWireLength(int maxFrameLength) => maxFrameLength + 2;

    /// <summary>A line ends at <c>\n</c> (a <c>\r</c> before it is no part of the frame); without one yet, a line already longer than the limit (and a <c>\r</c>) is too large.</summary>
    FrameScan IFrameCodec.Scan(ReadOnlySpan<byte> buffer, int maxFrameLength, out FrameBounds frame)
    {
        frame = default;
        var newline = buffer.IndexOf((byte)'\n');
        if (newline < 0) return buffer.Length > maxFrameLength + 1 ? FrameScan.TooLarge : FrameScan.Incomplete;
        var length = newline > 0 && buffer[newline - 1] == (byte)'\r' ? newline - 1 : newline;
        if (length > maxFrameLength) return FrameScan.TooLarge;
        frame = new FrameBounds(0, length, newline + 1);
        return FrameScan.Complete;
    }

    int IFrameCodec.BytesWanted(ReadOnlySpan<byte> unfinished, ReadOnlySpan<byte> next)
    {
        var newline = next.IndexOf((byte)'\n');
        return newline < 0 ? next.Length : newline + 1;
    }

    bool IFrameCodec.TryDecode(ReadOnlySpan<byte> body, out DecodedFrame frame, out string? error) => TryDecode(body, out frame, out error);

    void IFrameCodec.Encode(Frame frame, IBufferWriter<byte> output) => Encode(frame, output);

    /// <summary>A message may end with the newline a stream would have (<c>\n</c> or <c>\r\n</c>).</summary>
    ReadOnlySpan<byte> IFrameCodec.MessageBody(ReadOnlySpan<byte> message)
    {
        if (message.Length > 0 && message[^1] == (byte)'\n') message = message[..^1];
        if (message.Length > 0 && message[^1] == (byte)'\r') message = message[..^1];
        return message;
    }

    void IFrameCodec.EncodeMessage(Frame frame, IBufferWriter<byte> output) => WriteObject(frame, output);

    int IFrameCodec.MaxLengthWithoutData => MaxLengthWithoutData;

    bool IFrameCodec.TryEncodeWithoutData(FrameType type, long timestamp, long? seq, int? interval, Span<byte> output, out int written) =>
        TryEncodeWithoutData(type, timestamp, seq, interval, output, out written);

    /// <summary>Decodes one line; a trailing <c>\r</c> must already be removed.</summary>
    public static DecodeResult Decode(ReadOnlySpan<byte> line) =>
        TryDecode(line, out var frame, out var error) ? DecodeResult.Ok(frame.ToFrame()) : DecodeResult.Invalid(error!);

    /// <summary>
    /// Decodes one line into a value: a frame without <c>data</c> (every heartbeat) allocates nothing.
    /// On failure <paramref name="error"/> says what was wrong, as <see cref="Decode"/> does.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<byte> line, out DecodedFrame frame, out string? error)
    {
        frame = default;
        error = DecodeError(line, ref frame);
        return error is null;
    }

    private static string? DecodeError(ReadOnlySpan<byte> line, ref DecodedFrame frame)
    {
        if (line.IsEmpty)
            return "frame is empty";
        if (!Utf8.IsValid(line))
            return "frame is not valid UTF-8";

        int? type = null;
        long timestamp = 0;
        string? data = null;
        var dataIsJson = false;
        long? seq = null;
        int? interval = null;
        try
        {
            var reader = new Utf8JsonReader(line, ReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return "frame is not a JSON object";

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var t))
                        return "field 'type' must be an integer";
                    type = t;
                }
                else if (reader.ValueTextEquals("timestamp"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out timestamp))
                        return "field 'timestamp' must be an int64";
                }
                else if (reader.ValueTextEquals("seq"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null) { seq = null; continue; }
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var s))
                        return "field 'seq' must be an int64";
                    seq = s;
                }
                else if (reader.ValueTextEquals("interval"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null) { interval = null; continue; }
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var ms) || ms < Frame.MinInterval)
                        return "field 'interval' must be a positive integer of milliseconds (1 to 2147483647)";
                    interval = ms;
                }
                else if (reader.ValueTextEquals("data"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null) { data = null; dataIsJson = false; continue; }
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        // Any other JSON value is kept as its text, exactly as sent (DESIGN §2).
                        var start = (int)reader.TokenStartIndex;
                        reader.Skip();
                        data = Encoding.UTF8.GetString(line[start..(int)reader.BytesConsumed]);
                        dataIsJson = true;
                        continue;
                    }
                    dataIsJson = false;
                    // GetString throws InvalidOperationException (not JsonException) for an escape that is
                    // no text, such as a lone surrogate "\ud800"; what the peer sent is a protocol error.
                    try { data = reader.GetString(); }
                    catch (InvalidOperationException)
                    {
                        return "field 'data' is not valid text (an escape such as a lone surrogate)";
                    }
                }
                else
                {
                    // Unknown fields are ignored (DESIGN §2), whatever their shape.
                    reader.Read();
                    reader.Skip();
                }
            }
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
                return "frame is not a single JSON object";
        }
        catch (JsonException)
        {
            return "frame is not valid JSON";
        }
        catch (InvalidOperationException)
        {
            // Comparing or reading a field name whose escape is no text ("\udc00") throws this, not JsonException.
            return "frame has a field name that is not valid text (an escape such as a lone surrogate)";
        }

        if (type is null)
            return "field 'type' is missing";
        if (type is < 0 or > 3)
            return $"unknown frame type {type}";
        frame = new DecodedFrame((FrameType)type.Value, timestamp, data, seq) { DataIsJson = dataIsJson, Interval = interval };
        return null;
    }

    /// <summary>
    /// Writes the frame followed by <c>\n</c>. Data marked <see cref="Frame.DataIsJson"/> is written as that JSON
    /// value, on one line; when it is not one JSON value this throws <see cref="ArgumentException"/>.
    /// </summary>
    public static void Encode(Frame frame, IBufferWriter<byte> output)
    {
        WriteObject(frame, output);
        output.Write("\n"u8);
    }

    private static void WriteObject(Frame frame, IBufferWriter<byte> output)
    {
        using var writer = new Utf8JsonWriter(output, WriterOptions);
        writer.WriteStartObject();
        writer.WriteNumber("type"u8, (int)frame.Type);
        writer.WriteNumber("timestamp"u8, frame.Timestamp);
        if (frame.Data is not null)
        {
            if (frame.DataIsJson)
            {
                writer.WritePropertyName("data"u8);
                WriteJsonValue(writer, frame.Data);
            }
            else writer.WriteString("data"u8, frame.Data);
        }
        if (frame.Seq is { } seq) writer.WriteNumber("seq"u8, seq);
        if (BinaryCodec.CheckedInterval(frame.Interval) is { } interval) writer.WriteNumber("interval"u8, interval);
        writer.WriteEndObject();
    }

    /// <summary>
    /// Copied exactly as it came (escapes, number spellings and spaces kept), so an echo is the value as sent and a
    /// decoded frame encodes back to itself; re-written instead when the text holds a line break (an application's
    /// pretty-printed value), so that the frame stays on one line, or when it is not one JSON value (then it throws).
    /// </summary>
    private static void WriteJsonValue(Utf8JsonWriter writer, string json)
    {
        if (json.AsSpan().IndexOfAny('\n', '\r') < 0)
        {
            try
            {
                writer.WriteRawValue(json);
                return;
            }
            catch (Exception e) when (e is ArgumentException or JsonException)
            {
                // Not one JSON value (or deeper than the writer checks): the re-writing below says why.
            }
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = ReaderOptions.MaxDepth });
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"a frame's data is marked DataIsJson but is not one JSON value: {e.Message}", nameof(json));
        }
        using (document) document.RootElement.WriteTo(writer);
    }

    /// <summary>True when <paramref name="utf8"/> is exactly one JSON value (whitespace around it allowed), as a frame's JSON data must be.</summary>
    public static bool IsJsonValue(ReadOnlySpan<byte> utf8)
    {
        try
        {
            var reader = new Utf8JsonReader(utf8, ReaderOptions);
            if (!reader.Read()) return false;
            reader.Skip();
            return !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Longest line <see cref="TryEncodeWithoutData(FrameType, long, long?, int?, Span{byte}, out int)"/> writes: two int64 fields, an int32 interval and the newline.</summary>
    public const int MaxLengthWithoutData = 104;

    /// <summary>
    /// Writes a frame that has no <c>data</c> (a heartbeat or its response) followed by <c>\n</c>, byte for
    /// byte as <see cref="Encode(Frame, IBufferWriter{byte})"/> would, without allocating; false if
    /// <paramref name="output"/> is shorter than <see cref="MaxLengthWithoutData"/> needs.
    /// </summary>
    public static bool TryEncodeWithoutData(FrameType type, long timestamp, long? seq, Span<byte> output, out int written) =>
        TryEncodeWithoutData(type, timestamp, seq, null, output, out written);

    /// <summary>As the overload without it, with the <c>interval</c> field (ms) last when <paramref name="interval"/> is set.</summary>
    public static bool TryEncodeWithoutData(FrameType type, long timestamp, long? seq, int? interval, Span<byte> output, out int written)
    {
        written = 0;
        if (output.Length < MaxLengthWithoutData) return false;
        BinaryCodec.CheckedInterval(interval);
        var n = Append(output, 0, "{\"type\":"u8);
        Utf8Formatter.TryFormat((int)type, output[n..], out var w);
        n = Append(output, n + w, ",\"timestamp\":"u8);
        Utf8Formatter.TryFormat(timestamp, output[n..], out w);
        n += w;
        if (seq is { } s)
        {
            n = Append(output, n, ",\"seq\":"u8);
            Utf8Formatter.TryFormat(s, output[n..], out w);
            n += w;
        }
        if (interval is { } ms)
        {
            n = Append(output, n, ",\"interval\":"u8);
            Utf8Formatter.TryFormat(ms, output[n..], out w);
            n += w;
        }
        written = Append(output, n, "}\n"u8);
        return true;
    }

    private static int Append(Span<byte> output, int at, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(output[at..]);
        return at + bytes.Length;
    }

    /// <summary>The frame as one line, <c>\n</c> included, in a new array.</summary>
    public static byte[] Encode(Frame frame)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        Encode(frame, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The frame as one line of text, <c>\n</c> included.</summary>
    public static string EncodeToString(Frame frame) => Encoding.UTF8.GetString(Encode(frame));
}
