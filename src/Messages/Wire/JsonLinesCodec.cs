using System.Buffers;
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
    public static DecodeResult Decode(ReadOnlySpan<byte> line)
    {
        if (line.IsEmpty)
            return DecodeResult.Invalid("frame is empty");
        if (!Utf8.IsValid(line))
            return DecodeResult.Invalid("frame is not valid UTF-8");

        int? type = null;
        long timestamp = 0;
        string? data = null;
        long? seq = null;
        try
        {
            var reader = new Utf8JsonReader(line, ReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return DecodeResult.Invalid("frame is not a JSON object");

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var t))
                        return DecodeResult.Invalid("field 'type' must be an integer");
                    type = t;
                }
                else if (reader.ValueTextEquals("timestamp"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out timestamp))
                        return DecodeResult.Invalid("field 'timestamp' must be an int64");
                }
                else if (reader.ValueTextEquals("seq"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null) { seq = null; continue; }
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var s))
                        return DecodeResult.Invalid("field 'seq' must be an int64");
                    seq = s;
                }
                else if (reader.ValueTextEquals("data"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null) { data = null; continue; }
                    if (reader.TokenType != JsonTokenType.String)
                        return DecodeResult.Invalid("field 'data' must be a string");
                    data = reader.GetString();
                }
                else
                {
                    // Unknown fields are ignored (DESIGN §2), whatever their shape.
                    reader.Read();
                    reader.Skip();
                }
            }
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
                return DecodeResult.Invalid("frame is not a single JSON object");
        }
        catch (JsonException)
        {
            return DecodeResult.Invalid("frame is not valid JSON");
        }

        if (type is null)
            return DecodeResult.Invalid("field 'type' is missing");
        if (type is < 0 or > 3)
            return DecodeResult.Invalid($"unknown frame type {type}");
        return DecodeResult.Ok(new Frame((FrameType)type.Value, timestamp, data, seq));
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

    public static byte[] Encode(Frame frame)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        Encode(frame, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    public static string EncodeToString(Frame frame) => Encoding.UTF8.GetString(Encode(frame));
}
