namespace Supervisor.Connections;

/// <summary>
/// When the peers of a server that closes them all (shutdown, a drained or downed cluster node) are told to come back
/// (<c>shutdown.reconnect-hint</c>, DESIGN §2). The window is cut into one equal slot per peer and each peer gets a
/// moment drawn uniformly inside its own slot, the slots handed out in random order: the reconnects arrive at an even
/// rate over the whole window, every peer's moment is its own, and none is predictable from its connection's age.
/// Drawing each peer's moment uniformly over the whole window would bunch them (Poisson arrivals: in a 5 s window for
/// 19,000 peers the busiest 10 ms holds about 1.5 times the mean, 38).
/// </summary>
internal static class ReconnectHints
{
    /// <summary><paramref name="count"/> delays in [0, <paramref name="spread"/>), one in each of <paramref name="count"/> equal slots, shuffled.</summary>
    public static TimeSpan[] Spread(int count, TimeSpan spread, Random random)
    {
        var delays = new TimeSpan[count];
        var slot = spread.TotalMilliseconds / Math.Max(1, count);
        for (var i = 0; i < count; i++)
            delays[i] = TimeSpan.FromMilliseconds(Math.Floor((i + random.NextDouble()) * slot));
        random.Shuffle(delays);
        return delays;
    }

    /// <summary>One delay anywhere in [0, <paramref name="spread"/>): for a peer that arrives while the server is already closing.</summary>
    public static TimeSpan Any(TimeSpan spread, Random random) =>
        TimeSpan.FromMilliseconds(Math.Floor(spread.TotalMilliseconds * random.NextDouble()));
}
