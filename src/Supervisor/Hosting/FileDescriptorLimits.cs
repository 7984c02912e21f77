using System.Runtime.InteropServices;
using Supervisor.Configuration;

namespace Supervisor.Hosting;

/// <summary>
/// The process's file descriptor limit (<c>RLIMIT_NOFILE</c>) and how many are open. Every socket, every
/// assembly the runtime has mapped (two each) and every file is one; at the limit, <c>accept</c>,
/// <c>open</c> and the runtime's own assembly loads fail with EMFILE (DESIGN §4, "Out of file descriptors").
/// </summary>
internal static class FileDescriptorLimits
{
    private const int RlimitNofile = 7;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [DllImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static extern int GetRLimit(int resource, out RLimit limit);

    [DllImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static extern int SetRLimit(int resource, in RLimit limit);

    /// <summary>What <see cref="RaiseSoftLimit"/> found and did.</summary>
    /// <param name="Soft">The soft limit in force now (the one that counts).</param>
    public sealed record Outcome(long SoftBefore, long Soft, long Hard, string? Error)
    {
        public override string ToString() =>
            Error is not null ? $"file descriptor limit {Soft} (hard {Hard}); raising the soft limit failed: {Error}"
            : SoftBefore < Soft ? $"file descriptor limit raised from {SoftBefore} to the hard limit {Hard}"
            : $"file descriptor limit {Soft} (hard {Hard})";
    }

    /// <summary>
    /// Raises the soft limit to the hard limit, as Go's runtime does at start-up: the soft limit exists for
    /// programs that use <c>select(2)</c>, which this one does not. (.NET's runtime usually did it already.)
    /// </summary>
    public static Outcome RaiseSoftLimit()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return new Outcome(-1, -1, -1, null);
        if (GetRLimit(RlimitNofile, out var limit) != 0)
            return new Outcome(-1, -1, -1, $"getrlimit failed: errno {Marshal.GetLastPInvokeError()}");
        var before = ToLong(limit.Current);
        if (limit.Current >= limit.Maximum) return new Outcome(before, before, ToLong(limit.Maximum), null);
        var raised = limit with { Current = limit.Maximum };
        if (SetRLimit(RlimitNofile, raised) != 0)
            return new Outcome(before, before, ToLong(limit.Maximum), $"setrlimit failed: errno {Marshal.GetLastPInvokeError()}");
        return new Outcome(before, ToLong(limit.Maximum), ToLong(limit.Maximum), null);
    }

    /// <summary>The soft limit in force, or null where there is none to read.</summary>
    public static long? Limit() =>
        (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) && GetRLimit(RlimitNofile, out var limit) == 0 ? ToLong(limit.Current) : null;

    [DllImport("libc", EntryPoint = "opendir", SetLastError = true)]
    private static extern IntPtr OpenDir(string path);

    [DllImport("libc", EntryPoint = "readdir")]
    private static extern IntPtr ReadDir(IntPtr directory);

    [DllImport("libc", EntryPoint = "closedir")]
    private static extern int CloseDir(IntPtr directory);

    // struct dirent on Linux (glibc and musl, 64-bit): d_ino 8, d_off 8, d_reclen 2, d_type 1, then d_name.
    private const int DirentNameOffset = 19;

    /// <summary>
    /// Descriptors open now, counted in <c>/proc/self/fd</c> (which itself takes one while it is read, not counted);
    /// null when that cannot be read (not Linux, or no descriptor left to read it with).
    /// <para>
    /// Counted with <c>readdir</c> itself: .NET's directory enumeration stats every entry, and with 600 sockets open
    /// that took 35-85 ms a count on 2 busy cores (0.7-1.6 ms this way), which paced the listener's recovery
    /// from exhaustion (it counts again each time it may resume) and every scrape of <c>process.unix.file_descriptor.count</c>.
    /// </para>
    /// </summary>
    public static int? CountOpen()
    {
        if (!OperatingSystem.IsLinux() || IntPtr.Size != 8) return null;
        var directory = OpenDir("/proc/self/fd");
        if (directory == IntPtr.Zero) return null;
        try
        {
            var count = 0;
            for (var entry = ReadDir(directory); entry != IntPtr.Zero; entry = ReadDir(directory))
            {
                // "." and ".." are no descriptors; every other name is one.
                if (Marshal.ReadByte(entry, DirentNameOffset) != (byte)'.') count++;
            }
            return Math.Max(0, count - 1);
        }
        finally
        {
            CloseDir(directory);
        }
    }

    /// <summary>
    /// Descriptors kept free for everything but the TCP listeners: HTTP requests to the health and metrics
    /// endpoints, WebSocket upgrades, files and pipes the runtime opens. 1/32 of the limit, at least 16, at most 256.
    /// </summary>
    public static int ReserveFor(long limit) => (int)Math.Clamp(limit / 32, 16, 256);

    /// <summary>
    /// One warning line when the listeners' max-connections (TCP and WebSocket together) cannot be held under
    /// <paramref name="limit"/> with <paramref name="openNow"/> descriptors already open and the reserve kept; null when they can.
    /// </summary>
    public static string? CapacityWarning(IEnumerable<(string Name, int MaxConnections)> listeners, long limit, int openNow)
    {
        var all = listeners.ToArray();
        var wanted = all.Sum(l => (long)l.MaxConnections);
        var reserve = ReserveFor(limit);
        var room = Math.Max(0, limit - openNow - reserve);
        if (wanted <= room) return null;
        var names = string.Join(", ", all.Select(l => $"{l.Name} {l.MaxConnections}"));
        return $"max-connections {wanted} ({names}) cannot be held by the file descriptor limit {limit}: "
            + $"{openNow} are open at start-up and {reserve} are kept in reserve, so about {room} connections fit; "
            + "beyond that new connections wait in the listen backlog. Raise the limit (LimitNOFILE= in the systemd unit, ulimit -n) or lower max-connections.";
    }

    /// <summary>The listeners whose connections each take a descriptor: every TCP listener and the WebSocket listener when on.</summary>
    /// <param name="webSocket">The WebSocket listener (operator package) when it is on; null otherwise.</param>
    public static IEnumerable<(string Name, int MaxConnections)> ConnectionHolders(SupervisorSettings settings, (string Name, int MaxConnections)? webSocket) =>
        settings.Listeners.Select(l => (l.Name, l.MaxConnections))
            .Concat(webSocket is { } holder ? [holder] : []);

    private static long ToLong(ulong value) => value > long.MaxValue ? long.MaxValue : (long)value;
}

/// <summary>
/// The descriptors the TCP listeners may fill: the soft limit less a reserve (<see cref="FileDescriptorLimits.ReserveFor"/>).
/// Shared by every listener of the process; a listener asks <see cref="HasRoom"/> before each accept and stops
/// accepting (connections wait in the kernel's listen backlog) while there is none, so the process itself never
/// reaches the limit through them. Counting <c>/proc/self/fd</c> costs a directory read, so the count is taken
/// again only when an upper bound (the last count plus the accepts since) reaches the ceiling.
/// </summary>
internal sealed class FileDescriptorBudget
{
    private readonly Func<int?> _countOpen;
    private long _upperBound;
    private long _countedAt = Environment.TickCount64;
    private int _lastCount;
    // Listeners in an episode, each with how to wake it when closes may have made room.
    private readonly Dictionary<string, Action> _paused = [];
    private int _pausedCount;
    private long _releasedSinceCount;
    private int _wakeSent;
    private volatile Exhaustion? _exhaustion;

    /// <summary>A process-wide episode of listeners not accepting for want of descriptors.</summary>
    /// <param name="Open">Descriptors open when it began.</param>
    public sealed record Exhaustion(DateTimeOffset Since, int Open, long Limit, int Reserve)
    {
        public string Describe() =>
            $"out of file descriptors: {Open} of {Limit} open ({Reserve} kept in reserve for health, metrics and the runtime); "
            + "new TCP connections wait in the listen backlog";
    }

    /// <param name="limit">The soft RLIMIT_NOFILE; <see cref="long.MaxValue"/> for none.</param>
    /// <param name="countOpen">Counts the descriptors open now; null when it cannot.</param>
    public FileDescriptorBudget(long limit, Func<int?> countOpen)
    {
        Limit = limit;
        Reserve = limit == long.MaxValue ? 0 : FileDescriptorLimits.ReserveFor(limit);
        _countOpen = countOpen;
        _lastCount = countOpen() ?? 0;
        _upperBound = _lastCount;
    }

    /// <summary>This process's limit and its <c>/proc/self/fd</c>; no budget at all where there is no limit to read.</summary>
    public static FileDescriptorBudget ForThisProcess() =>
        new(FileDescriptorLimits.Limit() ?? long.MaxValue, FileDescriptorLimits.CountOpen);

    public long Limit { get; }
    public int Reserve { get; }

    /// <summary>Descriptors the listeners may fill the process up to.</summary>
    public long Ceiling => Limit == long.MaxValue ? long.MaxValue : Limit - Reserve;

    /// <summary>Descriptors open at the last count.</summary>
    public int LastCount => Volatile.Read(ref _lastCount);

    /// <summary>The episode in progress, or null while every listener accepts.</summary>
    public Exhaustion? Current => _exhaustion;

    /// <summary>
    /// Whether one more connection fits under the ceiling. Counts again when the cheap bound says it may not, when
    /// the last count is older than <see cref="RecountAfter"/> (the runtime, Kestrel and the WebSocket listener
    /// open descriptors the bound does not see), or when a paused listener asks (<paramref name="recount"/>).
    /// </summary>
    public bool HasRoom(bool recount = false)
    {
        if (!recount && Interlocked.Read(ref _upperBound) < Ceiling
            && Environment.TickCount64 - Interlocked.Read(ref _countedAt) < RecountAfter.TotalMilliseconds)
            return true;
        // Unreadable (no descriptor left even to read the directory): no room.
        var open = _countOpen();
        Interlocked.Exchange(ref _countedAt, Environment.TickCount64);
        Interlocked.Exchange(ref _releasedSinceCount, 0);
        Volatile.Write(ref _wakeSent, 0);
        if (open is not { } counted) return false;
        Volatile.Write(ref _lastCount, counted);
        Interlocked.Exchange(ref _upperBound, counted);
        return counted < Ceiling;
    }

    /// <summary>
    /// Descriptors open, as last counted; counted again when that count is older than <see cref="RecountAfter"/>.
    /// The <c>process.unix.file_descriptor.count</c> gauge reads this, so a scrape shares the listeners' count instead of
    /// reading <c>/proc/self/fd</c> again; null when it cannot be counted.
    /// </summary>
    public int? OpenNow()
    {
        if (Environment.TickCount64 - Interlocked.Read(ref _countedAt) < RecountAfter.TotalMilliseconds) return LastCount;
        var open = _countOpen();
        if (open is not { } counted) return null;
        Interlocked.Exchange(ref _countedAt, Environment.TickCount64);
        Volatile.Write(ref _lastCount, counted);
        Interlocked.Exchange(ref _upperBound, counted);
        return counted;
    }

    /// <summary>How long a count of the open descriptors is trusted, plus the accepts since.</summary>
    public static readonly TimeSpan RecountAfter = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A listener accepted a socket: one more descriptor until the next count says otherwise. Descriptors are
    /// numbered lowest free first, so a number at the ceiling means every one below it is taken: count again.
    /// </summary>
    public void Accepted(System.Net.Sockets.Socket socket)
    {
        Interlocked.Increment(ref _upperBound);
        if ((long)socket.Handle >= Ceiling) RanOut();
    }

    /// <summary>The accept itself failed with EMFILE or ENFILE, or the bound is no longer trusted: the next <see cref="HasRoom"/> counts again.</summary>
    public void RanOut() => Interlocked.Exchange(ref _upperBound, long.MaxValue / 2);

    /// <summary>
    /// A connection's socket was released (its actor stopped). While listeners are paused, the first close after a
    /// count that may have brought it under the ceiling wakes them, rather than leaving them to their backoff
    /// timer (up to a second): each close makes room for the next peer waiting in the backlog.
    /// </summary>
    public void Released()
    {
        Interlocked.Decrement(ref _upperBound);
        if (Volatile.Read(ref _pausedCount) == 0) return;
        var released = Interlocked.Increment(ref _releasedSinceCount);
        if (LastCount - released >= Ceiling || Interlocked.Exchange(ref _wakeSent, 1) == 1) return;
        Action[] wakes;
        lock (_paused) wakes = [.. _paused.Values];
        foreach (var wake in wakes) wake();
    }

    /// <summary>A listener stops accepting (<paramref name="wake"/> tells it that closes may have made room); true when this begins the process-wide episode.</summary>
    public bool Pause(string listener, Action wake)
    {
        lock (_paused)
        {
            if (!_paused.TryAdd(listener, wake)) return false;
            Volatile.Write(ref _pausedCount, _paused.Count);
            if (_paused.Count > 1) return false;
            _exhaustion = new Exhaustion(DateTimeOffset.UtcNow, LastCount, Limit, Reserve);
            return true;
        }
    }

    /// <summary>A listener accepts again; the episode that ends when it was the last one paused, else null.</summary>
    public Exhaustion? Resume(string listener)
    {
        lock (_paused)
        {
            if (!_paused.Remove(listener)) return null;
            Volatile.Write(ref _pausedCount, _paused.Count);
            if (_paused.Count > 0) return null;
            var ended = _exhaustion;
            _exhaustion = null;
            return ended;
        }
    }
}
