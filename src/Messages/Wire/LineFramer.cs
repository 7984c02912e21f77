using System.Buffers;

namespace Supervisor.Messages.Wire;

/// <summary>Receives one complete line (without <c>\n</c> or <c>\r\n</c>); returns false to stop feeding.</summary>
public delegate bool LineHandler(ReadOnlySpan<byte> line);

public enum FeedResult
{
    /// <summary>The chunk is consumed; an unfinished line may be held until more bytes arrive.</summary>
    Consumed,
    /// <summary>The handler asked to stop.</summary>
    Stopped,
    /// <summary>A line is longer than the maximum frame length; detected as soon as it is, newline or not.</summary>
    FrameTooLarge,
}

/// <summary>
/// Cuts a byte stream into <c>\n</c>-terminated lines of at most <c>maxFrameLength</c> bytes.
/// An unfinished line is held in a pooled buffer that is returned as soon as the line completes,
/// so an idle connection holds no buffer and a peer streaming without newlines costs at most
/// <c>maxFrameLength</c> bytes before it is refused.
/// </summary>
public sealed class LineFramer : IDisposable
{
    private readonly int _maxFrameLength;
    private readonly Action<int>? _bufferChanged;
    private byte[]? _pending;
    private int _pendingLength;

    public LineFramer(int maxFrameLength) : this(maxFrameLength, null)
    {
    }

    /// <param name="bufferChanged">
    /// Told every change of the memory held for an unfinished line, in bytes (the pooled buffer's whole length:
    /// positive when one is rented or grown, negative when it is returned), so that an owner can keep a budget.
    /// </param>
    public LineFramer(int maxFrameLength, Action<int>? bufferChanged)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxFrameLength);
        _maxFrameLength = maxFrameLength;
        _bufferChanged = bufferChanged;
    }

    /// <summary>Bytes of an unfinished line held now.</summary>
    public int PendingBytes => _pendingLength;

    /// <summary>Memory held for the unfinished line: the pooled buffer's length, 0 when none is held.</summary>
    public int HeldBytes => _pending?.Length ?? 0;

    /// <summary>Throws away the unfinished line and returns its buffer (the connection is being closed).</summary>
    public void Discard() => Reset();

    public FeedResult Feed(ReadOnlySpan<byte> chunk, LineHandler onLine)
    {
        while (!chunk.IsEmpty)
        {
            var newline = chunk.IndexOf((byte)'\n');
            if (newline < 0)
            {
                // A pending line may still shed a trailing '\r', hence the one byte of slack.
                if (_pendingLength + chunk.Length > _maxFrameLength + 1)
                {
                    Reset();
                    return FeedResult.FrameTooLarge;
                }
                Append(chunk);
                return FeedResult.Consumed;
            }

            bool keepGoing;
            if (_pendingLength == 0)
            {
                var line = TrimCarriageReturn(chunk[..newline]);
                if (line.Length > _maxFrameLength) return FeedResult.FrameTooLarge;
                keepGoing = onLine(line);
            }
            else
            {
                if (_pendingLength + newline > _maxFrameLength + 1)
                {
                    Reset();
                    return FeedResult.FrameTooLarge;
                }
                Append(chunk[..newline]);
                var line = TrimCarriageReturn(_pending.AsSpan(0, _pendingLength));
                if (line.Length > _maxFrameLength)
                {
                    Reset();
                    return FeedResult.FrameTooLarge;
                }
                keepGoing = onLine(line);
                Reset();
            }
            chunk = chunk[(newline + 1)..];
            if (!keepGoing) return FeedResult.Stopped;
        }
        return FeedResult.Consumed;
    }

    private static ReadOnlySpan<byte> TrimCarriageReturn(ReadOnlySpan<byte> line) =>
        line.Length > 0 && line[^1] == (byte)'\r' ? line[..^1] : line;

    private void Append(ReadOnlySpan<byte> bytes)
    {
        var needed = _pendingLength + bytes.Length;
        if (_pending is null || _pending.Length < needed)
        {
            var grown = ArrayPool<byte>.Shared.Rent(Math.Min(Math.Max(needed, 256) * 2, _maxFrameLength + 2));
            var released = 0;
            if (_pending is not null)
            {
                _pending.AsSpan(0, _pendingLength).CopyTo(grown);
                released = _pending.Length;
                ArrayPool<byte>.Shared.Return(_pending);
            }
            _pending = grown;
            _bufferChanged?.Invoke(grown.Length - released);
        }
        bytes.CopyTo(_pending.AsSpan(_pendingLength));
        _pendingLength = needed;
    }

    private void Reset()
    {
        if (_pending is not null)
        {
            var released = _pending.Length;
            ArrayPool<byte>.Shared.Return(_pending);
            _pending = null;
            _bufferChanged?.Invoke(-released);
        }
        _pendingLength = 0;
    }

    public void Dispose() => Reset();
}
