using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Supervisor.Messages.Wire;

namespace Supervisor.Tests.Wire;

/// <summary>Property-based tests of the codec and framer, 10,000 cases each.</summary>
public sealed class CodecPropertyTests
{
    private const int Cases = 10_000;
    private const int MaxFrameLength = 256;
    private static readonly Config Checks = Config.QuickThrowOnFailure.WithMaxTest(Cases);

    /// <summary>A stream of wire input: valid frames, broken lines, raw bytes, CRLF endings, over-long lines.</summary>
    private static readonly Gen<byte[]> Streams =
        Gen.OneOf(
                Gen.Choose(0, 3).Select(t => Encoding.UTF8.GetBytes($"{{\"type\":{t},\"timestamp\":{t * 17},\"seq\":{t}}}\n")),
                Gen.Choose(0, 3).Select(t => Encoding.UTF8.GetBytes($"{{\"type\":{t},\"data\":\"x\\u00e9\"}}\r\n")),
                Gen.Elements("nope\n", "{\"type\":9}\n", "[]\n", "\n", "{\"type\":\"0\"}\n", "{\"type\":0\n").Select(Encoding.UTF8.GetBytes),
                ArbMap.Default.GeneratorFor<byte[]>(),
                Gen.Choose(MaxFrameLength - 2, MaxFrameLength + 3).Select(n => Encoding.UTF8.GetBytes(new string('a', n) + "\n")))
            .ArrayOf()
            .Select(parts => parts.SelectMany(p => p).ToArray());

    private sealed record Outcome(IReadOnlyList<string> Lines, FeedResult Result, int Pending);

    /// <summary>Feeds the stream in the given chunk sizes; records every decoded line, in order, and how it ended.</summary>
    private static Outcome Run(byte[] stream, IReadOnlyList<int> cuts)
    {
        using var framer = new FrameReader(JsonLinesCodec.Instance, MaxFrameLength);
        var lines = new List<string>();
        var result = FeedResult.Consumed;
        var offset = 0;
        foreach (var cut in cuts.Append(stream.Length))
        {
            var end = Math.Clamp(cut, offset, stream.Length);
            result = framer.Feed(stream.AsSpan(offset, end - offset), (line, _) =>
            {
                var decoded = JsonLinesCodec.Decode(line);
                lines.Add(decoded.Frame is { } frame ? $"frame {frame}" : $"error {decoded.Error}");
                return decoded.Frame is not null;
            });
            offset = end;
            if (result != FeedResult.Consumed) break;
        }
        return new Outcome(lines, result, framer.PendingBytes);
    }

    [Fact]
    public void A_stream_cut_at_arbitrary_points_must_decode_to_the_same_frames_and_errors_as_uncut()
    {
        var cases = Streams.SelectMany(stream =>
            Gen.Choose(0, Math.Max(0, stream.Length)).ArrayOf().Select(cuts => (stream, cuts: cuts.Order().ToArray())));
        Check.One(Checks, Prop.ForAll(cases.ToArbitrary(), c =>
        {
            var whole = Run(c.stream, []);
            var pieces = Run(c.stream, c.cuts);
            return whole.Lines.SequenceEqual(pieces.Lines) && whole.Result == pieces.Result && whole.Pending == pieces.Pending;
        }));
    }

    [Fact]
    public void No_exception_must_escape_the_codec_or_the_framer_on_arbitrary_bytes()
    {
        Check.One(Checks, Prop.ForAll(ArbMap.Default.ArbFor<byte[]>(), bytes =>
        {
            _ = JsonLinesCodec.Decode(bytes);
            var outcome = Run(bytes, [bytes.Length / 3, bytes.Length / 2]);
            return outcome.Pending <= MaxFrameLength + 1;
        }));
    }

    [Fact]
    public void Every_frame_must_survive_an_encode_decode_round_trip()
    {
        var frames =
            from type in Gen.Choose(0, 3)
            from timestamp in ArbMap.Default.GeneratorFor<long>()
            from data in ArbMap.Default.GeneratorFor<string?>()
            from seq in ArbMap.Default.GeneratorFor<long?>()
            select new Frame((FrameType)type, timestamp, data is null || IsWellFormed(data) ? data : "replaced", seq);
        Check.One(Checks, Prop.ForAll(frames.ToArbitrary(), frame =>
        {
            var bytes = JsonLinesCodec.Encode(frame);
            return bytes.Count(b => b == (byte)'\n') == 1
                && JsonLinesCodec.Decode(bytes.AsSpan(0, bytes.Length - 1)).Frame == frame;
        }));
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
}

/// <summary>Property-based tests of the binary codec through the frame reader: decoding is total, and cutting changes nothing.</summary>
public sealed class BinaryCodecPropertyTests
{
    private const int MaxFrameLength = 256;
    private static readonly Config Checks = Config.QuickThrowOnFailure.WithMaxTest(10_000);

    private static byte[] Prefixed(byte[] body)
    {
        var frame = new byte[4 + body.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        return frame;
    }

    /// <summary>Valid frames, frames with a random body behind a true length, random lengths, raw bytes.</summary>
    private static readonly Gen<byte[]> Streams =
        Gen.OneOf(
                Gen.Choose(0, 3).Select(t => BinaryCodec.Instance.EncodeToArray(new Frame((FrameType)t, t * 17, null, t))),
                Gen.Choose(0, 3).Select(t => BinaryCodec.Instance.EncodeToArray(new Frame((FrameType)t, 1, "xé😀"))),
                ArbMap.Default.GeneratorFor<byte[]>().Select(Prefixed),
                Gen.Choose(0, 12).Select(n => Prefixed(new byte[n])),
                ArbMap.Default.GeneratorFor<byte[]>(),
                Gen.Choose(MaxFrameLength - 2, MaxFrameLength + 3).Select(n => Prefixed(Enumerable.Repeat((byte)0, n).ToArray())))
            .ArrayOf()
            .Select(parts => parts.SelectMany(p => p).ToArray());

    private sealed record Outcome(IReadOnlyList<string> Frames, FeedResult Result, int Pending);

    private static Outcome Run(byte[] stream, IReadOnlyList<int> cuts)
    {
        using var reader = new FrameReader(BinaryCodec.Instance, MaxFrameLength);
        var frames = new List<string>();
        var result = FeedResult.Consumed;
        var offset = 0;
        foreach (var cut in cuts.Append(stream.Length))
        {
            var end = Math.Clamp(cut, offset, stream.Length);
            result = reader.Feed(stream.AsSpan(offset, end - offset), (body, wire) =>
            {
                var ok = BinaryCodec.Instance.TryDecode(body, out var frame, out var error);
                frames.Add(ok ? $"frame {frame.ToFrame()} in {wire} bytes" : $"error {error}");
                return ok;
            });
            offset = end;
            if (result != FeedResult.Consumed) break;
        }
        return new Outcome(frames, result, reader.PendingBytes);
    }

    [Fact]
    public void Every_byte_sequence_must_decode_to_a_frame_or_an_error_and_never_throw()
    {
        Check.One(Checks, Prop.ForAll(ArbMap.Default.ArbFor<byte[]>(), bytes =>
        {
            var decoded = BinaryCodec.Instance.TryDecode(bytes, out _, out var error);
            var outcome = Run(bytes, [bytes.Length / 3, bytes.Length / 2]);
            return (decoded ^ error is not null) && outcome.Pending <= MaxFrameLength + 4;
        }));
    }

    [Fact]
    public void A_stream_cut_at_arbitrary_points_must_decode_to_the_same_frames_and_errors_as_uncut()
    {
        var cases = Streams.SelectMany(stream =>
            Gen.Choose(0, Math.Max(0, stream.Length)).ArrayOf().Select(cuts => (stream, cuts: cuts.Order().ToArray())));
        Check.One(Checks, Prop.ForAll(cases.ToArbitrary(), c =>
        {
            var whole = Run(c.stream, []);
            var pieces = Run(c.stream, c.cuts);
            return whole.Frames.SequenceEqual(pieces.Frames) && whole.Result == pieces.Result && whole.Pending == pieces.Pending;
        }));
    }

    [Fact]
    public void Every_frame_must_survive_an_encode_decode_round_trip_in_both_codecs()
    {
        var frames =
            from type in Gen.Choose(0, 3)
            from timestamp in ArbMap.Default.GeneratorFor<long>()
            from data in ArbMap.Default.GeneratorFor<string?>()
            from seq in ArbMap.Default.GeneratorFor<long?>()
            select new Frame((FrameType)type, timestamp, data is null || !data.Any(char.IsSurrogate) ? data : "replaced", seq);
        Check.One(Checks, Prop.ForAll(frames.ToArbitrary(), frame =>
        {
            var binary = BinaryCodec.Instance.EncodeToArray(frame);
            var json = JsonLinesCodec.Encode(frame);
            return BinaryCodec.Instance.TryDecode(binary.AsSpan(4), out var fromBinary, out _) && fromBinary.ToFrame() == frame
                && JsonLinesCodec.Decode(json.AsSpan(0, json.Length - 1)).Frame == frame;
        }));
    }
}
