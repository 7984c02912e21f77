using System.Net;
using System.Text;
using Supervisor.Transport;
using Xunit.Abstractions;

namespace Supervisor.Tests.Hardening;

/// <summary>
/// The PROXY header parser on what real balancers send and on what a hostile or broken peer sends: every
/// header parses alike however it is split, never consumes a byte past its end, and every defect is named.
/// </summary>
public sealed class ProxyProtocolParserTests(ITestOutputHelper output)
{
    private static readonly IPEndPoint Client4 = IPEndPoint.Parse("203.0.113.7:51234");
    private static readonly IPEndPoint Server4 = IPEndPoint.Parse("10.0.0.5:8081");
    private static readonly IPEndPoint Client6 = IPEndPoint.Parse("[2001:db8::7]:51234");
    private static readonly IPEndPoint Server6 = IPEndPoint.Parse("[2001:db8::5]:8081");
    private static readonly byte[] FirstFrame = Encoding.UTF8.GetBytes("{\"type\":0,\"timestamp\":1,\"seq\":1}\n");

    public static TheoryData<string, byte[], string?> ValidHeaders => new()
    {
        { "v1 TCP4", ProxyHeaders.V1(Client4, Server4), "203.0.113.7:51234" },
        { "v1 TCP6", ProxyHeaders.V1(Client6, Server6), "[2001:db8::7]:51234" },
        { "v1 TCP4 widest", Encoding.ASCII.GetBytes("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"), "255.255.255.255:65535" },
        { "v1 TCP6 IPv4-mapped", Encoding.ASCII.GetBytes("PROXY TCP6 ::ffff:192.0.2.1 ::1 0 1\r\n"), "192.0.2.1:0" },
        { "v1 UNKNOWN short", Encoding.ASCII.GetBytes("PROXY UNKNOWN\r\n"), null },
        { "v1 UNKNOWN longest (107 bytes)", Encoding.ASCII.GetBytes("PROXY UNKNOWN " + new string('f', 39) + " " + new string('f', 39) + " 65535 65535\r\n"), null },
        { "v2 TCP4", ProxyHeaders.V2(Client4, Server4), "203.0.113.7:51234" },
        { "v2 TCP6", ProxyHeaders.V2(Client6, Server6), "[2001:db8::7]:51234" },
        { "v2 TCP4 with TLVs (ALPN, authority, AWS VPC endpoint)", ProxyHeaders.V2(Client4, Server4,
            (0x01, "h2"u8.ToArray()), (0x02, "example.com"u8.ToArray()), (0xEA, "\u0001vpce-0123456789abcdef"u8.ToArray())), "203.0.113.7:51234" },
        { "v2 TCP4 padded to 536 bytes", ProxyHeaders.V2(Client4, Server4, (0x04, new byte[536 - 16 - 12 - 3])), "203.0.113.7:51234" },
        { "v2 LOCAL", ProxyHeaders.V2Local(), null },
        { "v2 LOCAL without addresses", ProxyHeaders.V2Raw(0x20, 0x00, []), null },
        { "v2 UNIX stream", ProxyHeaders.V2Raw(0x21, 0x31, new byte[216]), null },
        { "v2 AF_UNSPEC", ProxyHeaders.V2Raw(0x21, 0x00, []), null },
        { "v2 TCP4 family with UNSPEC transport", ProxyHeaders.V2Raw(0x21, 0x10, new byte[12]), null },
    };

    [Theory]
    [MemberData(nameof(ValidHeaders))]
    public void A_valid_header_must_parse_alike_at_every_split_and_never_claim_a_byte_of_the_first_frame(string name, byte[] header, string? source)
    {
        byte[] input = [.. header, .. FirstFrame];
        for (var seen = 0; seen <= input.Length; seen++)
        {
            var parse = ProxyProtocol.Parse(input.AsSpan(0, seen));
            if (seen < header.Length)
            {
                // Incomplete is the promise that every byte seen is header: the reader consumes them all.
                Assert.True(parse.Status == ProxyHeaderStatus.Incomplete, $"{name}: {seen} of {header.Length} bytes gave {parse.Status} {parse.Error}");
                continue;
            }
            Assert.True(parse.Status == ProxyHeaderStatus.Complete, $"{name}: {seen} bytes gave {parse.Status} {parse.Error}");
            Assert.Equal(header.Length, parse.Length);
            Assert.Equal(source, parse.Source?.ToString());
        }
        output.WriteLine($"{name}: {header.Length} bytes, {ProxyProtocol.Parse(input).Description}");
    }

    public static TheoryData<string, byte[], string> HostileInput => new()
    {
        { "a json-lines frame", FirstFrame, "PROXY header missing: the connection began with 7B 22 74 79 70 65 22 3A" },
        { "an HTTP request", "GET / HTTP/1.1\r\n"u8.ToArray(), "PROXY header missing" },
        { "a TLS ClientHello", [0x16, 0x03, 0x01, 0x02, 0x00], "PROXY header missing: the connection began with 16 03 01 02 00" },
        { "lower-case proxy", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"u8.ToArray(), "PROXY header missing" },
        { "PROXY without its space", "PROXY\r\n"u8.ToArray(), "PROXY header missing" },
        { "v2 signature wrong in its last byte", [.. ProxyHeaders.V2Signature[..11], 0x0B, 0x21, 0x11, 0, 0], "PROXY header missing" },
        { "v1 line ended by LF alone", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"u8.ToArray(), "ends with LF alone" },
        { "v1 line with a CR inside", "PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n"u8.ToArray(), "CR inside its line is not followed by LF" },
        { "v1 line without CRLF in 107 bytes", Encoding.ASCII.GetBytes("PROXY UNKNOWN " + new string('x', 93)), "no CRLF within 107 bytes" },
        { "v1 line of 108 bytes", Encoding.ASCII.GetBytes("PROXY UNKNOWN " + new string('x', 92) + "\r\n"), "no CRLF within 107 bytes" },
        { "v1 two spaces", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"u8.ToArray(), "exactly one space" },
        { "v1 trailing space", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"u8.ToArray(), "exactly one space" },
        { "v1 a field short", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"u8.ToArray(), "exactly one space" },
        { "v1 a field more", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"u8.ToArray(), "exactly one space" },
        { "v1 unknown protocol", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"u8.ToArray(), "unknown protocol 'UDP4'" },
        { "v1 octet past 255", "PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n"u8.ToArray(), "'256.2.3.4' is not a TCP4 source address" },
        { "v1 octet with a leading zero (octal?)", "PROXY TCP4 010.2.3.4 5.6.7.8 1 2\r\n"u8.ToArray(), "'010.2.3.4' is not a TCP4 source address" },
        { "v1 short IPv4 form", "PROXY TCP4 127.1 5.6.7.8 1 2\r\n"u8.ToArray(), "'127.1' is not a TCP4 source address" },
        { "v1 IPv6 under TCP4", "PROXY TCP4 ::1 5.6.7.8 1 2\r\n"u8.ToArray(), "'::1' is not a TCP4 source address" },
        { "v1 IPv4 under TCP6", "PROXY TCP6 1.2.3.4 ::1 1 2\r\n"u8.ToArray(), "'1.2.3.4' is not a TCP6 source address" },
        { "v1 bracketed IPv6", "PROXY TCP6 [::1] ::1 1 2\r\n"u8.ToArray(), "'[::1]' is not a TCP6 source address" },
        { "v1 IPv6 with a scope", "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"u8.ToArray(), "not a TCP6 source address" },
        { "v1 bad destination", "PROXY TCP4 1.2.3.4 5.6.7 1 2\r\n"u8.ToArray(), "'5.6.7' is not a TCP4 destination address" },
        { "v1 port past 65535", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"u8.ToArray(), "'65536' is not a source port" },
        { "v1 port with a leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n"u8.ToArray(), "'080' is not a destination port" },
        { "v1 negative port", "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"u8.ToArray(), "'-1' is not a source port" },
        { "v1 NUL in the line", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n"u8.ToArray(), "byte 00 is not printable" },
        { "v1 UTF-8 in the line", "PROXY TCP4 1.2.3.4 5.6.7.8 1 ２\r\n"u8.ToArray(), "is not printable" },
        { "v2 version 1", ProxyHeaders.V2Raw(0x11, 0x11, new byte[12]), "(v2) malformed: version 1, not 2" },
        { "v2 command 2", ProxyHeaders.V2Raw(0x22, 0x11, new byte[12]), "unknown command 2" },
        { "v2 family 4", ProxyHeaders.V2Raw(0x21, 0x41, new byte[12]), "unknown address family 4" },
        { "v2 transport 3", ProxyHeaders.V2Raw(0x21, 0x13, new byte[12]), "unknown transport protocol 3" },
        { "v2 length past 536", ProxyHeaders.V2Raw(0x21, 0x11, [], announcedLength: 521), "(v2) of 537 bytes is longer than the 536 bytes" },
        { "v2 length 65535", ProxyHeaders.V2Raw(0x21, 0x11, [], announcedLength: 65535), "(v2) of 65551 bytes is longer" },
        { "v2 TCP4 block short of its addresses", ProxyHeaders.V2Raw(0x21, 0x11, new byte[8]), "address block of 8 bytes is shorter than the 12 bytes" },
        { "v2 TCP6 block short of its addresses", ProxyHeaders.V2Raw(0x21, 0x21, new byte[12]), "address block of 12 bytes is shorter than the 36 bytes" },
        { "v2 TLV running past the header", ProxyHeaders.V2Raw(0x21, 0x11, [.. new byte[12], 0x02, 0x00, 0x09, 0x61]), "TLV type 02 of 9 bytes runs past the end" },
        { "v2 TLV cut inside its length", ProxyHeaders.V2Raw(0x21, 0x11, [.. new byte[12], 0x02, 0x00]), "TLV of 2 bytes is shorter than its 3-byte type and length" },
    };

    [Theory]
    [MemberData(nameof(HostileInput))]
    public void Hostile_input_must_be_refused_with_a_reason_that_names_the_defect(string name, byte[] input, string expected)
    {
        var parse = ProxyProtocol.Parse(input);
        Assert.True(parse.Status == ProxyHeaderStatus.Invalid, $"{name}: {parse.Status}");
        Assert.Contains(expected, parse.Error);
        Assert.StartsWith("PROXY header", parse.Error);
        output.WriteLine($"{name}: {parse.Error}");
        // Split anywhere, a prefix is never taken for a whole header: it waits (all of it header) or is refused.
        for (var seen = 0; seen < input.Length; seen++)
            Assert.NotEqual(ProxyHeaderStatus.Complete, ProxyProtocol.Parse(input.AsSpan(0, seen)).Status);
    }

    [Fact]
    public void Truncated_headers_must_wait_for_more_rather_than_pass_or_fail()
    {
        byte[][] truncated =
        [
            "P"u8.ToArray(), "PROXY "u8.ToArray(), "PROXY TCP4 1.2.3.4 5.6.7.8 1 2"u8.ToArray(), "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"u8.ToArray(),
            ProxyHeaders.V2Signature[..1], ProxyHeaders.V2Signature, ProxyHeaders.V2(Client4, Server4)[..15], ProxyHeaders.V2(Client6, Server6)[..51],
        ];
        foreach (var input in truncated)
            Assert.Equal(ProxyHeaderStatus.Incomplete, ProxyProtocol.Parse(input).Status);
    }

    [Fact]
    public void Random_and_mutated_bytes_must_never_throw_nor_claim_more_than_they_hold()
    {
        var seed = Environment.GetEnvironmentVariable("SUPERVISOR_FUZZ_SEED") is { } text && int.TryParse(text, out var s) ? s : 1414;
        var random = new Random(seed);
        byte[][] valid = [ProxyHeaders.V1(Client4, Server4), ProxyHeaders.V1(Client6, Server6), ProxyHeaders.V2(Client4, Server4, (0x05, new byte[16])), ProxyHeaders.V2(Client6, Server6)];
        var outcomes = new Dictionary<ProxyHeaderStatus, int>();
        for (var i = 0; i < 50_000; i++)
        {
            byte[] input;
            if (i % 2 == 0)
            {
                input = (byte[])valid[random.Next(valid.Length)].Clone();
                for (var flips = random.Next(1, 4); flips > 0; flips--) input[random.Next(input.Length)] = (byte)random.Next(256);
                input = input[..random.Next(1, input.Length + 1)];
            }
            else
            {
                input = new byte[random.Next(1, 600)];
                random.NextBytes(input);
                if (random.Next(2) == 0) ProxyHeaders.V2Signature.AsSpan(0, Math.Min(12, input.Length)).CopyTo(input);
            }
            var parse = ProxyProtocol.Parse(input);
            outcomes[parse.Status] = outcomes.GetValueOrDefault(parse.Status) + 1;
            switch (parse.Status)
            {
                case ProxyHeaderStatus.Complete:
                    Assert.InRange(parse.Length, 15, Math.Min(input.Length, ProxyProtocol.MaxV2Length));
                    break;
                case ProxyHeaderStatus.Incomplete:
                    Assert.True(input.Length < ProxyProtocol.MaxV2Length, $"seed {seed}: {input.Length} bytes still incomplete");
                    break;
                default:
                    Assert.StartsWith("PROXY header", parse.Error);
                    break;
            }
        }
        output.WriteLine($"seed {seed}: {string.Join(", ", outcomes.Select(o => $"{o.Key} {o.Value}"))}");
    }
}
