using System.Buffers;

namespace Supervisor.Messages.Wire;

/// <summary>Receives one complete frame body (as <see cref="IFrameCodec.TryDecode"/> takes it) and its length on the wire; returns false to stop feeding.</summary>
public delegate bool FrameHandler(ReadOnlySpan<byte> body, int wireLength);

/// <summary>
/// <see cref="FrameHandler"/> as an interface: a connection object that implements it is fed without a delegate of its
/// own (64 B for each of tens of thousands of connections).
/// </summary>
public interface IFrameSink
{
    /// <summary>As <see cref="FrameHandler"/>: one complete frame body and its length on the wire; false stops feeding.</summary>
    bool OnFrame(ReadOnlySpan<byte> body, int wireLength);
}

/// <summary>Told every change of the memory a <see cref="FrameReader"/> holds for an unfinished frame (see its constructor).</summary>
public interface IFrameBufferObserver
{
    /// <summary>The change in bytes: positive when a pooled buffer is rented or grown, negative when it is returned.</summary>
    void BufferChanged(int bytes);
}

/// <summary>How <see cref="FrameReader.Feed"/> ended.</summary>
public enum FeedResult
{
    /// <summary>The chunk is consumed; an unfinished frame may be held until more bytes arrive.</summary>
    Consumed,
    /// <summary>The handler asked to stop.</summary>
    Stopped,
    /// <summary>A frame is longer than the maximum frame length; detected as soon as it is (a newline or a length prefix seen or not).</summary>
    FrameTooLarge,
}

/// <summary>
/// Cuts a byte stream into frames of at most <c>maxFrameLength</c> bytes as its codec delimits them.
/// A frame that lies whole in a chunk is handed over where it lies; an unfinished one is held in a pooled buffer
/// that is returned as soon as the frame completes, so an idle connection holds no buffer and a peer that never
/// finishes a frame costs at most the codec's <see cref="IFrameCodec.MaxWireLength"/> before it is refused.
/// </summary>
public sealed class FrameReader : IDisposable
{
    private readonly IFrameCodec _codec;
    private readonly int _maxFrameLength;
    private readonly int _maxWireLength;
    private readonly IFrameBufferObserver? _observer;
    private byte[]? _pending;
    private int _pendingLength;

    /// <summary>A reader for one connection that speaks <paramref name="codec"/> and accepts frame bodies of at most <paramref name="maxFrameLength"/> bytes.</summary>
    public FrameReader(IFrameCodec codec, int maxFrameLength) : this(codec, maxFrameLength, (IFrameBufferObserver?)null)
    {
    }

    /// <summary>As <see cref="FrameReader(IFrameCodec, int)"/>, reporting the memory it holds to <paramref name="bufferChanged"/>.</summary>
    /// <param name="codec">The wire format.</param>
    /// <param name="maxFrameLength">The longest frame body accepted (max-frame-length).</param>
    /// <param name="bufferChanged">
    /// Told every change of the memory held for an unfinished frame, in bytes (the pooled buffer's whole length:
    /// positive when one is rented or grown, negative when it is returned), so that an owner can keep a budget.
    /// </param>
    public FrameReader(IFrameCodec codec, int maxFrameLength, Action<int>? bufferChanged)
        : this(codec, maxFrameLength, bufferChanged is null ? null : new DelegateObserver(bufferChanged))
    {
    }

    /// <summary>As <see cref="FrameReader(IFrameCodec, int, Action{int})"/>, telling <paramref name="observer"/> instead of a delegate.</summary>
    public FrameReader(IFrameCodec codec, int maxFrameLength, IFrameBufferObserver? observer)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxFrameLength);
        _codec = codec;
        _maxFrameLength = maxFrameLength;
        _maxWireLength = codec.MaxWireLength(maxFrameLength);
        _observer = observer;
    }

    /// <summary>The wire format the reader cuts frames by.</summary>
    public IFrameCodec Codec => _codec;

    /// <summary>Bytes of an unfinished frame held now.</summary>
    public int PendingBytes => _pendingLength;

    /// <summary>Memory held for the unfinished frame: the pooled buffer's length, 0 when none is held.</summary>
    public int HeldBytes => _pending?.Length ?? 0;

    /// <summary>Throws away the unfinished frame and returns its buffer (the connection is being closed).</summary>
    public void Discard() => Reset();

    /// <summary>
    /// Hands every frame that <paramref name="chunk"/> completes to <paramref name="onFrame"/>, in order, and keeps an
    /// unfinished one for the next chunk. The body span is valid only during the call. Stops at the first frame that is
    /// too large (its owner closes the connection with <c>frame-too-large</c>) or when the handler returns false.
    /// </summary>
    public FeedResult Feed(ReadOnlySpan<byte> chunk, FrameHandler onFrame) => Feed(chunk, new HandlerSink(onFrame));

    /// <summary>As <see cref="Feed(ReadOnlySpan{byte}, FrameHandler)"/>, handing the frames to <paramref name="sink"/>.</summary>
    public FeedResult Feed<TSink>(ReadOnlySpan<byte> chunk, TSink sink) where TSink : IFrameSink
    {
        while (!chunk.IsEmpty)
        {
            FrameBounds frame;
            if (_pendingLength == 0)
            {
                switch (_codec.Scan(chunk, _maxFrameLength, out frame))
                {
                    case FrameScan.Complete:
                        var keepGoing = sink.OnFrame(chunk.Slice(frame.BodyStart, frame.BodyLength), frame.WireLength);
                        chunk = chunk[frame.WireLength..];
                        if (!keepGoing) return FeedResult.Stopped;
                        continue;
                    case FrameScan.TooLarge:
                        return FeedResult.FrameTooLarge;
                    default:
                        Append(chunk);
                        return FeedResult.Consumed;
                }
            }

            // Only the bytes of the unfinished frame are copied; the rest of the chunk is scanned where it lies.
            var wanted = _codec.BytesWanted(_pending.AsSpan(0, _pendingLength), chunk);
            if (_pendingLength + wanted > _maxWireLength)
            {
                Reset();
                return FeedResult.FrameTooLarge;
            }
            Append(chunk[..wanted]);
            chunk = chunk[wanted..];
            var pending = _pending.AsSpan(0, _pendingLength);
            switch (_codec.Scan(pending, _maxFrameLength, out frame))
            {
                case FrameScan.Complete:
                    var keepGoing = sink.OnFrame(pending.Slice(frame.BodyStart, frame.BodyLength), frame.WireLength);
                    Reset();
                    if (!keepGoing) return FeedResult.Stopped;
                    break;
                case FrameScan.TooLarge:
                    Reset();
                    return FeedResult.FrameTooLarge;
            }
        }
        return FeedResult.Consumed;
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        var needed = _pendingLength + bytes.Length;
        if (_pending is null || _pending.Length < needed)
        {
            var grown = ArrayPool<byte>.Shared.Rent(Math.Min(Math.Max(needed, 256) * 2, _maxWireLength));
            var released = 0;
            if (_pending is not null)
            {
                _pending.AsSpan(0, _pendingLength).CopyTo(grown);
                released = _pending.Length;
                ArrayPool<byte>.Shared.Return(_pending);
            }
            _pending = grown;
            _observer?.BufferChanged(grown.Length - released);
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
            _observer?.BufferChanged(-released);
        }
        _pendingLength = 0;
    }

    /// <summary>Returns the pooled buffer of an unfinished frame, if one is held; as <see cref="Discard"/>.</summary>
    public void Dispose() => Reset();

    private readonly struct HandlerSink(FrameHandler handler) : IFrameSink
    {
        public bool OnFrame(ReadOnlySpan<byte> body, int wireLength) => handler(body, wireLength);
    }

    private sealed class DelegateObserver(Action<int> changed) : IFrameBufferObserver
    {
        public void BufferChanged(int bytes) => changed(bytes);
    }
}
