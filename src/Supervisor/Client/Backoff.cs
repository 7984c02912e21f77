namespace Supervisor.Client;

/// <summary>
/// Exponential backoff with full jitter: the delay before reconnect attempt <c>n</c> (1, 2, …) is drawn
/// uniformly from [<c>min</c>, <c>min(max, min × multiplier^n)</c>], so the ceiling grows with every
/// failed attempt and a crowd of clients that lost the same server spreads its reconnects out.
/// The count resets when a connection has stayed up for the stable period.
/// </summary>
internal sealed class Backoff(BackoffSettings settings, Random random)
{
    /// <summary>Failed attempts since the last stable period; the exponent of the next delay.</summary>
    public int Attempt { get; private set; }

    /// <summary>The upper bound of the delay before attempt <paramref name="attempt"/>.</summary>
    public static TimeSpan Ceiling(BackoffSettings settings, int attempt)
    {
        var ceiling = settings.Min.TotalMilliseconds * Math.Pow(settings.Multiplier, attempt);
        return double.IsFinite(ceiling) && ceiling < settings.Max.TotalMilliseconds
            ? TimeSpan.FromMilliseconds(ceiling)
            : settings.Max;
    }

    /// <summary>Counts one more failed attempt and draws the delay before the next one.</summary>
    public TimeSpan Next()
    {
        Attempt++;
        var ceiling = Ceiling(settings, Attempt);
        var spread = (ceiling - settings.Min).TotalMilliseconds;
        return settings.Min + TimeSpan.FromMilliseconds(spread * random.NextDouble());
    }

    /// <summary>The connection proved stable: the next failure starts again from attempt 1.</summary>
    public void Reset() => Attempt = 0;
}
