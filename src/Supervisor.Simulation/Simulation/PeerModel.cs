namespace Supervisor.Simulation;

/// <summary>
/// How one simulated peer behaves. It sends a heartbeat every <see cref="Interval"/> (± <see cref="Jitter"/>),
/// each lost on the way with probability <see cref="Loss"/>; it dies for good at <see cref="SilentAfter"/>;
/// a flapping peer alternates <see cref="FlapUp"/> of heartbeats with <see cref="FlapDown"/> of silence.
/// </summary>
public sealed record PeerModel(
    TimeSpan Interval,
    TimeSpan Jitter = default,
    double Loss = 0,
    TimeSpan? SilentAfter = null,
    TimeSpan? FlapUp = null,
    TimeSpan? FlapDown = null)
{
    /// <summary>A peer that heartbeats every <paramref name="interval"/>, never late, never lost, never dead.</summary>
    public static PeerModel Regular(TimeSpan interval) => new(interval);

    /// <summary>Whether the peer is alive and sending at <paramref name="elapsed"/> into the run.</summary>
    public bool IsAlive(TimeSpan elapsed)
    {
        if (SilentAfter is { } silent && elapsed >= silent) return false;
        if (FlapUp is { } up && FlapDown is { } down)
        {
            var phase = elapsed.Ticks % (up + down).Ticks;
            return phase < up.Ticks;
        }
        return true;
    }
}

/// <summary>The whole server stops for <see cref="Duration"/> at <see cref="At"/> (a GC pause, a starved host).</summary>
public sealed record ServerStall(TimeSpan At, TimeSpan Duration);

/// <summary>A group of identical peers.</summary>
public sealed record PeerGroup(int Count, PeerModel Model);
