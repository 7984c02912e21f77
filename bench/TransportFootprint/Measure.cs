using System.Diagnostics;
using System.Runtime;

namespace TransportFootprint;

internal readonly record struct Snapshot(long ManagedHeapBytes, long RssBytes, int Threads);

internal static class Measure
{
    /// <summary>Two forced, blocking, compacting full GCs (LOH compacted once) with finalizers drained.</summary>
    public static void FullGc()
    {
        for (int i = 0; i < 2; i++)
        {
            GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
    }

    public static Snapshot Take()
    {
        FullGc();
        long heap = GC.GetTotalMemory(forceFullCollection: true);
        return new Snapshot(heap, ReadVmRssBytes(), Process.GetCurrentProcess().Threads.Count);
    }

    public static TimeSpan Cpu() => Process.GetCurrentProcess().TotalProcessorTime;

    /// <summary>VmRSS from /proc/self/status (reported in kB).</summary>
    public static long ReadVmRssBytes()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
        }
        throw new InvalidOperationException("VmRSS not found in /proc/self/status");
    }
}
