using System.Buffers;
using System.Buffers.Text;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Supervisor.Messages.Wire;

/// <summary>The outcome of decoding one line: a frame, or what was wrong with it.</summary>
public readonly record struct DecodeResult(Frame? Frame, string? Error)
{
    public static DecodeResult Ok(Frame frame) => new(frame, null);
    public static DecodeResult Invalid(string error) => new(null, error);
}

/// <summary>Encodes and decodes single <c>json-lines</c> frames (one JSON object, without its newline).</summary>
public static class JsonLinesCodec
{
    private static readonly JsonReaderOptions ReaderOptions = new() { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 16 };

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
        long? seq = null;
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
                else if (reader.ValueTextEquals("data"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null) { data = null; continue; }
                    if (reader.TokenType != JsonTokenType.String)
                        return "field 'data' must be a string";
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
        frame = new DecodedFrame((FrameType)type.Value, timestamp, data, seq);
        return null;
    }

    /// <summary>Writes the frame followed by <c>\n</c>.</summary>
    public static void Encode(Frame frame, IBufferWriter<byte> output)
    {
        using (var writer = new Utf8JsonWriter(output, new JsonWriterOptions { SkipValidation = true }))
        {
            writer.WriteStartObject();
            writer.WriteNumber("type"u8, (int)frame.Type);
            writer.WriteNumber("timestamp"u8, frame.Timestamp);
            if (frame.Data is not null) writer.WriteString("data"u8, frame.Data);
            if (frame.Seq is { } seq) writer.WriteNumber("seq"u8, seq);
            writer.WriteEndObject();
        }
        output.Write("\n"u8);
    }

    /// <summary>Longest line <see cref="TryEncodeWithoutData"/> writes: two int64 fields and the newline.</summary>
    public const int MaxLengthWithoutData = 80;

    /// <summary>
    /// Writes a frame that has no <c>data</c> (a heartbeat or its response) followed by <c>\n</c>, byte for
    /// byte as <see cref="Encode(Frame, IBufferWriter{byte})"/> would, without allocating; false if
    /// <paramref name="output"/> is shorter than <see cref="MaxLengthWithoutData"/> needs.
    /// </summary>
    public static bool TryEncodeWithoutData(FrameType type, long timestamp, long? seq, Span<byte> output, out int written)
    {
        written = 0;
        if (output.Length < MaxLengthWithoutData) return false;
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
        written = Append(output, n, "}\n"u8);
        return true;
    }

    private static int Append(Span<byte> output, int at, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(output[at..]);
        return at + bytes.Length;
    }

    public static byte[] Encode(Frame frame)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        Encode(frame, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    public static string EncodeToString(Frame frame) => Encoding.UTF8.GetString(Encode(frame));
}
