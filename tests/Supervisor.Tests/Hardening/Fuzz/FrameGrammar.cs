using System.Text;
using Supervisor.Messages.Wire;

namespace Supervisor.Tests.Hardening.Fuzz;

/// <summary>What a generated line means under DESIGN §2, as far as the grammar knows it.</summary>
internal enum Intent
{
    /// <summary>A frame the contract defines: it must decode to exactly <see cref="GeneratedLine.Frame"/>.</summary>
    Valid,
    /// <summary>Something the contract refuses (bad JSON, bad UTF-8, a field of the wrong kind): it must decode to an error.</summary>
    Invalid,
    /// <summary>Something the contract leaves open (duplicate keys, <c>-0</c>, exponent integers): a frame or an error, never an exception.</summary>
    Open,
}

/// <summary>One generated line, without its terminator, and what it must decode to.</summary>
internal sealed record GeneratedLine(byte[] Bytes, Intent Intent, Frame? Frame, string Recipe)
{
    public override string ToString() => $"{Intent} [{Recipe}] {FrameFuzzing.Escape(Bytes)}";
}

/// <summary>
/// A grammar-aware generator of <c>json-lines</c> input (DESIGN §2): JSON objects with the frame fields and
/// unknown ones, every string escape (lone, paired and reversed surrogates, <c>\u0000</c>, invalid escapes),
/// raw UTF-8 (overlong and invalid sequences, raw control characters), numbers at and past every integer
/// width, duplicate keys, nesting past the codec's depth limit, every kind of <c>type</c> value, whitespace
/// variants, and lines at and past the frame length limit. Everything it draws comes from one seeded
/// <see cref="Random"/>, so a seed reproduces a line (and a connection's whole sequence) byte for byte.
/// </summary>
internal sealed class FrameGrammar
{
    /// <summary>The codec's <c>MaxDepth</c>: an object nested deeper is not a frame.</summary>
    public const int CodecMaxDepth = 16;

    private readonly Random _random;
    private readonly int _maxFrameLength;

    public FrameGrammar(int seed, int maxFrameLength)
    {
        _random = new Random(seed);
        _maxFrameLength = maxFrameLength;
    }

    /// <summary>
    /// Whether whitespace between tokens may be a line feed. JSON allows it, but on a line-framed transport it
    /// cuts the frame in two; a connection's run of valid frames turns it off.
    /// </summary>
    public bool LineFeedsInWhitespace { get; set; } = true;

    public Random Random => _random;

    public int MaxFrameLength => _maxFrameLength;

    private bool Chance(double p) => _random.NextDouble() < p;
    private T Pick<T>(IReadOnlyList<T> items) => items[_random.Next(items.Count)];

    /// <summary>The next line: mostly frame-shaped objects, some of them broken on purpose.</summary>
    public GeneratedLine NextLine()
    {
        var roll = _random.Next(100);
        if (roll < 62) return ObjectFrame();
        if (roll < 72) return Mutated(ObjectFrame());
        if (roll < 80) return NotAnObject();
        if (roll < 86) return AtTheLengthLimit();
        if (roll < 92) return Nested();
        return Trailing(ObjectFrame());
    }

    // ---- objects with the frame fields ----

    private sealed class Builder
    {
        public readonly List<(byte[] Key, byte[] Value)> Members = [];
        public Intent Intent = Intent.Valid;
        public int? Type;
        public long Timestamp;
        public string? Data;
        public bool DataIsJson;
        public long? Seq;
        public readonly List<string> Recipe = [];

        public void Degrade(Intent to, string why)
        {
            Recipe.Add(why);
            if (to == Intent.Invalid || Intent == Intent.Invalid) Intent = Intent.Invalid;
            else if (to == Intent.Open) Intent = Intent.Open;
        }
    }

    private GeneratedLine ObjectFrame()
    {
        var b = new Builder();
        var fields = new List<string>();
        if (!Chance(0.04)) fields.Add("type"); else b.Degrade(Intent.Invalid, "no type");
        if (Chance(0.8)) fields.Add("timestamp");
        if (Chance(0.5)) fields.Add("seq");
        if (Chance(0.5)) fields.Add("data");
        var unknown = Chance(0.3) ? _random.Next(1, 4) : 0;
        for (var i = 0; i < unknown; i++) fields.Add("");
        var duplicate = Chance(0.08) && fields.Count > 0;
        if (duplicate) fields.Add(Pick(fields.Where(f => f != "").DefaultIfEmpty("type").ToArray()));
        _random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(fields));

        foreach (var field in fields)
        {
            switch (field)
            {
                case "type": b.Members.Add((Key("type", b), TypeValue(b))); break;
                case "timestamp": b.Members.Add((Key("timestamp", b), Int64Value(b, "timestamp", allowNull: false, v => b.Timestamp = v ?? 0))); break;
                case "seq": b.Members.Add((Key("seq", b), Int64Value(b, "seq", allowNull: true, v => b.Seq = v))); break;
                case "data": b.Members.Add((Key("data", b), DataValue(b))); break;
                default: b.Members.Add((UnknownKey(b), AnyValue(b, depth: 2))); break;
            }
        }
        if (b.Type is < 0 or > 3) b.Degrade(Intent.Invalid, $"unknown type {b.Type}");
        if (duplicate)
        {
            // The contract does not say which of two equal keys counts (the codec takes the last one it reads,
            // and stops at the first it refuses): only totality is asked of such a line.
            b.Recipe.Add("duplicate key");
            b.Intent = Intent.Open;
        }
        return Finish(b);
    }

    private GeneratedLine Finish(Builder b)
    {
        var output = new List<byte>();
        Whitespace(output);
        output.Add((byte)'{');
        for (var i = 0; i < b.Members.Count; i++)
        {
            if (i > 0) { Whitespace(output); output.Add((byte)','); }
            Whitespace(output);
            output.AddRange(b.Members[i].Key);
            Whitespace(output);
            output.Add((byte)':');
            Whitespace(output);
            output.AddRange(b.Members[i].Value);
            Whitespace(output);
        }
        if (b.Members.Count == 0) Whitespace(output);
        output.Add((byte)'}');
        Whitespace(output);
        var frame = b.Intent == Intent.Valid ? new Frame((FrameType)b.Type!.Value, b.Timestamp, b.Data, b.Seq) { DataIsJson = b.DataIsJson } : null;
        return new GeneratedLine(output.ToArray(), b.Intent, frame, string.Join(", ", b.Recipe));
    }

    /// <summary>JSON whitespace between tokens: none mostly, else spaces, tabs, CR, LF (a LF splits a TCP line).</summary>
    private void Whitespace(List<byte> output)
    {
        if (!Chance(0.15)) return;
        var n = Chance(0.9) ? _random.Next(1, 3) : _random.Next(3, 40);
        var choices = LineFeedsInWhitespace ? WhitespaceBytes : WhitespaceBytesWithoutLineFeed;
        for (var i = 0; i < n; i++) output.Add(Pick(choices));
    }

    private static readonly byte[] WhitespaceBytes = " \t\r\n "u8.ToArray();
    private static readonly byte[] WhitespaceBytesWithoutLineFeed = " \t\r "u8.ToArray();

    /// <summary>A known field name, sometimes spelled with escapes (<c>"\u0074ype"</c> is <c>"type"</c>).</summary>
    private byte[] Key(string name, Builder b)
    {
        if (!Chance(0.1)) return Encoding.UTF8.GetBytes($"\"{name}\"");
        b.Recipe.Add($"escaped key {name}");
        var sb = new StringBuilder("\"");
        foreach (var c in name) sb.Append(Chance(0.5) ? $"\\u{(int)c:x4}" : c.ToString());
        return Encoding.UTF8.GetBytes(sb.Append('"').ToString());
    }

    private byte[] UnknownKey(Builder b)
    {
        var key = Chance(0.7) ? Encoding.UTF8.GetBytes("\"" + Pick(UnknownNames) + "\"") : StringToken(b, StringRole.UnknownKey);
        return key;
    }

    private static readonly string[] UnknownNames = ["extra", "Type", "TYPE", "types", "typ", "", "t\u00e9", "\u6570\u636e", "seq2", "data_", "__proto__", "timestamp "];

    private byte[] TypeValue(Builder b)
    {
        var roll = _random.Next(100);
        if (roll < 70)
        {
            var t = _random.Next(0, 4);
            b.Type = t;
            return Ascii(t.ToString());
        }
        if (roll < 82)
        {
            var (text, value) = Pick(OutOfRangeTypes);
            b.Type = value;
            b.Degrade(Intent.Invalid, $"type {text}");
            return Ascii(text);
        }
        var other = Pick(NonIntegerTypes);
        b.Type = null;
        b.Degrade(other.Intent, $"type {other.Text}");
        return Ascii(other.Text);
    }

    private static readonly (string Text, int? Value)[] OutOfRangeTypes =
        [("-1", -1), ("4", 4), ("5", 5), ("2147483647", int.MaxValue), ("-2147483648", int.MinValue),
         ("2147483648", null), ("-2147483649", null), ("9223372036854775808", null), ("18446744073709551615", null),
         ("99999999999999999999999999999999999999", null)];

    private static readonly (string Text, Intent Intent)[] NonIntegerTypes =
        [("\"0\"", Intent.Invalid), ("\"2\"", Intent.Invalid), ("null", Intent.Invalid), ("true", Intent.Invalid), ("false", Intent.Invalid),
         ("1.0", Intent.Invalid), ("0.5", Intent.Invalid), ("[0]", Intent.Invalid), ("{}", Intent.Invalid), ("01", Intent.Invalid),
         ("+1", Intent.Invalid), (".5", Intent.Invalid), ("1e0", Intent.Open), ("-0", Intent.Open), ("0x1", Intent.Invalid),
         ("NaN", Intent.Invalid), ("Infinity", Intent.Invalid), ("1e309", Intent.Invalid), ("-", Intent.Invalid)];

    /// <summary>Integer widths int8..int64 and uint64, each at and one past its bounds, and numbers no int64 holds.</summary>
    private static readonly string[] InRangeInt64 =
        ["0", "1", "-1", "127", "-128", "128", "-129", "255", "256", "32767", "-32768", "32768", "65535", "65536",
         "2147483647", "-2147483648", "2147483648", "-2147483649", "4294967295", "4294967296",
         "9223372036854775807", "-9223372036854775808", "1700000000", "1795618897"];

    private static readonly (string Text, Intent Intent)[] NotInt64 =
        [("9223372036854775808", Intent.Invalid), ("-9223372036854775809", Intent.Invalid), ("18446744073709551615", Intent.Invalid),
         ("18446744073709551616", Intent.Invalid), ("1e308", Intent.Invalid), ("1e309", Intent.Invalid), ("-1e309", Intent.Invalid),
         ("0.0", Intent.Invalid), ("1.5", Intent.Invalid), ("-0.0", Intent.Invalid), ("1E2", Intent.Open), ("-0", Intent.Open),
         ("007", Intent.Invalid), ("00", Intent.Invalid), ("\"1\"", Intent.Invalid), ("true", Intent.Invalid), ("[]", Intent.Invalid),
         ("{}", Intent.Invalid), ("1.", Intent.Invalid), ("--1", Intent.Invalid), ("1e", Intent.Invalid)];

    private byte[] Int64Value(Builder b, string field, bool allowNull, Action<long?> set)
    {
        var roll = _random.Next(100);
        if (roll < 72)
        {
            var text = Chance(0.5) ? Pick(InRangeInt64) : _random.NextInt64(long.MinValue, long.MaxValue).ToString();
            set(long.Parse(text));
            return Ascii(text);
        }
        if (roll < 80)
        {
            if (allowNull) { set(null); return Ascii("null"); }
            b.Degrade(Intent.Invalid, $"{field} null");
            return Ascii("null");
        }
        if (roll < 88)
        {
            // A huge digit string, well past any integer width.
            var digits = new string('9', _random.Next(20, 400));
            b.Degrade(Intent.Invalid, $"{field} {digits.Length} digits");
            return Ascii((Chance(0.5) ? "-" : "") + digits);
        }
        var (other, intent) = Pick(NotInt64);
        b.Degrade(intent, $"{field} {other}");
        return Ascii(other);
    }

    private byte[] DataValue(Builder b)
    {
        var roll = _random.Next(100);
        b.DataIsJson = false;
        if (roll < 85) return StringToken(b, StringRole.Data);
        if (roll < 90) { b.Data = null; return Ascii("null"); }
        // Any other JSON value is the data as its JSON text, exactly as sent (DESIGN §2).
        b.Data = Pick(["1", "true", "{}", "[\"x\"]", "{\"a\":\"b\"}", "0.5", "{\"é\":[1,{\"b\":null}]}"]);
        b.DataIsJson = true;
        return Encoding.UTF8.GetBytes(b.Data);
    }

    // ---- strings ----

    /// <summary>
    /// A JSON string token built from segments: plain and multi-byte text, every short escape, <c>\uXXXX</c>
    /// of ordinary and paired surrogate code points (text), and broken ones (lone and reversed surrogates,
    /// invalid escapes, raw control characters, invalid UTF-8).
    /// </summary>
    private byte[] StringToken(Builder b, StringRole role)
    {
        var output = new List<byte> { (byte)'"' };
        var text = new StringBuilder();
        var segments = Chance(0.2) ? 0 : _random.Next(1, Chance(0.9) ? 6 : 40);
        var invalidPieces = false;
        for (var i = 0; i < segments; i++)
        {
            var roll = _random.Next(100);
            if (roll < 30)
            {
                var s = Pick(PlainText);
                output.AddRange(Encoding.UTF8.GetBytes(s));
                text.Append(s);
            }
            else if (roll < 45)
            {
                var (escape, meaning) = Pick(ShortEscapes);
                output.AddRange(Ascii(escape));
                text.Append(meaning);
            }
            else if (roll < 60)
            {
                var c = (char)_random.Next(0, 0xD800);
                output.AddRange(Ascii(UEscape(c)));
                text.Append(c);
            }
            else if (roll < 68)
            {
                var rune = new Rune(_random.Next(0x10000, 0x110000));
                var pair = new char[2];
                rune.EncodeToUtf16(pair);
                output.AddRange(Ascii(UEscape(pair[0]) + UEscape(pair[1])));
                text.Append(pair);
            }
            else if (roll < 76)
            {
                // A lone high, a lone low, or a reversed pair: JSON syntax, but no text.
                var kind = _random.Next(3);
                var high = (char)_random.Next(0xD800, 0xDC00);
                var low = (char)_random.Next(0xDC00, 0xE000);
                output.AddRange(Ascii(kind switch { 0 => UEscape(high), 1 => UEscape(low), _ => UEscape(low) + UEscape(high) }));
                // Two of these in a row may pair up into text again: whether the string is text is decided at its end.
                text.Append(kind switch { 0 => high.ToString(), 1 => low.ToString(), _ => $"{low}{high}" });
                b.Recipe.Add(kind switch { 0 => "lone high surrogate", 1 => "lone low surrogate", _ => "reversed surrogate pair" });
            }
            else if (roll < 82)
            {
                var bad = Pick(InvalidEscapes);
                output.AddRange(Ascii(bad));
                b.Degrade(Intent.Invalid, $"invalid escape {bad}");
            }
            else if (roll < 88)
            {
                var control = (byte)_random.Next(0, 0x20);
                if (control == (byte)'\n' && Chance(0.5)) control = 0;
                output.Add(control);
                b.Degrade(Intent.Invalid, $"raw control 0x{control:x2}");
            }
            else if (roll < 94)
            {
                // Two of these in a row may make a valid sequence again: validity is decided at the string's end.
                var invalid = Pick(InvalidUtf8);
                output.AddRange(invalid);
                invalidPieces = true;
                b.Recipe.Add($"invalid UTF-8 {Convert.ToHexString(invalid)}");
            }
            else
            {
                // Raw multi-byte UTF-8 of a random scalar (valid).
                var rune = RandomRune();
                var buffer = new byte[4];
                var n = rune.EncodeToUtf8(buffer);
                output.AddRange(buffer.AsSpan(0, n).ToArray());
                text.Append(rune.ToString());
            }
        }
        output.Add((byte)'"');
        var textBroken = !IsWellFormed(text.ToString());
        if (!System.Text.Unicode.Utf8.IsValid(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(output)))
            b.Degrade(Intent.Invalid, "string is not UTF-8");
        else if (invalidPieces)
            b.Degrade(Intent.Open, "invalid UTF-8 pieces that joined into text the grammar did not track");
        switch (role)
        {
            case StringRole.Data:
                b.Data = text.ToString();
                if (textBroken) b.Degrade(Intent.Invalid, "data is no text");
                break;
            case StringRole.UnknownKey when textBroken:
                // The contract ignores unknown fields, but a name that is no text may fairly be refused too.
                b.Degrade(Intent.Open, "field name is no text");
                break;
            // An unknown field's value is skipped, not decoded: a surrogate escape in it leaves a frame.
        }
        return output.ToArray();
    }

    private static bool IsWellFormed(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) i++;
            else if (char.IsSurrogate(text[i])) return false;
        }
        return true;
    }

    private enum StringRole { Data, UnknownKey, UnknownValue }

    private Rune RandomRune()
    {
        while (true)
        {
            var value = Chance(0.5) ? _random.Next(0x80, 0x800) : _random.Next(0x800, 0x110000);
            if (Rune.IsValid(value)) return new Rune(value);
        }
    }

    private static string UEscape(char c) => $"\\u{(int)c:x4}";

    private static readonly string[] PlainText = ["hello", "a", " ", "x y z", "{'type':0}", "caf\u00e9", "\u65e5\u672c", "\ud83d\ude00", "'", "/", "<>&", "ünïcödé", "\u2028\u2029", "\ufeff", "\uffff"];

    private static readonly (string Escape, string Meaning)[] ShortEscapes =
        [("\\\"", "\""), ("\\\\", "\\"), ("\\/", "/"), ("\\b", "\b"), ("\\f", "\f"), ("\\n", "\n"), ("\\r", "\r"), ("\\t", "\t"),
         ("\\u0000", "\0"), ("\\u001f", "\u001f"), ("\\u007f", "\u007f"), ("\\uFFFF", "\uffff"), ("\\uFEFF", "\ufeff")];

    private static readonly string[] InvalidEscapes =
        ["\\x41", "\\u12 ", "\\u-", "\\U0041", "\\uZZZZ", "\\a", "\\0", "\\'", "\\ ", "\\u00G1", "\\v", "\\e"];

    /// <summary>Overlong encodings, lone continuation bytes, UTF-16 surrogates encoded as UTF-8, bytes past U+10FFFF, truncated sequences.</summary>
    private static readonly byte[][] InvalidUtf8 =
        [[0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xF0, 0x80, 0x80, 0x80], [0x80], [0xBF], [0xED, 0xA0, 0x80],
         [0xED, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFE], [0xFF], [0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98]];

    // ---- values of unknown fields ----

    /// <summary>Any JSON value, as an unknown field's value; such a value is ignored whatever its shape, if it is JSON.</summary>
    private byte[] AnyValue(Builder b, int depth)
    {
        var roll = _random.Next(100);
        if (roll < 30) return StringToken(b, StringRole.UnknownValue);
        if (roll < 50)
        {
            // Any JSON number is fine here, however wide: it is skipped, not converted.
            return Ascii(Pick(["0", "-0", "1e308", "1e309", "-1e309", "0.0", "18446744073709551616", new string('7', 300), "1.5E-400", "-9223372036854775809"]));
        }
        if (roll < 60) return Ascii(Pick(["null", "true", "false"]));
        if (roll < 80 && depth < 6)
        {
            var items = _random.Next(0, 4);
            var output = new List<byte> { (byte)'[' };
            for (var i = 0; i < items; i++)
            {
                if (i > 0) output.Add((byte)',');
                output.AddRange(AnyValue(b, depth + 1));
            }
            output.Add((byte)']');
            return output.ToArray();
        }
        if (depth < 6)
        {
            var members = _random.Next(0, 3);
            var output = new List<byte> { (byte)'{' };
            for (var i = 0; i < members; i++)
            {
                if (i > 0) output.Add((byte)',');
                output.AddRange(Chance(0.5) ? Ascii("\"type\"") : UnknownKey(b));
                output.Add((byte)':');
                output.AddRange(AnyValue(b, depth + 1));
            }
            output.Add((byte)'}');
            return output.ToArray();
        }
        return Ascii("1");
    }

    // ---- other shapes ----

    private GeneratedLine Nested()
    {
        // Depth counts the frame object itself: depth d nests d-1 containers inside it.
        var depth = Chance(0.5) ? _random.Next(CodecMaxDepth - 2, CodecMaxDepth + 3) : _random.Next(2, 200);
        var containers = depth - 1;
        var open = new StringBuilder();
        var close = new StringBuilder();
        for (var i = 0; i < containers; i++)
        {
            if (Chance(0.5)) { open.Append('['); close.Insert(0, ']'); }
            else { open.Append("{\"k\":"); close.Insert(0, '}'); }
        }
        var type = _random.Next(0, 4);
        var text = $"{{\"type\":{type},\"nest\":{open}1{close}}}";
        var intent = depth <= CodecMaxDepth - 1 ? Intent.Valid : depth > CodecMaxDepth ? Intent.Invalid : Intent.Open;
        return new GeneratedLine(Ascii(text), intent, intent == Intent.Valid ? new Frame((FrameType)type, 0) : null, $"nesting depth {depth}");
    }

    private GeneratedLine NotAnObject()
    {
        // JSON has no byte order mark, but RFC 8259 lets a parser ignore one: either outcome is allowed.
        if (Chance(0.05))
            return new GeneratedLine([0xEF, 0xBB, 0xBF, .. Ascii("{\"type\":0}")], Intent.Open, null, "byte order mark");
        var text = Pick(NotObjects);
        return new GeneratedLine(Encoding.UTF8.GetBytes(text), Intent.Invalid, null, "not an object");
    }

    private static readonly string[] NotObjects =
        ["", " ", "\t", "\r", "null", "true", "0", "-1", "\"type\"", "[]", "[{\"type\":0}]", "{", "}", "{\"type\":0", "{\"type\":}",
         "{\"type\" 0}", "{type:0}", "{'type':0}", "{\"type\":0,}", "{,\"type\":0}", "{\"type\":0}}", "not json",
         "{\"type\":0 /* c */}", "{\"type\":0} // c", "{\"type\":0}\0", "\0", "{\"type\":0,\"data\":\"unterminated}", "{\"type\":0,\"data\":'x'}"];

    /// <summary>A valid frame whose data pads it to around <c>max-frame-length</c>: one below, at, and past it.</summary>
    private GeneratedLine AtTheLengthLimit()
    {
        var type = _random.Next(0, 4);
        var skeleton = $"{{\"type\":{type},\"data\":\"\"}}";
        var target = _maxFrameLength + Pick([-2, -1, 0, 1, 2, 3, _maxFrameLength]);
        var padding = new string('p', Math.Max(0, target - skeleton.Length));
        var text = $"{{\"type\":{type},\"data\":\"{padding}\"}}";
        return new GeneratedLine(Ascii(text), Intent.Valid, new Frame((FrameType)type, 0, padding), $"length {text.Length} (max {_maxFrameLength})");
    }

    /// <summary>Raw damage to a frame: a byte flipped, dropped or inserted, or the line cut short.</summary>
    private GeneratedLine Mutated(GeneratedLine line)
    {
        var bytes = new List<byte>(line.Bytes);
        var kind = _random.Next(5);
        var at = bytes.Count == 0 ? 0 : _random.Next(bytes.Count);
        string recipe;
        switch (kind)
        {
            case 0 when bytes.Count > 0:
                bytes[at] = (byte)_random.Next(256);
                recipe = $"byte {at} replaced";
                break;
            case 1 when bytes.Count > 0:
                bytes.RemoveAt(at);
                recipe = $"byte {at} dropped";
                break;
            case 2:
                bytes.InsertRange(at, Pick(InvalidUtf8));
                recipe = $"invalid UTF-8 at {at}";
                break;
            case 3:
                bytes.Insert(at, (byte)_random.Next(0, 0x20));
                recipe = $"raw control at {at}";
                break;
            default:
                bytes.RemoveRange(at, bytes.Count - at);
                recipe = $"cut at {at}";
                break;
        }
        return new GeneratedLine(bytes.ToArray(), Intent.Open, null, $"{line.Recipe}; {recipe}");
    }

    /// <summary>Something after the object: whitespace (still one frame) or a second value (not a single object).</summary>
    private GeneratedLine Trailing(GeneratedLine line)
    {
        if (Chance(0.4))
        {
            var bytes = line.Bytes.Concat(Ascii(Pick([" ", "\t", " \t ", "\r"]))).ToArray();
            return line with { Bytes = bytes, Recipe = $"{line.Recipe}; trailing whitespace" };
        }
        var tail = Pick(["{}", "{\"type\":0}", "x", "0", "]", "}", ",", "null", "\"\""]);
        return new GeneratedLine(line.Bytes.Concat(Ascii(tail)).ToArray(), Intent.Invalid, null, $"{line.Recipe}; trailing {tail}");
    }

    private static byte[] Ascii(string text) => Encoding.UTF8.GetBytes(text);
}
