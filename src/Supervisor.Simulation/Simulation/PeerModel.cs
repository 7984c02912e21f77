namespace Supervisor.Simulation;

/// <summary>
/// How one simulated peer behaves. It sends a heartbeat every <see cref="Interval"/> (± <see cref="Jitter"/>),
/// each lost on the way with probability <see cref="Loss"/>; it dies for good at <see cref="SilentAfter"/>;
/// a flapping peer alternates <see cref="FlapUp"/> of heartbeats with <see cref="FlapDown"/> of silence; a mobile peer
/// goes through <see cref="Handovers"/>, stretches in which what it sends is held up and arrives all at once.
/// </summary>
public sealed record PeerModel(
    TimeSpan Interval,
    TimeSpan Jitter = default,
    double Loss = 0,
    TimeSpan? SilentAfter = null,
    TimeSpan? FlapUp = null,
    TimeSpan? FlapDown = null,
    Handovers? Handovers = null)
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

/// <summary>
/// Bursts of delay, as a mobile peer's cell handover or a tunnel gives: about every <see cref="Every"/> (exponentially
/// distributed gaps) its link holds everything up for a time between <see cref="Shortest"/> and <see cref="Longest"/>;
/// the heartbeats it sent meanwhile then arrive together (TCP delivers them once the path is back). The peer is
/// alive throughout: a close during a handover is a false disconnect.
/// </summary>
public sealed record Handovers(TimeSpan Every, TimeSpan Shortest, TimeSpan Longest);
