namespace Supervisor.Monitoring;

/// <summary>Event times per metric, kept as long as the longest window that reads them.</summary>
internal sealed class SlidingCounts
{
    private readonly Dictionary<string, Queue<DateTimeOffset>> _events = [];
    private readonly Dictionary<string, TimeSpan> _retention = [];

    /// <summary>Declares that <paramref name="metric"/> is read over windows up to <paramref name="window"/>.</summary>
    public void Retain(string metric, TimeSpan window)
    {
        if (!_retention.TryGetValue(metric, out var kept) || kept < window)
            _retention[metric] = window;
    }

    public void Add(string metric, DateTimeOffset at)
    {
        if (!_retention.ContainsKey(metric)) return; // nobody reads it: keep nothing
        if (!_events.TryGetValue(metric, out var times))
            _events[metric] = times = new Queue<DateTimeOffset>();
        times.Enqueue(at);
    }

    /// <summary>Events in (now - window, now].</summary>
    public int Count(string metric, TimeSpan window, DateTimeOffset now)
    {
        if (!_events.TryGetValue(metric, out var times)) return 0;
        var horizon = now - _retention[metric];
        while (times.Count > 0 && times.Peek() <= horizon) times.Dequeue();
        if (window >= _retention[metric]) return times.Count;
        var from = now - window;
        var count = 0;
        foreach (var t in times)
            if (t > from) count++;
        return count;
    }
}
