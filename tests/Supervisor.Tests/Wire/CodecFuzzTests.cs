using System.Diagnostics;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Hardening.Fuzz;
using Xunit.Abstractions;

namespace Supervisor.Tests.Wire;

/// <summary>
/// The codec and the framer against the grammar-aware generator (<see cref="FrameGrammar"/>): decoding is total
/// (every line is a frame or an error, never an exception), a frame the contract defines decodes to exactly
/// itself, input it refuses decodes to an error, and a stream frames the same however it is cut.
/// Seeded: a failure prints the run seed and the case; <c>SUPERVISOR_FUZZ_SEED</c> replays it.
/// </summary>
public sealed class CodecFuzzTests(ITestOutputHelper output)
{
    private const int MaxFrameLength = 512;
    private const int ReportedFailures = 8;

    /// <summary>Every prefix of this many lines: most prefixes are broken JSON, the codec's slowest path (an exception each).</summary>
    private const int PrefixLines = 800;

    /// <summary>Streams framed at every cut point (and byte by byte): the cost grows with the square of a stream's length.</summary>
    private const int CutStreams = 600;

    [Fact]
    public void Every_generated_line_must_decode_to_its_frame_or_to_an_error_and_never_throw()
    {
        var seed = FrameFuzzing.Seed(1201);
        var cases = Math.Max(100_000, FrameFuzzing.Frames(100_000));
        var failures = new FailureKinds();
        int valid = 0, invalid = 0, open = 0, accepted = 0;
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < cases; i++)
        {
            var caseSeed = FrameFuzzing.CaseSeed(seed, i);
            var line = new FrameGrammar(caseSeed, MaxFrameLength).NextLine();
            switch (line.Intent)
            {
                case Intent.Valid: valid++; break;
                case Intent.Invalid: invalid++; break;
                default: open++; break;
            }
            var (problem, decoded) = Check(line);
            if (problem is null)
            {
                if (decoded) accepted++;
                continue;
            }
            failures.Add(problem, () =>
            {
                var throws = Totality(line.Bytes) is not null;
                var shrunk = throws ? FrameFuzzing.Shrink(line.Bytes, bytes => Totality(bytes) is not null) : null;
                return $"case {i} (case seed {caseSeed}): {problem}\n    line: {line}"
                    + (shrunk is not null ? $"\n    smallest line that still throws: {FrameFuzzing.Escape(shrunk)}" : "");
            });
        }
        output.WriteLine($"seed {seed}: {cases} lines ({valid} valid, {invalid} invalid, {open} open by contract; {accepted} decoded to frames) in {watch.ElapsedMilliseconds} ms");
        output.WriteLine(failures.Summary);
        Assert.True(failures.Count == 0, $"seed {seed} (SUPERVISOR_FUZZ_SEED={seed} replays it): {failures.Count} of {cases} lines failed\n" + failures.Summary);
    }

    [Fact]
    public void Every_prefix_of_a_generated_line_must_decode_to_a_frame_or_an_error()
    {
        var seed = FrameFuzzing.Seed(1202);
        var failures = new FailureKinds();
        var prefixes = 0;
        for (var i = 0; i < PrefixLines; i++)
        {
            var line = new FrameGrammar(FrameFuzzing.CaseSeed(seed, i), MaxFrameLength).NextLine();
            for (var length = 0; length <= line.Bytes.Length; length++, prefixes++)
            {
                if (Totality(line.Bytes[..length]) is not { } problem) continue;
                failures.Add(problem, () => $"case {i}, prefix {length}: {problem}: {FrameFuzzing.Escape(line.Bytes.AsSpan(0, length))}");
                break;
            }
        }
        output.WriteLine($"seed {seed}: {prefixes} prefixes of {PrefixLines} lines");
        Assert.True(failures.Count == 0, $"seed {seed}: {failures.Count} lines had a failing prefix\n" + failures.Summary);
    }

    [Fact]
    public void A_generated_stream_must_frame_the_same_at_every_cut_point_as_the_line_model_says()
    {
        var seed = FrameFuzzing.Seed(1203);
        var failures = new List<string>();
        long runs = 0;
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < CutStreams && failures.Count < ReportedFailures; i++)
        {
            var script = FuzzScripts.Stream(FrameFuzzing.CaseSeed(seed, i), MaxFrameLength, maxLines: 6, mayHold: false);
            var stream = script.Bytes;
            var model = LineModel(stream);
            var whole = Run(stream, []);
            if (whole != model)
            {
                failures.Add($"case {i}: uncut {whole} but the line model says {model}: {FrameFuzzing.Escape(stream)}");
                continue;
            }
            for (var cut = 0; cut <= stream.Length && failures.Count < ReportedFailures; cut++, runs++)
            {
                var pieces = Run(stream, [cut]);
                if (pieces != whole)
                    failures.Add($"case {i}, cut at {cut}: {pieces} but uncut {whole}: {FrameFuzzing.Escape(stream)}");
            }
            // Byte by byte: the framer's slowest path, one read per byte.
            var single = Run(stream, Enumerable.Range(1, stream.Length).ToArray());
            runs++;
            if (single != whole)
                failures.Add($"case {i}, byte by byte: {single} but uncut {whole}: {FrameFuzzing.Escape(stream)}");
        }
        output.WriteLine($"seed {seed}: {runs} framer runs over {CutStreams} streams in {watch.ElapsedMilliseconds} ms");
        Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
    }

    /// <summary>
    /// Failures grouped by kind (the problem up to its first digit or quote, so one bug is one kind however many
    /// lines hit it), with the first example of each kind: a report that names every bug found, not the first eight lines of one.
    /// </summary>
    private sealed class FailureKinds
    {
        private readonly Dictionary<string, (int Count, string Example)> _kinds = [];

        public int Count { get; private set; }

        public void Add(string problem, Func<string> example)
        {
            Count++;
            var kind = new string(problem.TakeWhile(c => !char.IsDigit(c) && c != '\'' && c != '(').ToArray()).Trim();
            _kinds[kind] = _kinds.TryGetValue(kind, out var known) ? (known.Count + 1, known.Example)
                : _kinds.Count < ReportedFailures ? (1, example()) : (1, "");
        }

        public string Summary => string.Join("\n", _kinds.Select(k => $"{k.Value.Count} x {k.Key}\n  e.g. {k.Value.Example}"));
    }

    /// <summary>What is wrong with how the codec handled <paramref name="line"/> (null: nothing), and whether it decoded to a frame.</summary>
    private static (string? Problem, bool Decoded) Check(GeneratedLine line)
    {
        try
        {
            var problem = CheckDecoding(line, out var ok);
            return (problem, ok);
        }
        catch (Exception e)
        {
            return ($"threw {e.GetType().Name}: {e.Message}", false);
        }
    }

    private static string? CheckDecoding(GeneratedLine line, out bool ok)
    {
        ok = JsonLinesCodec.TryDecode(line.Bytes, out var value, out var error);
        var decoded = JsonLinesCodec.Decode(line.Bytes);
        if (ok != decoded.Frame is not null || (ok && value.ToFrame() != decoded.Frame) || (!ok && error != decoded.Error))
            return $"TryDecode ({(ok ? value.ToFrame() : error)}) and Decode ({decoded}) disagree";
        if (!ok && string.IsNullOrEmpty(error)) return "refused without saying why";
        if (ok)
        {
            var frame = value.ToFrame();
            if (frame.Type is < FrameType.Heartbeat or > FrameType.ErrorNotice) return $"decoded an unknown type {frame.Type}";
            if (frame.Data is { } data && !IsWellFormed(data)) return "decoded data that is no text (an unpaired surrogate)";
            var again = JsonLinesCodec.Decode(JsonLinesCodec.Encode(frame).AsSpan()[..^1]);
            if (again.Frame != frame) return $"decoded {frame}, which does not survive encode and decode ({again})";
        }
        return line.Intent switch
        {
            Intent.Valid when !ok => $"refused a frame the contract defines ({error}); expected {line.Frame}",
            Intent.Valid when value.ToFrame() != line.Frame => $"decoded {value.ToFrame()}, expected {line.Frame}",
            Intent.Invalid when ok => $"accepted input the contract refuses, as {value.ToFrame()}",
            _ => null,
        };
    }

    /// <summary>The exception decoding throws, as text, or null when it returns.</summary>
    private static string? Totality(byte[] line)
    {
        try
        {
            JsonLinesCodec.TryDecode(line, out _, out _);
            JsonLinesCodec.Decode(line);
            return null;
        }
        catch (Exception e)
        {
            return $"threw {e.GetType().Name}: {e.Message}";
        }
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

    private sealed record Outcome(string Lines, FeedResult Result, int Pending)
    {
        public override string ToString() => $"{Result} after [{Lines}], {Pending} bytes pending";
    }

    /// <summary>Feeds the stream cut at <paramref name="cuts"/>; records every line's decoding and how it ended.</summary>
    private static Outcome Run(byte[] stream, IReadOnlyList<int> cuts)
    {
        using var framer = new FrameReader(JsonLinesCodec.Instance, MaxFrameLength);
        var lines = new List<string>();
        var result = FeedResult.Consumed;
        var offset = 0;
        foreach (var cut in cuts.Append(stream.Length))
        {
            var end = Math.Clamp(cut, offset, stream.Length);
            result = framer.Feed(stream.AsSpan(offset, end - offset), (line, _) => Decoded(line, lines));
            offset = end;
            if (result != FeedResult.Consumed) break;
        }
        return new Outcome(string.Join(" ; ", lines), result, result == FeedResult.Consumed ? framer.PendingBytes : 0);
    }

    /// <summary>
    /// Framing as DESIGN §2 states it, without the framer: lines end at <c>\n</c>, one trailing <c>\r</c> is
    /// not part of the line, a line longer than the limit (or an unfinished one longer than it can still become)
    /// is too large, and the first line that is not a frame stops the stream.
    /// </summary>
    private static Outcome LineModel(byte[] stream)
    {
        var lines = new List<string>();
        var start = 0;
        while (true)
        {
            var newline = Array.IndexOf(stream, (byte)'\n', start);
            if (newline < 0)
            {
                var pending = stream.Length - start;
                return pending > MaxFrameLength + 1
                    ? new Outcome(string.Join(" ; ", lines), FeedResult.FrameTooLarge, 0)
                    : new Outcome(string.Join(" ; ", lines), FeedResult.Consumed, pending);
            }
            var line = stream.AsSpan(start, newline - start);
            if (line.Length > 0 && line[^1] == (byte)'\r') line = line[..^1];
            if (line.Length > MaxFrameLength) return new Outcome(string.Join(" ; ", lines), FeedResult.FrameTooLarge, 0);
            if (!Decoded(line, lines)) return new Outcome(string.Join(" ; ", lines), FeedResult.Stopped, 0);
            start = newline + 1;
        }
    }

    private static bool Decoded(ReadOnlySpan<byte> line, List<string> lines)
    {
        // A line the codec throws on is CodecFuzzTests' first test's finding; here it counts as a refusal,
        // so that the framing itself is still compared.
        bool ok;
        DecodedFrame frame;
        string? error;
        try { ok = JsonLinesCodec.TryDecode(line, out frame, out error); }
        catch (Exception e) { (ok, frame, error) = (false, default, $"threw {e.GetType().Name}"); }
        lines.Add(ok ? frame.ToFrame().ToString() : $"error {error}");
        return ok;
    }
}
