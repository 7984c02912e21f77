using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;

namespace Supervisor.Messages.Wire;

/// <summary>
/// The string escaping of the <c>json-lines</c> codec: text goes out as UTF-8, and only what JSON requires or
/// what a line reader could take for a line break is escaped. <see cref="JavaScriptEncoder.UnsafeRelaxedJsonEscaping"/>
/// is not enough: it still escapes every character outside the Basic Multilingual Plane (an emoji went out as
/// <c>\uD83D\uDE00</c>), NBSP, private-use and unassigned characters.
/// <para>
/// Escaped: <c>"</c> and <c>\</c> and the C0 controls U+0000–U+001F (JSON requires it; <c>\n</c> would also end
/// the line); DEL and the C1 controls U+007F–U+009F, and U+2028/U+2029 (legal in JSON, but NEL, LS and PS are
/// line breaks to some readers, Python's <c>splitlines</c> among them; Go's encoder escapes LS and PS too).
/// A lone surrogate, which a .NET string may hold but decoded input never does, goes out as U+FFFD (the
/// encoding's replacement, as the binary codec's UTF-8 does).
/// </para>
/// </summary>
internal sealed class JsonTextEncoder : JavaScriptEncoder
{
    public static JsonTextEncoder Instance { get; } = new();

    // Surrogates are in the set so that the search stops at them; a well-formed pair is stepped over.
    private static readonly SearchValues<char> Stops = SearchValues.Create(StopCharacters());

    private JsonTextEncoder()
    {
    }

    private static string StopCharacters()
    {
        var stops = new StringBuilder();
        for (var c = 0; c < 0x20; c++) stops.Append((char)c);
        stops.Append('"').Append('\\');
        for (var c = 0x7F; c <= 0x9F; c++) stops.Append((char)c);
        stops.Append('\u2028').Append('\u2029');
        for (var c = 0xD800; c <= 0xDFFF; c++) stops.Append((char)c);
        return stops.ToString();
    }

    public override int MaxOutputCharactersPerInputCharacter => 6; // \uXXXX

    public override bool WillEncode(int unicodeScalar) =>
        unicodeScalar is < 0x20 or '"' or '\\' or (>= 0x7F and <= 0x9F) or 0x2028 or 0x2029 or (>= 0xD800 and <= 0xDFFF);

    public override unsafe int FindFirstCharacterToEncode(char* text, int textLength)
    {
        var span = new ReadOnlySpan<char>(text, textLength);
        var at = 0;
        while (true)
        {
            var found = span[at..].IndexOfAny(Stops);
            if (found < 0) return -1;
            at += found;
            if (char.IsHighSurrogate(span[at]) && at + 1 < span.Length && char.IsLowSurrogate(span[at + 1]))
            {
                at += 2;
                continue;
            }
            return at;
        }
    }

    public override unsafe bool TryEncodeUnicodeScalar(int unicodeScalar, char* buffer, int bufferLength, out int numberOfCharactersWritten)
    {
        var output = new Span<char>(buffer, bufferLength);
        numberOfCharactersWritten = 0;
        if (!WillEncode(unicodeScalar))
        {
            // A supplementary-plane scalar is written as its surrogate pair, unescaped.
            if (!new Rune(unicodeScalar).TryEncodeToUtf16(output, out var written)) return false;
            numberOfCharactersWritten = written;
            return true;
        }
        ReadOnlySpan<char> shortForm = unicodeScalar switch
        {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\b' => "\\b",
            '\f' => "\\f",
            _ => default,
        };
        if (!shortForm.IsEmpty)
        {
            if (!shortForm.TryCopyTo(output)) return false;
            numberOfCharactersWritten = shortForm.Length;
            return true;
        }
        if (unicodeScalar is >= 0xD800 and <= 0xDFFF) unicodeScalar = 0xFFFD;
        if (unicodeScalar == 0xFFFD)
        {
            if (output.Length < 1) return false;
            output[0] = '\uFFFD';
            numberOfCharactersWritten = 1;
            return true;
        }
        if (output.Length < 6) return false;
        output[0] = '\\';
        output[1] = 'u';
        ((ushort)unicodeScalar).TryFormat(output[2..], out _, "X4");
        numberOfCharactersWritten = 6;
        return true;
    }
}
