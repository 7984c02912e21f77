using System.Diagnostics;

namespace TransportFootprint;

/// <summary>
/// Counters every server transport reports into. The accept phase is measured from the first
/// accepted connection (after warm-up) to the moment the N-th first heartbeat has been answered.
/// </summary>
internal sealed class Stats
{
    private long _accepted;
    private long _answered;
    private long _open;
    private long _target = long.MaxValue;
    private volatile bool _measuring;

    public TimeSpan CpuAtFirstAccept { get; private set; }
    public TimeSpan CpuAtTarget { get; private set; }
    public long TicksAtFirstAccept { get; private set; }
    public long TicksAtTarget { get; private set; }
    public TaskCompletionSource TargetReached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public long Accepted => Interlocked.Read(ref _accepted);
    public long Answered => Interlocked.Read(ref _answered);
    public long Open => Interlocked.Read(ref _open);

    /// <summary>Ends warm-up: zeroes the counters and arms the CPU marks for N connections.</summary>
    public void StartMeasuring(long target)
    {
        Interlocked.Exchange(ref _accepted, 0);
        Interlocked.Exchange(ref _answered, 0);
        Interlocked.Exchange(ref _target, target);
        _measuring = true;
    }

    public void OnAccepted()
    {
        Interlocked.Increment(ref _open);
        if (Interlocked.Increment(ref _accepted) == 1 && _measuring)
        {
            CpuAtFirstAccept = Measure.Cpu();
            TicksAtFirstAccept = Stopwatch.GetTimestamp();
        }
    }

    public void OnClosed() => Interlocked.Decrement(ref _open);

    public void OnAnswered()
    {
        if (Interlocked.Increment(ref _answered) == Interlocked.Read(ref _target) && _measuring)
        {
            CpuAtTarget = Measure.Cpu();
            TicksAtTarget = Stopwatch.GetTimestamp();
            TargetReached.TrySetResult();
        }
    }
}
