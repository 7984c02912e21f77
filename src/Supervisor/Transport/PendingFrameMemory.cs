using System.Collections.Concurrent;

namespace Supervisor.Transport;

/// <summary>
/// The process-wide budget of memory held in unfinished frames (<c>limits.pending-frame-memory</c>). Every
/// connection's <see cref="InboundFrames"/> reports what its framer holds; when the total goes over the budget,
/// the connections holding the largest unfinished frames are closed with <c>frame-too-large</c> until what
/// remains fits, and every other connection is untouched. A connection's own limit is its max-frame-length;
/// this bounds what all of them together can pin (max-connections × max-frame-length otherwise).
/// </summary>
internal sealed class PendingFrameMemory
{
    private readonly ConcurrentDictionary<InboundFrames, byte> _holders = new();
    private readonly object _evicting = new();
    private long _held;
    private long _evictions;
    // Bytes held by connections already told to close, not yet released: they are on their way out.
    private long _leaving;

    /// <param name="budget">Bytes all unfinished frames together may hold.</param>
    public PendingFrameMemory(long budget)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budget);
        Budget = budget;
    }

    public long Budget { get; }

    /// <summary>Bytes held in unfinished frames now, across the process.</summary>
    public long Held => Interlocked.Read(ref _held);

    /// <summary>Connections closed for holding the largest unfinished frames while over the budget, since start.</summary>
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>From a holder's read loop: its framer's buffer changed by <paramref name="delta"/> bytes, to <paramref name="heldNow"/>.</summary>
    internal void Changed(InboundFrames holder, int delta, int heldNow)
    {
        var held = Interlocked.Add(ref _held, delta);
        if (heldNow > 0) _holders.TryAdd(holder, 0);
        else
        {
            _holders.TryRemove(holder, out _);
            if (holder.SettleEviction() is var released and > 0) Interlocked.Add(ref _leaving, -released);
        }
        if (delta > 0 && held - Interlocked.Read(ref _leaving) > Budget) Evict();
    }

    private void Evict()
    {
        lock (_evicting)
        {
            var over = Held - Interlocked.Read(ref _leaving) - Budget;
            if (over <= 0) return;
            var total = Held;
            foreach (var holder in _holders.Keys.Where(h => !h.Evicted).OrderByDescending(h => h.HeldBytes).ToArray())
            {
                if (over <= 0) break;
                var bytes = holder.HeldBytes;
                if (bytes == 0 || !holder.TryEvict(bytes,
                        $"an unfinished frame held {bytes} bytes while unfinished frames across the server held {total} bytes, over limits.pending-frame-memory ({Budget} bytes); the largest are closed"))
                    continue;
                Interlocked.Add(ref _leaving, bytes);
                // Its read loop may have finished the frame and let go of the buffer while it was being chosen, its
                // release settling nothing yet: settle here, or those bytes would count as leaving for good.
                if (holder.HeldBytes == 0 && holder.SettleEviction() is var released and > 0)
                    Interlocked.Add(ref _leaving, -released);
                Interlocked.Increment(ref _evictions);
                over -= bytes;
            }
        }
    }
}
