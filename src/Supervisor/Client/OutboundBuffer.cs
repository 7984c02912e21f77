using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Client;

/// <summary>What <see cref="OutboundBuffer.Offer"/> did with a frame.</summary>
internal enum OfferOutcome
{
    Buffered,
    /// <summary>Buffered, and the oldest frame was dropped to make room (drop-oldest).</summary>
    BufferedDroppedOldest,
    /// <summary>The offered frame was dropped (drop-newest).</summary>
    DroppedNewest,
    /// <summary>The offered frame was refused (fail); its sender is told.</summary>
    Rejected,
}

/// <summary>Data frames waiting for a connection, at most <c>capacity</c>; a full buffer applies the overflow policy.</summary>
internal sealed class OutboundBuffer(int capacity, OverflowPolicy policy)
{
    private readonly Queue<Frame> _frames = new();

    public int Count => _frames.Count;
    public int Capacity => capacity;
    public OverflowPolicy Policy => policy;
    /// <summary>Frames dropped by drop-oldest or drop-newest since start.</summary>
    public long Dropped { get; private set; }
    /// <summary>Frames refused by fail since start.</summary>
    public long Rejected { get; private set; }

    /// <param name="dropped">The frame that was dropped, if one was.</param>
    public OfferOutcome Offer(Frame frame, out Frame? dropped)
    {
        dropped = null;
        if (_frames.Count < capacity)
        {
            _frames.Enqueue(frame);
            return OfferOutcome.Buffered;
        }
        switch (policy)
        {
            case OverflowPolicy.DropOldest when capacity > 0:
                dropped = _frames.Dequeue();
                _frames.Enqueue(frame);
                Dropped++;
                return OfferOutcome.BufferedDroppedOldest;
            case OverflowPolicy.DropOldest:
            case OverflowPolicy.DropNewest:
                dropped = frame;
                Dropped++;
                return OfferOutcome.DroppedNewest;
            default:
                Rejected++;
                return OfferOutcome.Rejected;
        }
    }

    public bool TryPeek(out Frame frame) => _frames.TryPeek(out frame!);

    public void RemoveHead() => _frames.Dequeue();
}
