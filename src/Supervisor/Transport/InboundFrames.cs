using Akka.Actor;
using Supervisor.Messages.Wire;

namespace Supervisor.Transport;

/// <summary>
/// Turns the bytes a transport reads into transport events for its owner: frames, the first protocol
/// violation, then a bounded drain. One instance per connection, fed only by its read loop.
/// <para>
/// Valid frames are decoded into values and queued here; the owner is told
/// <see cref="TransportEvents.FramesReady"/> (one immutable instance) when the queue turns non-empty and
/// takes every queued frame when it handles it (<see cref="IInboundFrames"/>). So a heartbeat reaches its
/// connection actor without a message or a frame allocated for it. A refused frame or the end of input
/// is told after the frames before it, so the owner always sees them in order.
/// </para>
/// </summary>
internal sealed class InboundFrames : IInboundFrames, IDisposable
{
    /// <summary>After a refused frame the input is read and thrown away only so that the error notice is
    /// not destroyed by an RST; a peer that keeps streaming past this gets the RST anyway.</summary>
    public const int DrainBudget = 256 * 1024;

    private readonly IActorRef _owner;
    private readonly int _maxFrameLength;
    private readonly LineFramer _framer;
    private readonly LineHandler _onLine;
    private bool _draining;
    private long _drained;

    // The process-wide budget of unfinished frames, what this connection's framer holds (written by the read
    // loop only), and whether the budget chose it to close (read by the read loop, set by another's).
    private readonly PendingFrameMemory? _memory;
    private int _heldBytes;
    private int _evicted;
    private long _evictedBytes;

    // The queue of decoded frames, guarded by _framer (never contended for long): one slot, and a
    // queue behind it only while the owner lags more than one frame behind.
    private InboundFrame _first;
    private bool _hasFirst;
    private Queue<InboundFrame>? _more;
    private int _signalled;

    /// <param name="memory">The process-wide budget of unfinished frames this connection's count against; null: none.</param>
    public InboundFrames(IActorRef owner, int maxFrameLength, PendingFrameMemory? memory = null)
    {
        _owner = owner;
        _maxFrameLength = maxFrameLength;
        _memory = memory;
        _framer = memory is null ? new LineFramer(maxFrameLength) : new LineFramer(maxFrameLength, OnBufferChanged);
        _onLine = OnLine;
    }

    private void OnBufferChanged(int delta)
    {
        var held = _heldBytes + delta;
        Volatile.Write(ref _heldBytes, held);
        _memory!.Changed(this, delta, held);
    }

    /// <summary>Memory this connection holds in an unfinished frame now.</summary>
    internal int HeldBytes => Volatile.Read(ref _heldBytes);

    /// <summary>Whether the budget chose this connection to close.</summary>
    internal bool Evicted => Volatile.Read(ref _evicted) == 1;

    /// <summary>
    /// From the budget, on another connection's thread: close this one with <c>frame-too-large</c>. Its read loop
    /// drops the unfinished frame at its next read, or the close releases it. False when already chosen.
    /// </summary>
    internal bool TryEvict(int heldBytes, string detail)
    {
        if (Interlocked.CompareExchange(ref _evicted, 1, 0) != 0) return false;
        Interlocked.Exchange(ref _evictedBytes, heldBytes);
        _owner.Tell(new TransportEvents.FrameRejected(CloseReason.FrameTooLarge, detail));
        return true;
    }

    /// <summary>Once this connection, chosen to close, holds nothing more: the bytes the budget counted as leaving, else 0.</summary>
    internal long SettleEviction() => Evicted ? Interlocked.Exchange(ref _evictedBytes, 0) : 0;

    private bool OnLine(ReadOnlySpan<byte> line)
    {
        if (!JsonLinesCodec.TryDecode(line, out var frame, out var error))
        {
            _owner.Tell(new TransportEvents.FrameRejected(CloseReason.ProtocolError, error!));
            return false;
        }
        var inbound = new InboundFrame(frame, line.Length + 1);
        lock (_framer)
        {
            if (!_hasFirst)
            {
                _first = inbound;
                _hasFirst = true;
            }
            else (_more ??= new Queue<InboundFrame>()).Enqueue(inbound);
        }
        if (Interlocked.Exchange(ref _signalled, 1) == 0)
            _owner.Tell(TransportEvents.FramesReady.Instance);
        return true;
    }

    /// <summary>Handles one chunk; false when the transport should stop reading (drain budget spent).</summary>
    public bool Accept(ReadOnlySpan<byte> chunk)
    {
        if (!_draining && _memory is not null && Evicted)
        {
            // Chosen by the budget: the owner was told; keep nothing more of this peer's input.
            _framer.Discard();
            _draining = true;
        }
        if (_draining)
        {
            _drained += chunk.Length;
            if (_drained <= DrainBudget) return true;
            _owner.Tell(new TransportEvents.InputEnded(CloseReason.PeerReset, "peer kept streaming after its connection was refused"));
            return false;
        }
        switch (_framer.Feed(chunk, _onLine))
        {
            case FeedResult.Stopped:
                _draining = true;
                break;
            case FeedResult.FrameTooLarge:
                _draining = true;
                _owner.Tell(new TransportEvents.FrameRejected(CloseReason.FrameTooLarge, $"frame longer than max-frame-length ({_maxFrameLength} bytes)"));
                break;
        }
        return true;
    }

    public void BeginTaking() => Volatile.Write(ref _signalled, 0);

    public bool TryTake(out InboundFrame frame)
    {
        lock (_framer)
        {
            if (!_hasFirst)
            {
                frame = default;
                return false;
            }
            frame = _first;
            if (_more is { Count: > 0 }) _first = _more.Dequeue();
            else
            {
                _first = default;
                _hasFirst = false;
            }
            return true;
        }
    }

    public void Dispose() => _framer.Dispose();
}

/// <summary>A decoded frame waiting for its connection, with its size on the wire (newline included).</summary>
internal readonly record struct InboundFrame(DecodedFrame Frame, int WireBytes);

/// <summary>The owner's side of a pull-mode transport's frame queue (see <see cref="InboundFrames"/>).</summary>
internal interface IInboundFrames
{
    /// <summary>Called when the owner handles <see cref="TransportEvents.FramesReady"/>, before it takes: a frame queued from now on signals again.</summary>
    void BeginTaking();

    /// <summary>The next queued frame, in arrival order; false when none is left.</summary>
    bool TryTake(out InboundFrame frame);
}
