using System.Diagnostics;

namespace LoadGen;

/// <summary>A bounded, lock-free append-only list of durations (Stopwatch ticks); extra samples are counted and dropped.</summary>
internal sealed class Samples(int capacity)
{
    private readonly long[] _values = new long[capacity];
    private int _count;
    private long _dropped;

    public int Count => Math.Min(Volatile.Read(ref _count), _values.Length);
    public long Dropped => Interlocked.Read(ref _dropped);

    public void Add(long ticks)
    {
        var slot = Interlocked.Increment(ref _count) - 1;
        if (slot < _values.Length) _values[slot] = ticks;
        else Interlocked.Increment(ref _dropped);
    }

    /// <summary>Milliseconds at the given quantiles (nearest rank), or NaN without samples.</summary>
    public double[] QuantilesMs(params double[] quantiles)
    {
        var n = Count;
        if (n == 0) return quantiles.Select(_ => double.NaN).ToArray();
        var sorted = _values.AsSpan(0, n).ToArray();
        Array.Sort(sorted);
        return quantiles.Select(q => sorted[Math.Clamp((int)Math.Ceiling(q * n) - 1, 0, n - 1)] * 1000.0 / Stopwatch.Frequency).ToArray();
    }
}
