using System.Text.Unicode;
using Supervisor.Messages.Wire;

namespace Supervisor.Tests.Hardening.Fuzz;

/// <summary>How a fuzz connection ends once its bytes are sent.</summary>
internal enum Ending
{
    /// <summary>The peer half-closes (FIN, or a WebSocket close frame) and reads until the server closes.</summary>
    Finish,
    /// <summary>The peer resets the connection (RST) once every answer arrived.</summary>
    Reset,
    /// <summary>The peer keeps the connection open, says nothing more, and waits for the server to close it.</summary>
    Hold,
}

/// <summary>
/// One fuzz connection over a byte stream (TCP, TLS): the bytes, the write boundaries they are sent in, and
/// how the connection ends. Built from one seed, so a failing connection reproduces from it alone.
/// </summary>
internal sealed record StreamScript(int Seed, byte[] Bytes, IReadOnlyList<int> WriteCuts, Ending Ending, int Lines, string Summary);

/// <summary>One WebSocket text message as sent: its fragments, and whether the last one ends the message.</summary>
internal sealed record WsMessage(IReadOnlyList<byte[]> Fragments, bool Finished)
{
    public byte[] Bytes => Fragments.SelectMany(f => f).ToArray();
}

/// <summary>One fuzz connection over WebSocket: one generated line per text message.</summary>
internal sealed record WsScript(int Seed, IReadOnlyList<WsMessage> Messages, Ending Ending, string Summary);

/// <summary>What the server must answer to a script (DESIGN §2) and, when it refuses the input, why.</summary>
/// <param name="Responses">The heartbeat responses and data echoes due before the close, in order.</param>
/// <param name="Rejection">The reason the input itself earns (<c>protocol-error</c>, <c>frame-too-large</c>), if any.</param>
/// <param name="RejectionAlternative">A second reason the contract allows for the same input (WebSocket only: see <see cref="FuzzScripts.ModelMessages"/>).</param>
internal sealed record ExpectedOutcome(IReadOnlyList<Frame> Responses, CloseReason? Rejection, string? RejectionError, CloseReason? RejectionAlternative = null)
{
    /// <summary>The close reasons allowed for the connection: the input's, else the one its ending causes.</summary>
    public IReadOnlyList<CloseReason> AllowedReasons(Ending ending, bool webSocket)
    {
        if (Rejection is { } rejection)
            return RejectionAlternative is { } alternative ? [rejection, alternative] : [rejection];
        return ending switch
        {
            Ending.Finish => [CloseReason.PeerClosed],
            Ending.Reset => webSocket ? [CloseReason.PeerReset, CloseReason.PeerClosed] : [CloseReason.PeerReset],
            // A held connection that never completed a valid frame (only an unfinished one, say) meets the
            // first-frame deadline (on by default, before the heartbeat timeout) unless a stall postponed it.
            _ => NoValidFrame ? [CloseReason.FirstFrameTimeout, CloseReason.HeartbeatTimeout] : [CloseReason.HeartbeatTimeout],
        };
    }

    /// <summary>The peer completes no valid frame (byte streams; the first-frame deadline applies).</summary>
    public bool NoValidFrame { get; init; }
}

/// <summary>Scripts of whole fuzz connections, and the model of what the service must answer to them.</summary>
internal static class FuzzScripts
{
    /// <summary>
    /// Most lines of a connection are frames (so the run reaches deep into a connection's life); then, usually,
    /// one hostile line, sometimes more after it (to be drained), and sometimes a frame left unfinished.
    /// Stays under the default frame burst, so <c>rate-limited</c> is never the deserved reason.
    /// </summary>
    private static List<(byte[] Line, string Recipe)> Lines(FrameGrammar grammar, int maxLines)
    {
        var random = grammar.Random;
        var count = random.Next(1, maxLines + 1);
        var hostileAt = random.NextDouble() < 0.75 ? random.Next(count) : -1;
        var lines = new List<(byte[], string)>();
        for (var i = 0; i < count; i++)
        {
            var hostile = hostileAt >= 0 && i >= hostileAt;
            grammar.LineFeedsInWhitespace = hostile;
            GeneratedLine line;
            if (hostile)
                line = grammar.NextLine();
            else
            {
                var attempts = 0;
                do line = grammar.NextLine();
                while ((line.Intent != Intent.Valid || line.Bytes.Length > grammar.MaxFrameLength) && ++attempts < 50);
            }
            lines.Add((line.Bytes, line.Recipe));
        }
        return lines;
    }

    public static StreamScript Stream(int seed, int maxFrameLength, int maxLines, bool mayHold)
    {
        var grammar = new FrameGrammar(seed, maxFrameLength);
        var random = grammar.Random;
        var output = new List<byte>();
        var lines = Lines(grammar, maxLines);
        foreach (var (line, _) in lines)
        {
            output.AddRange(line);
            var roll = random.Next(100);
            output.AddRange(roll switch
            {
                < 80 => "\n"u8.ToArray(),
                < 92 => "\r\n"u8.ToArray(),
                < 94 => "\n\n"u8.ToArray(),      // an empty line
                < 96 => "\r\r\n"u8.ToArray(),    // one CR is trimmed, the other is part of the line
                < 98 => "\r"u8.ToArray(),        // no terminator: joined to the next line
                _ => "\n\r\n"u8.ToArray(),       // an empty line after CR trimming
            });
        }
        var unfinished = random.NextDouble() < 0.15;
        if (unfinished)
        {
            // Half a frame, never finished: the server must hold it without answering or crashing.
            var partial = grammar.NextLine().Bytes;
            output.AddRange(partial.AsSpan(0, random.Next(partial.Length + 1)).ToArray());
        }
        var bytes = output.ToArray();
        var cuts = Enumerable.Range(0, random.Next(0, 4)).Select(_ => random.Next(bytes.Length + 1)).Order().ToArray();
        var expected = ModelStream(bytes, maxFrameLength);
        var ending = expected.Rejection is not null
            ? (random.NextDouble() < 0.7 ? Ending.Hold : Ending.Finish)
            : random.Next(100) switch
            {
                < 75 => Ending.Finish,
                < 92 => Ending.Reset,
                _ => mayHold ? Ending.Hold : Ending.Finish,
            };
        var summary = $"{lines.Count} lines{(unfinished ? " + unfinished frame" : "")}, {bytes.Length} bytes, {ending}; "
            + string.Join(" | ", lines.Select(l => l.Recipe).Where(r => r.Length > 0).Take(4));
        return new StreamScript(seed, bytes, cuts, ending, lines.Count, summary);
    }

    public static WsScript WebSocket(int seed, int maxFrameLength, int maxLines)
    {
        var grammar = new FrameGrammar(seed, maxFrameLength);
        var random = grammar.Random;
        var lines = Lines(grammar, maxLines);
        var messages = new List<WsMessage>();
        foreach (var (line, _) in lines)
        {
            var terminator = random.Next(100) switch { < 70 => ""u8.ToArray(), < 85 => "\n"u8.ToArray(), < 95 => "\r\n"u8.ToArray(), _ => "\r"u8.ToArray() };
            messages.Add(new WsMessage(Fragment(random, [.. line, .. terminator]), Finished: true));
        }
        var unfinished = random.NextDouble() < 0.15;
        if (unfinished)
        {
            var partial = grammar.NextLine().Bytes;
            messages.Add(new WsMessage(Fragment(random, partial.AsSpan(0, random.Next(partial.Length + 1)).ToArray()), Finished: false));
        }
        var expected = ModelMessages(messages, maxFrameLength);
        // WebSocket peers have no application heartbeat deadline (their pings are answered), so none holds.
        var ending = expected.Rejection is not null
            ? (random.NextDouble() < 0.7 ? Ending.Hold : Ending.Finish)
            : random.Next(100) < 85 ? Ending.Finish : Ending.Reset;
        var summary = $"{messages.Count} messages{(unfinished ? " (last unfinished)" : "")}, {ending}; "
            + string.Join(" | ", lines.Select(l => l.Recipe).Where(r => r.Length > 0).Take(4));
        return new WsScript(seed, messages, ending, summary);
    }

    private static IReadOnlyList<byte[]> Fragment(Random random, byte[] message)
    {
        if (message.Length < 2 || random.NextDouble() < 0.7) return [message];
        var cut = random.Next(1, message.Length);
        return [message[..cut], message[cut..]];
    }

    /// <summary>
    /// What a line-framed transport must answer to <paramref name="stream"/>: the frames before the first line
    /// the codec refuses or the framer finds too long, then that refusal. Uses the product's framer and codec,
    /// whose own properties are checked on their own (CodecFuzzTests); here the question is whether the
    /// transports act on them.
    /// </summary>
    public static ExpectedOutcome ModelStream(byte[] stream, int maxFrameLength)
    {
        using var framer = new FrameReader(JsonLinesCodec.Instance, maxFrameLength);
        var responses = new List<Frame>();
        string? error = null;
        var frames = 0;
        var result = framer.Feed(stream, (line, _) =>
        {
            if (!TryDecode(line, out var frame, out error)) return false;
            frames++;
            Respond(frame.ToFrame(), responses);
            return true;
        });
        return result switch
        {
            FeedResult.Stopped => new ExpectedOutcome(responses, CloseReason.ProtocolError, error),
            FeedResult.FrameTooLarge => new ExpectedOutcome(responses, CloseReason.FrameTooLarge, "frame longer than max-frame-length"),
            _ => new ExpectedOutcome(responses, null, null) { NoValidFrame = frames == 0 },
        };
    }

    /// <summary>
    /// What the WebSocket transport must answer: each finished text message is one frame (a trailing
    /// <c>\n</c> or <c>\r\n</c> allowed). A message that is not UTF-8 is refused by the WebSocket layer itself
    /// (close status 1007), which is a <c>protocol-error</c>; when such a message is also too long, the
    /// WebSocket layer or the length check may see it first, so either reason is allowed.
    /// </summary>
    public static ExpectedOutcome ModelMessages(IReadOnlyList<WsMessage> messages, int maxFrameLength)
    {
        var responses = new List<Frame>();
        foreach (var message in messages)
        {
            var bytes = message.Bytes;
            var tooLong = bytes.Length > maxFrameLength + 2 || (message.Finished && Trim(bytes).Length > maxFrameLength);
            if (!IsUtf8(bytes, message.Finished))
                return new ExpectedOutcome(responses, CloseReason.ProtocolError, "invalid WebSocket input", tooLong ? CloseReason.FrameTooLarge : null);
            if (tooLong)
                return new ExpectedOutcome(responses, CloseReason.FrameTooLarge, "frame longer than max-frame-length");
            if (!message.Finished) break;
            if (!TryDecode(Trim(bytes), out var frame, out var error))
                return new ExpectedOutcome(responses, CloseReason.ProtocolError, error);
            Respond(frame.ToFrame(), responses);
        }
        return new ExpectedOutcome(responses, null, null);
    }

    /// <summary>Marks the refusal the model expects where the codec itself throws (a codec bug, see CodecFuzzTests).</summary>
    public const string CodecThrew = "codec threw: ";

    /// <summary>
    /// The product's decoding; where it throws (a bug its own tests report), the contract's answer instead:
    /// "every byte sequence decodes to a frame or to a protocol error" (issue 12).
    /// </summary>
    private static bool TryDecode(ReadOnlySpan<byte> line, out DecodedFrame frame, out string? error)
    {
        try
        {
            return JsonLinesCodec.TryDecode(line, out frame, out error);
        }
        catch (Exception e)
        {
            frame = default;
            error = CodecThrew + e.GetType().Name;
            return false;
        }
    }

    /// <summary>Valid UTF-8; for a message still unfinished, a sequence cut at its end is not (yet) invalid.</summary>
    private static bool IsUtf8(byte[] bytes, bool finished)
    {
        var chars = new char[bytes.Length + 1];
        return Utf8.ToUtf16(bytes, chars, out _, out _, replaceInvalidSequences: false, isFinalBlock: finished) != System.Buffers.OperationStatus.InvalidData;
    }

    private static ReadOnlySpan<byte> Trim(ReadOnlySpan<byte> message)
    {
        if (message.Length > 0 && message[^1] == (byte)'\n') message = message[..^1];
        if (message.Length > 0 && message[^1] == (byte)'\r') message = message[..^1];
        return message;
    }

    /// <summary>DESIGN §2: a heartbeat is answered with its seq, data is echoed, the other types get nothing.</summary>
    private static void Respond(Frame frame, List<Frame> responses)
    {
        switch (frame.Type)
        {
            case FrameType.Heartbeat: responses.Add(Frame.HeartbeatResponse(0, frame.Seq)); break;
            case FrameType.Data: responses.Add(frame with { Timestamp = 0 }); break;
        }
    }
}
