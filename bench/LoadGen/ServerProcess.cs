using System.Globalization;
using System.Runtime.InteropServices;

namespace LoadGen;

/// <summary>One reading of the server process from /proc: what the kernel says it costs.</summary>
internal readonly record struct ProcSample(long RssKiB, double CpuSeconds, int OpenFiles, int Threads, long TakenAtTicks);

/// <summary>Reads another process's RSS, CPU seconds, open files and threads from /proc/PID.</summary>
internal static partial class ServerProcess
{
    private const int ScClkTck = 2;

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long SysConf(int name);

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
        return new ProcSample(rss, cpu, files, threads, System.Diagnostics.Stopwatch.GetTimestamp());
    }

    public static bool IsAlive(int pid) => Directory.Exists($"/proc/{pid}");
}
