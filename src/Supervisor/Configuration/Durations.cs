namespace Supervisor.Configuration;

internal static class Durations
{
    /// <summary>A duration the way HOCON writes it: <c>30s</c>, <c>200ms</c>.</summary>
    public static string ToHocon(this TimeSpan duration) =>
        duration.Ticks % TimeSpan.TicksPerSecond == 0 ? $"{(long)duration.TotalSeconds}s" : $"{duration.TotalMilliseconds:0.###}ms";
}
