using System.Buffers.Text;

namespace LoadGen;

/// <summary>The few json-lines frames the generator writes and the fields it reads back, without a JSON library.</summary>
internal static class Wire
{
    public const int TypeHeartbeatResponse = 1;
    public const int TypeData = 2;
    public const int TypeErrorNotice = 3;

    /// <summary><c>{"type":0,"timestamp":T,"seq":S}\n</c></summary>
    public static int Heartbeat(Span<byte> into, long timestamp, long seq)
    {
        var n = Copy("{\"type\":0,\"timestamp\":"u8, into);
        n += Number(timestamp, into[n..]);
        n += Copy(",\"seq\":"u8, into[n..]);
        n += Number(seq, into[n..]);
        n += Copy("}\n"u8, into[n..]);
        return n;
    }

    /// <summary><c>{"type":2,"timestamp":T,"seq":S,"data":"xxx…"}\n</c></summary>
    public static int Data(Span<byte> into, long timestamp, long seq, int size)
    {
        var n = Copy("{\"type\":2,\"timestamp\":"u8, into);
        n += Number(timestamp, into[n..]);
        n += Copy(",\"seq\":"u8, into[n..]);
        n += Number(seq, into[n..]);
        n += Copy(",\"data\":\""u8, into[n..]);
        into.Slice(n, size).Fill((byte)'x');
        n += size;
        n += Copy("\"}\n"u8, into[n..]);
        return n;
    }

    /// <summary>The source document's heartbeat, as its client's json.Encoder writes it: <c>{"type":0,"timestamp":T}\n</c></summary>
    public static int SourceDocHeartbeat(Span<byte> into, long timestamp)
    {
        var n = Copy("{\"type\":0,\"timestamp\":"u8, into);
        n += Number(timestamp, into[n..]);
        n += Copy("}\n"u8, into[n..]);
        return n;
    }

    /// <summary>The source document's data frame: <c>{"type":2,"timestamp":T,"data":"xxx…"}\n</c></summary>
    public static int SourceDocData(Span<byte> into, long timestamp, int size)
    {
        var n = Copy("{\"type\":2,\"timestamp\":"u8, into);
        n += Number(timestamp, into[n..]);
        n += Copy(",\"data\":\""u8, into[n..]);
        into.Slice(n, size).Fill((byte)'x');
        n += size;
        n += Copy("\"}\n"u8, into[n..]);
        return n;
    }

    /// <summary>The integer after <c>"name":</c>, or null.</summary>
    public static long? Field(ReadOnlySpan<byte> line, ReadOnlySpan<byte> quotedNameColon)
    {
        var at = line.IndexOf(quotedNameColon);
        if (at < 0) return null;
        var rest = line[(at + quotedNameColon.Length)..];
        return Utf8Parser.TryParse(rest, out long value, out _) ? value : null;
    }

    public static int? Type(ReadOnlySpan<byte> line) => (int?)Field(line, "\"type\":"u8);

    public static long? Seq(ReadOnlySpan<byte> line) => Field(line, "\"seq\":"u8);

    /// <summary>The close reason of an error notice: <c>data</c> up to its first colon.</summary>
    public static string NoticeReason(ReadOnlySpan<byte> line)
    {
        var at = line.IndexOf("\"data\":\""u8);
        if (at < 0) return "?";
        var rest = line[(at + 8)..];
        var end = rest.IndexOfAny((byte)':', (byte)'"');
        return System.Text.Encoding.UTF8.GetString(end < 0 ? rest : rest[..end]);
    }

    private static int Copy(ReadOnlySpan<byte> what, Span<byte> into)
    {
        what.CopyTo(into);
        return what.Length;
    }

    private static int Number(long value, Span<byte> into)
    {
        Utf8Formatter.TryFormat(value, into, out var written);
        return written;
    }
}
