using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace Supervisor.Transport;

/// <summary>
/// Gives back what a burst of connection opens leaves behind (bench/README.md, issue 16: memory per connection).
/// A start-up ramp, a reconnect storm or a TLS handshake burst allocates its temporaries between the connections'
/// long-lived objects: in the managed heap they are promoted with them and swept without compaction, so the holes
/// stay resident (2,000 idle TLS connections: 18.6 MB of free space inside gen 2, 9 KB per connection); in glibc's
/// arenas OpenSSL's freed handshake memory stays resident too. An idle service allocates next to nothing, so no
/// collection would ever come for it. Once no connection has opened for <c>io.settle-heap-after-connect-burst</c>
/// (5 s), this runs one compacting collection that also returns the freed regions to the kernel — only after a burst
/// of at least <see cref="MinBurst"/> opens, as it pauses the process (measured: 61-122 ms at 19,000 connections on 2 cores, 21-39 ms at 2,000) —
/// and <c>malloc_trim(0)</c>. While opens never stop, the native trim still runs every <see cref="LongestWait"/>
/// (it does not pause anybody), the compaction waits for the quiet.
/// </summary>
internal sealed class HeapSettle : IDisposable
{
    /// <summary>The process's: every listener's accepts and every TLS handshake report here; the host configures it.</summary>
    public static HeapSettle Process { get; } = new();

    /// <summary>Fewer opens than this since the last settle leave too little behind to pay a compacting pause for.</summary>
    public const int MinBurst = 256;

    /// <summary>
    /// At most one compacting collection per this: a peer that opens 256 connections, waits 5 s and does it again
    /// must not pause the process every 5 s. A burst that comes sooner is settled when the interval has passed.
    /// </summary>
    public static readonly TimeSpan MinCompactionInterval = TimeSpan.FromSeconds(60);

    /// <summary>How long opens that never pause for the quiet hold the native trim back.</summary>
    public static readonly TimeSpan LongestWait = TimeSpan.FromSeconds(30);

    /// <summary>What one settle did (for the log line, and for tests).</summary>
    public sealed record Report(int Opened, bool Compacted, long HeapBefore, long HeapAfter, TimeSpan Pause);

    private static readonly bool CanTrim = OperatingSystem.IsLinux();

    private readonly Timer _timer;
    private long _quietMs = 5_000;           // <= 0: off
    private ILogger? _logger;
    private long _lastOpenAt, _armedAt;      // Environment.TickCount64
    private int _armed, _opened;
    private long _lastCompactedAt = long.MinValue / 2;
    private bool _off;

    public HeapSettle(TimeSpan? quiet = null)
    {
        _timer = new Timer(static state => ((HeapSettle)state!).OnTimer(), this, Timeout.Infinite, Timeout.Infinite);
        if (quiet is { } q) _quietMs = (long)q.TotalMilliseconds;
    }

    /// <summary>Raised after each settle, on the thread pool.</summary>
    public event Action<Report>? Settled;

    /// <summary>
    /// A host's setting (null: off) and where the settles are logged. The heap is the process's, so where several
    /// hosts share it (an embedder's two supervisors, a test run's hundreds) off from any of them holds for the
    /// process: a host that chose no pauses gets none from its neighbour. Otherwise the last host's quiet counts.
    /// </summary>
    public void Configure(TimeSpan? quiet, ILogger logger)
    {
        if (quiet is { } q)
        {
            if (Volatile.Read(ref _off)) return;
            Volatile.Write(ref _quietMs, (long)q.TotalMilliseconds);
        }
        else
        {
            Volatile.Write(ref _off, true);
            Volatile.Write(ref _quietMs, 0);
        }
        _logger = logger;
    }

    /// <summary>A connection was accepted, or finished (or failed) its TLS handshake: settle once the opens have stopped.</summary>
    public void ConnectionOpened()
    {
        var quiet = Volatile.Read(ref _quietMs);
        if (quiet <= 0) return;
        var now = Environment.TickCount64;
        Volatile.Write(ref _lastOpenAt, now);
        Interlocked.Increment(ref _opened);
        if (Interlocked.Exchange(ref _armed, 1) == 1) return;
        Volatile.Write(ref _armedAt, now);
        _timer.Change(quiet, Timeout.Infinite);
    }

    private void OnTimer()
    {
        var quiet = Volatile.Read(ref _quietMs);
        var now = Environment.TickCount64;
        var sinceOpen = now - Volatile.Read(ref _lastOpenAt);
        var sinceArmed = now - Volatile.Read(ref _armedAt);
        if (quiet > 0 && sinceOpen < quiet)
        {
            // Still opening: wait for the quiet, but do not keep the native heap's free pages for ever.
            if (sinceArmed >= LongestWait.TotalMilliseconds)
            {
                TrimNativeHeap();
                Volatile.Write(ref _armedAt, now);
            }
            _timer.Change(quiet - sinceOpen, Timeout.Infinite);
            return;
        }
        // An open between here and the reset below sees the timer armed and does not re-arm it: the next one will.
        var opened = Interlocked.Exchange(ref _opened, 0);
        Volatile.Write(ref _armed, 0);
        if (quiet <= 0) return;
        Settle(opened);
    }

    private void Settle(int opened)
    {
        var heapBefore = GC.GetTotalMemory(forceFullCollection: false);
        var started = Stopwatch.GetTimestamp();
        var now = Environment.TickCount64;
        var sinceCompacted = now - _lastCompactedAt;
        var compact = opened >= MinBurst && sinceCompacted >= MinCompactionInterval.TotalMilliseconds;
        if (opened >= MinBurst && !compact)
        {
            // Too soon after the last one: its opens wait for the interval's end, the trim runs now.
            Interlocked.Add(ref _opened, opened);
            if (Interlocked.Exchange(ref _armed, 1) == 0)
            {
                Volatile.Write(ref _armedAt, now);
                _timer.Change((long)MinCompactionInterval.TotalMilliseconds - sinceCompacted, Timeout.Infinite);
            }
        }
        if (compact) _lastCompactedAt = now;
        // Aggressive: compacts every generation and decommits the regions it empties, so the pages leave RSS.
        if (compact) GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        var pause = Stopwatch.GetElapsedTime(started);
        TrimNativeHeap();
        var report = new Report(opened, compact, heapBefore, compact ? GC.GetTotalMemory(forceFullCollection: false) : heapBefore, pause);
        if (compact && _logger is { } logger) Connections.ConnectionLog.HeapSettled(logger, opened, heapBefore >> 20, report.HeapAfter >> 20, pause.TotalMilliseconds);
        Settled?.Invoke(report);
    }

    private static void TrimNativeHeap()
    {
        if (!CanTrim) return;
        try
        {
            MallocTrim(0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc (musl has no malloc_trim): its allocator keeps what it keeps.
        }
    }

    public void Dispose() => _timer.Dispose();

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);
}
