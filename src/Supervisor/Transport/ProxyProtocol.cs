using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Supervisor.Transport;

/// <summary>How far <see cref="ProxyProtocol.Parse"/> got with the bytes it was given.</summary>
internal enum ProxyHeaderStatus
{
    /// <summary>Every byte given belongs to a header that has not ended yet: take them all and wait for more.</summary>
    Incomplete,
    /// <summary>A valid header of <see cref="ProxyHeaderParse.Length"/> bytes; what follows it is the peer's own.</summary>
    Complete,
    /// <summary>Not a valid PROXY header; <see cref="ProxyHeaderParse.Error"/> says why.</summary>
    Invalid,
}

/// <summary>The outcome of parsing the start of a connection's input as a PROXY header.</summary>
/// <param name="Length">Complete: the header's length, CRLF or TLVs included.</param>
/// <param name="Source">Complete: the client's address and port; null when the header says to keep the socket's
/// (v2 LOCAL, v1 UNKNOWN, v2 AF_UNSPEC, AF_UNIX or an unspecified transport).</param>
/// <param name="Description">Complete: what the header said, for the log (<c>v2 PROXY TCP4</c>).</param>
/// <param name="Error">Invalid: why, starting with <c>PROXY header</c>.</param>
internal readonly record struct ProxyHeaderParse(ProxyHeaderStatus Status, int Length, IPEndPoint? Source, string? Description, string? Error)
{
    public static ProxyHeaderParse Incomplete => default;

    public static ProxyHeaderParse Invalid(string error) => new(ProxyHeaderStatus.Invalid, 0, null, null, error);

    public static ProxyHeaderParse Complete(int length, IPEndPoint? source, string description) =>
        new(ProxyHeaderStatus.Complete, length, source, description, null);
}

/// <summary>
/// The PROXY protocol header a load balancer (HAProxy <c>send-proxy</c> / <c>send-proxy-v2</c>, AWS NLB,
/// Envoy) puts before a connection's first byte to say whom it forwards: version 1, one text line
/// (<c>PROXY TCP4 src dst sport dport\r\n</c>, at most 107 bytes), and version 2, a 16-byte binary header and
/// its address block (HAProxy's doc/proxy-protocol.txt). Both are accepted, as the specification recommends.
/// <para>
/// <see cref="Parse"/> is a pure function of the bytes received so far, so a header split anywhere parses alike:
/// it answers <see cref="ProxyHeaderStatus.Incomplete"/> only while every byte given is certainly part of the
/// header (a v1 line before its CRLF, a v2 header before its announced length), which lets the reader consume
/// them without ever taking a byte of the peer's first frame. Strict where the specification is: exact
/// signatures, one space between v1 fields, a CRLF and nothing else to end the line, no leading zeros, known
/// version, command, family and transport nibbles, TLVs that stay inside the header. TLVs are skipped
/// (CRC32C included: a trusted proxy on a TCP connection is what vouches for the header).
/// </para>
/// </summary>
internal static class ProxyProtocol
{
    /// <summary>The longest v1 line, CRLF included (<c>PROXY UNKNOWN</c> with two full IPv6 addresses and ports).</summary>
    public const int MaxV1Length = 107;

    /// <summary>The longest v2 header accepted: the specification sizes both formats to fit the smallest TCP segment every host takes (576 - 40).</summary>
    public const int MaxV2Length = 536;

    /// <summary>The fixed part of a v2 header: signature, version and command, family and transport, length.</summary>
    public const int V2FixedLength = 16;

    private static ReadOnlySpan<byte> V1Prefix => "PROXY "u8;

    private static ReadOnlySpan<byte> V2Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    /// <summary>Parses the header at the start of <paramref name="input"/> (the connection's first bytes, possibly more than the header).</summary>
    public static ProxyHeaderParse Parse(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty) return ProxyHeaderParse.Incomplete;
        if (StartsAsPrefixOf(input, V1Prefix)) return ParseV1(input);
        if (StartsAsPrefixOf(input, V2Signature)) return ParseV2(input);
        return ProxyHeaderParse.Invalid(
            $"PROXY header missing: the connection began with {Hex(input, 8)}, which is neither PROXY protocol v1 (\"PROXY \") nor v2 (0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A)");
    }

    /// <summary>Whether <paramref name="input"/>, as far as it goes, matches the start of <paramref name="signature"/>.</summary>
    private static bool StartsAsPrefixOf(ReadOnlySpan<byte> input, ReadOnlySpan<byte> signature)
    {
        var length = Math.Min(input.Length, signature.Length);
        return input[..length].SequenceEqual(signature[..length]);
    }

    private static ProxyHeaderParse ParseV1(ReadOnlySpan<byte> input)
    {
        var window = input[..Math.Min(input.Length, MaxV1Length)];
        var end = window.IndexOfAny((byte)'\r', (byte)'\n');
        if (end < 0)
            return input.Length >= MaxV1Length
                ? ProxyHeaderParse.Invalid($"PROXY header (v1) has no CRLF within {MaxV1Length} bytes")
                : ProxyHeaderParse.Incomplete;
        if (window[end] == '\n')
            return V1Invalid("its line ends with LF alone, not CRLF");
        if (end + 1 == window.Length)
            return window.Length >= MaxV1Length
                ? ProxyHeaderParse.Invalid($"PROXY header (v1) has no CRLF within {MaxV1Length} bytes")
                : ProxyHeaderParse.Incomplete;
        if (window[end + 1] != '\n')
            return V1Invalid("a CR inside its line is not followed by LF");

        var length = end + 2;
        var line = input[V1Prefix.Length..end];
        // UNKNOWN: the receiver ignores whatever comes before the CRLF and keeps the socket's addresses.
        if (line.SequenceEqual("UNKNOWN"u8) || line.StartsWith("UNKNOWN "u8))
            return ProxyHeaderParse.Complete(length, null, "v1 UNKNOWN");
        foreach (var b in line)
            if (b is < 0x20 or > 0x7E)
                return V1Invalid($"byte {b:X2} is not printable US-ASCII");

        Span<Range> fields = stackalloc Range[5];
        if (SplitExactly(line, (byte)' ', fields) != 5)
            return V1Invalid("expected TCP4 or TCP6, two addresses and two ports, each after exactly one space, or UNKNOWN");
        var family = line[fields[0]];
        AddressFamily expected;
        if (family.SequenceEqual("TCP4"u8)) expected = AddressFamily.InterNetwork;
        else if (family.SequenceEqual("TCP6"u8)) expected = AddressFamily.InterNetworkV6;
        else return V1Invalid($"unknown protocol '{Ascii(family)}' (TCP4, TCP6 or UNKNOWN)");

        if (V1Address(line[fields[1]], expected) is not { } source)
            return V1Invalid($"'{Ascii(line[fields[1]])}' is not a {Ascii(family)} source address");
        if (V1Address(line[fields[2]], expected) is null)
            return V1Invalid($"'{Ascii(line[fields[2]])}' is not a {Ascii(family)} destination address");
        if (V1Port(line[fields[3]]) is not { } sourcePort)
            return V1Invalid($"'{Ascii(line[fields[3]])}' is not a source port (0-65535, no leading zeros)");
        if (V1Port(line[fields[4]]) is null)
            return V1Invalid($"'{Ascii(line[fields[4]])}' is not a destination port (0-65535, no leading zeros)");
        return ProxyHeaderParse.Complete(length, Endpoint(source, sourcePort), $"v1 {Ascii(family)}");
    }

    private static ProxyHeaderParse V1Invalid(string why) => ProxyHeaderParse.Invalid($"PROXY header (v1) malformed: {why}");

    /// <summary>
    /// An address in the canonical text the specification asks for: IPv4 as four decimal numbers 0-255 without
    /// leading zeros (IPAddress.Parse would also take <c>1</c>, <c>0x7f.1</c> or octal), IPv6 in hex digits,
    /// colons and an optional trailing dotted quad, without a scope or brackets.
    /// </summary>
    private static IPAddress? V1Address(ReadOnlySpan<byte> text, AddressFamily family)
    {
        if (text.IsEmpty || text.Length > 45) return null;
        if (family == AddressFamily.InterNetwork)
        {
            Span<Range> parts = stackalloc Range[4];
            if (SplitExactly(text, (byte)'.', parts) != 4) return null;
            Span<byte> octets = stackalloc byte[4];
            for (var i = 0; i < 4; i++)
            {
                if (Decimal(text[parts[i]], 3) is not { } value || value > 255) return null;
                octets[i] = (byte)value;
            }
            return new IPAddress(octets);
        }
        foreach (var b in text)
            if (!(char.IsAsciiHexDigit((char)b) || b is (byte)':' or (byte)'.'))
                return null;
        Span<char> chars = stackalloc char[text.Length];
        for (var i = 0; i < text.Length; i++) chars[i] = (char)text[i];
        return IPAddress.TryParse(chars, out var address) && address.AddressFamily == AddressFamily.InterNetworkV6 ? address : null;
    }

    /// <summary>
    /// Splits at every <paramref name="separator"/> into <paramref name="parts"/>; the number of parts, or -1 when
    /// there are more than it holds or one is empty (two separators in a row, or one at either end).
    /// </summary>
    private static int SplitExactly(ReadOnlySpan<byte> text, byte separator, Span<Range> parts)
    {
        var count = 0;
        var start = 0;
        for (var i = 0; i <= text.Length; i++)
        {
            if (i < text.Length && text[i] != separator) continue;
            if (i == start || count == parts.Length) return -1;
            parts[count++] = start..i;
            start = i + 1;
        }
        return count;
    }

    private static int? V1Port(ReadOnlySpan<byte> text) => Decimal(text, 5) is { } port && port <= 65535 ? port : null;

    /// <summary>A decimal number of at most <paramref name="maxDigits"/> digits, without leading zeros (octal confusion).</summary>
    private static int? Decimal(ReadOnlySpan<byte> text, int maxDigits)
    {
        if (text.IsEmpty || text.Length > maxDigits || (text[0] == '0' && text.Length > 1)) return null;
        var value = 0;
        foreach (var b in text)
        {
            if (!char.IsAsciiDigit((char)b)) return null;
            value = value * 10 + (b - '0');
        }
        return value;
    }

    private static ProxyHeaderParse ParseV2(ReadOnlySpan<byte> input)
    {
        if (input.Length < V2FixedLength) return ProxyHeaderParse.Incomplete;
        var version = input[12] >> 4;
        var command = input[12] & 0x0F;
        var family = input[13] >> 4;
        var transport = input[13] & 0x0F;
        if (version != 2) return V2Invalid($"version {version}, not 2");
        if (command > 1) return V2Invalid($"unknown command {command} (0 LOCAL, 1 PROXY)");
        if (family > 3) return V2Invalid($"unknown address family {family} (0-3)");
        if (transport > 2) return V2Invalid($"unknown transport protocol {transport} (0-2)");
        var length = V2FixedLength + BinaryPrimitives.ReadUInt16BigEndian(input[14..16]);
        if (length > MaxV2Length)
            return ProxyHeaderParse.Invalid($"PROXY header (v2) of {length} bytes is longer than the {MaxV2Length} bytes a header may have");
        if (input.Length < length) return ProxyHeaderParse.Incomplete;

        // LOCAL: the proxy's own connection (a health check); its address block is ignored, as the specification says.
        if (command == 0) return ProxyHeaderParse.Complete(length, null, "v2 LOCAL");

        var block = input[V2FixedLength..length];
        var addresses = family switch { 1 => 12, 2 => 36, 3 => 216, _ => 0 };
        if (block.Length < addresses)
            return V2Invalid($"an address block of {block.Length} bytes is shorter than the {addresses} bytes of its family");
        for (var tlv = block[addresses..]; !tlv.IsEmpty;)
        {
            if (tlv.Length < 3) return V2Invalid($"a TLV of {tlv.Length} bytes is shorter than its 3-byte type and length");
            var next = 3 + BinaryPrimitives.ReadUInt16BigEndian(tlv[1..3]);
            if (next > tlv.Length) return V2Invalid($"TLV type {tlv[0]:X2} of {next - 3} bytes runs past the end of the header");
            tlv = tlv[next..];
        }

        // UNSPEC transport: the specification says to ignore the addresses; AF_UNSPEC and AF_UNIX name no IP peer.
        var kind = $"v2 PROXY {(family, transport) switch { (1, 1) => "TCP4", (1, 2) => "UDP4", (2, 1) => "TCP6", (2, 2) => "UDP6", (3, _) => "UNIX", _ => "UNSPEC" }}";
        if (transport == 0) return ProxyHeaderParse.Complete(length, null, kind);
        return family switch
        {
            1 => ProxyHeaderParse.Complete(length, Endpoint(new IPAddress(block[..4]), BinaryPrimitives.ReadUInt16BigEndian(block[8..10])), kind),
            2 => ProxyHeaderParse.Complete(length, Endpoint(new IPAddress(block[..16]), BinaryPrimitives.ReadUInt16BigEndian(block[32..34])), kind),
            _ => ProxyHeaderParse.Complete(length, null, kind),
        };
    }

    /// <summary>An IPv4 client a dual-stack proxy reports as <c>::ffff:a.b.c.d</c> is that IPv4 address, for the per-address cap and the logs alike.</summary>
    private static IPEndPoint Endpoint(IPAddress address, int port) =>
        new(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address, port);

    private static ProxyHeaderParse V2Invalid(string why) => ProxyHeaderParse.Invalid($"PROXY header (v2) malformed: {why}");

    private static string Ascii(ReadOnlySpan<byte> text) => text.Length > 48 ? Encoding.ASCII.GetString(text[..48]) + "..." : Encoding.ASCII.GetString(text);

    private static string Hex(ReadOnlySpan<byte> bytes, int max) =>
        string.Join(' ', bytes[..Math.Min(bytes.Length, max)].ToArray().Select(b => b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture)));
}
