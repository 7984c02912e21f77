using System.Globalization;
using System.Runtime.InteropServices;

namespace LoadGen;

/// <summary>One reading of the server process from /proc: what the kernel says it costs.</summary>
/// <remarks>
/// Context switches are summed over the process's threads: a voluntary one is a thread that blocked
/// (in epoll_wait, a futex, a sleep) and so had to be woken again, which is how the load run counts
/// the server's wake-ups per frame. Run-queue wait (the second field of each thread's schedstat) is the
/// time its threads were ready to run but waited for a core: on a machine to itself it is near zero,
/// on a busy one it says how much of a figure is the machine's.
/// </remarks>
internal readonly record struct ProcSample(long RssKiB, double CpuSeconds, int OpenFiles, int Threads, long TakenAtTicks,
    IReadOnlyDictionary<int, ThreadCounters>? PerThread = null)
{
    /// <summary>
    /// The counters' growth from <paramref name="start"/> to this sample, over the threads alive now (a thread
    /// that ended meanwhile takes its counters with it, so plain sums could go down; one born meanwhile counts whole).
    /// </summary>
    public ThreadCounters GrowthSince(ProcSample start)
    {
        var growth = new ThreadCounters(0, 0, 0);
        foreach (var (tid, now) in PerThread ?? new Dictionary<int, ThreadCounters>())
        {
            var before = start.PerThread?.GetValueOrDefault(tid) ?? new ThreadCounters(0, 0, 0);
            growth = new ThreadCounters(growth.VoluntarySwitches + now.VoluntarySwitches - before.VoluntarySwitches,
                growth.InvoluntarySwitches + now.InvoluntarySwitches - before.InvoluntarySwitches,
                growth.RunQueueWaitNs + now.RunQueueWaitNs - before.RunQueueWaitNs);
        }
        return growth;
    }
}

/// <summary>One thread's context switches and run-queue wait (nanoseconds), as /proc/PID/task/TID reports them.</summary>
internal readonly record struct ThreadCounters(long VoluntarySwitches, long InvoluntarySwitches, long RunQueueWaitNs);

/// <summary>Reads another process's RSS, CPU seconds, open files and threads from /proc/PID.</summary>
internal static partial class ServerProcess
{
    private const int ScClkTck = 2;

    private const int SigUsr1 = 10;

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long SysConf(int name);

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);

    private static readonly double TicksPerSecond = Math.Max(1, SysConf(ScClkTck));

    public static ProcSample Sample(int pid)
    {
        long rss = 0;
        var threads = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            else if (line.StartsWith("Threads:", StringComparison.Ordinal)) threads = int.Parse(line.Split('\t', ' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        }
        // Fields after the command name (which may hold spaces) start at field 3; utime is 14, stime 15.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var cpu = (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
        var files = Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd").Count();
        var perThread = new Dictionary<int, ThreadCounters>();
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                long voluntary = 0, involuntary = 0, runQueueWait = 0;
                var schedstat = File.ReadAllText($"{task}/schedstat").Split(' ');
                if (schedstat.Length > 1) runQueueWait = long.Parse(schedstat[1], CultureInfo.InvariantCulture);
                foreach (var line in File.ReadLines($"{task}/status"))
                {
                    if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal)) voluntary = LastNumber(line);
                    else if (line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal)) involuntary = LastNumber(line);
                }
                perThread[int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture)] = new ThreadCounters(voluntary, involuntary, runQueueWait);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The thread ended between the listing and the read.
            }
        }
        return new ProcSample(rss, cpu, files, threads, System.Diagnostics.Stopwatch.GetTimestamp(), perThread);
    }

    private static long LastNumber(string line) =>
        long.Parse(line.AsSpan(line.LastIndexOfAny([' ', '\t']) + 1), CultureInfo.InvariantCulture);

    /// <summary>Asks the server (the native floor only: a .NET process would die of it) to print its counters.</summary>
    public static void SignalUsr1(int pid) => Kill(pid, SigUsr1);

    public static bool IsAlive(int pid) => Directory.Exists($"/proc/{pid}");
}
