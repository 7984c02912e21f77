using Akka.Actor;
using Supervisor.Messages.Wire;

namespace Supervisor.Transport;

/// <summary>
/// Turns the bytes a transport reads into transport events for its owner: frames, the first protocol
/// violation, then a bounded drain. One instance per connection, fed only by its read loop; every transport
/// (TCP, TLS, WebSocket) delivers its frames this one way.
/// <para>
/// Valid frames are decoded into values and queued here; the owner is told
/// <see cref="TransportEvents.FramesReady"/> (one immutable instance) when the queue turns non-empty and
/// takes every queued frame when it handles it (<see cref="IInboundFrames"/>). So a heartbeat reaches its
/// connection actor without a message or a frame allocated for it. A refused frame or the end of input
/// is told after the frames before it, so the owner always sees them in order.
/// </para>
/// <para>
/// It is also the read loop's gate: the owner pauses reading while its application handler is behind
/// (<c>handler.max-frames-in-flight</c>), and the read loop waits in <see cref="WhenReadingAllowed"/> before its next
/// read; bytes it has read already are decoded and delivered, so at most one read's worth of frames follows a pause.
/// </para>
/// </summary>
internal sealed class InboundFrames : IInboundFrames, IFrameSink, IFrameBufferObserver, IDisposable
{
    /// <summary>After a refused frame the input is read and thrown away only so that the error notice is
    /// not destroyed by an RST; a peer that keeps streaming past this gets the RST anyway.</summary>
    public const int DrainBudget = 256 * 1024;

    private readonly IActorRef _owner;
    private readonly int _maxFrameLength;
    private readonly FrameReader _framer;
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

    // The read gate, guarded by this object's own lock (no lock object of its own: 24 B per connection): paused by
    // the owner, waited on by the read loop (a task only while paused).
    private volatile bool _paused;
    // Frames queued that the owner has not taken yet: the read loop reads no further ahead of its owner than one read.
    private volatile bool _untaken;
    private bool _released;
    private TaskCompletionSource? _resumed;

    /// <param name="memory">The process-wide budget of unfinished frames this connection's count against; null: none.</param>
    /// <param name="codec">The listener's wire format; null: json-lines.</param>
    public InboundFrames(IActorRef owner, int maxFrameLength, PendingFrameMemory? memory = null, IFrameCodec? codec = null)
    {
        _owner = owner;
        _maxFrameLength = maxFrameLength;
        _memory = memory;
        codec ??= JsonLinesCodec.Instance;
        // This object is the framer's sink and observer: no delegate per connection.
        _framer = new FrameReader(codec, maxFrameLength, memory is null ? null : (IFrameBufferObserver)this);
    }

    void IFrameBufferObserver.BufferChanged(int delta)
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

    /// <summary>
    /// For a transport that receives whole messages (a WebSocket): decodes one message (one frame, in the codec's
    /// message form: no newline or length prefix) and queues it; false, with the owner told, when it breaks the protocol.
    /// </summary>
    /// <param name="message">The message as received.</param>
    /// <param name="wireBytes">Its size as received.</param>
    public bool AcceptMessage(ReadOnlySpan<byte> message, int wireBytes)
    {
        if (!_framer.Codec.TryDecodeMessage(message, _maxFrameLength, out var frame, out var error, out var tooLarge))
        {
            _owner.Tell(new TransportEvents.FrameRejected(tooLarge ? CloseReason.FrameTooLarge : CloseReason.ProtocolError, error!));
            return false;
        }
        Enqueue(new InboundFrame(frame, wireBytes));
        return true;
    }

    bool IFrameSink.OnFrame(ReadOnlySpan<byte> body, int wireLength)
    {
        if (!_framer.Codec.TryDecode(body, out var frame, out var error))
        {
            _owner.Tell(new TransportEvents.FrameRejected(CloseReason.ProtocolError, error!));
            return false;
        }
        Enqueue(new InboundFrame(frame, wireLength));
        return true;
    }

    /// <summary>Queues a frame decoded elsewhere (a simulated peer's) and tells the owner as a read loop would.</summary>
    public void Enqueue(InboundFrame inbound)
    {
        lock (_framer)
        {
            if (!_hasFirst)
            {
                _first = inbound;
                _hasFirst = true;
            }
            else (_more ??= new Queue<InboundFrame>()).Enqueue(inbound);
            _untaken = true;
        }
        if (Interlocked.Exchange(ref _signalled, 1) == 0)
            _owner.Tell(TransportEvents.FramesReady.Instance);
    }

    /// <summary>
    /// Called (on the owner's thread) when the owner has taken and handled every queued frame: a transport that reads
    /// one message at a time (the WebSocket) reads the next one then. Null: nobody waits.
    /// </summary>
    public Action? Drained { get; init; }

    /// <summary>
    /// Whether the read loop must wait before its next read: the owner paused reading, or has not yet taken the frames
    /// of the last read (it runs on another thread just now). So at most two reads' frames arrive after a pause decided
    /// while handling the last frame of a read.
    /// </summary>
    public bool ReadingPaused => _paused || _untaken;

    /// <summary>Whether the owner paused reading (its handler is behind); unlike <see cref="ReadingPaused"/>, not merely slow to take.</summary>
    public bool PausedByOwner => _paused;

    /// <summary>From the owner: read no more from the socket until <see cref="ResumeReading"/>.</summary>
    public void PauseReading()
    {
        lock (this) _paused = true;
    }

    /// <summary>From the owner: reading may go on; a read loop waiting in <see cref="WhenReadingAllowed"/> goes on (on the thread pool).</summary>
    public void ResumeReading()
    {
        TaskCompletionSource? resumed = null;
        lock (this)
        {
            _paused = false;
            if (!_untaken)
            {
                resumed = _resumed;
                _resumed = null;
            }
        }
        resumed?.TrySetResult();
    }

    /// <summary>The owner took every queued frame: a read loop waiting for that (and not paused) goes on.</summary>
    private void AllTaken()
    {
        TaskCompletionSource? resumed = null;
        lock (this)
        {
            _untaken = false;
            if (!_paused)
            {
                resumed = _resumed;
                _resumed = null;
            }
        }
        resumed?.TrySetResult();
    }

    /// <summary>For the read loop: completes at once unless reading is paused, else when it resumes or the transport is released.</summary>
    public Task WhenReadingAllowed()
    {
        lock (this)
        {
            if (!(_paused || _untaken) || _released) return Task.CompletedTask;
            return (_resumed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
    }

    /// <summary>The transport is closed: a read loop waiting for the gate goes on, to see that and end.</summary>
    public void ReleaseReader()
    {
        TaskCompletionSource? resumed;
        lock (this)
        {
            _released = true;
            resumed = _resumed;
            _resumed = null;
        }
        resumed?.TrySetResult();
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
        switch (_framer.Feed(chunk, this))
        {
            case FeedResult.Stopped:
                _draining = true;
                break;
            case FeedResult.FrameTooLarge:
                _draining = true;
                _owner.Tell(new TransportEvents.FrameRejected(CloseReason.FrameTooLarge, FrameCodecs.TooLargeDetail(_maxFrameLength)));
                break;
        }
        return true;
    }

    public void BeginTaking() => Volatile.Write(ref _signalled, 0);

    public bool TryTake(out InboundFrame frame)
    {
        var taken = false;
        var emptied = false;
        lock (_framer)
        {
            frame = _first;
            if (_hasFirst)
            {
                taken = true;
                if (_more is { Count: > 0 }) _first = _more.Dequeue();
                else
                {
                    _first = default;
                    _hasFirst = false;
                    emptied = true;
                }
            }
        }
        // The last queued frame is taken (the owner handles it now): the read loop may read on.
        if (emptied && _untaken) AllTaken();
        if (taken) return true;
        Drained?.Invoke();
        return false;
    }

    public void Dispose() => _framer.Dispose();
}

/// <summary>A decoded frame waiting for its connection, with its size on the wire (delimiter or length prefix included).</summary>
internal readonly record struct InboundFrame(DecodedFrame Frame, int WireBytes);

/// <summary>The owner's side of a transport's frame queue (see <see cref="InboundFrames"/>).</summary>
internal interface IInboundFrames
{
    /// <summary>Called when the owner handles <see cref="TransportEvents.FramesReady"/>, before it takes: a frame queued from now on signals again.</summary>
    void BeginTaking();

    /// <summary>The next queued frame, in arrival order; false when none is left (the owner has handled every frame before).</summary>
    bool TryTake(out InboundFrame frame);

    /// <summary>Read no more from the socket until <see cref="ResumeReading"/> (backpressure); frames already read still arrive.</summary>
    void PauseReading();

    /// <summary>Reading goes on.</summary>
    void ResumeReading();
}
