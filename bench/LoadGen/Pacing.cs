using System.Diagnostics;
using System.Runtime.InteropServices;

namespace LoadGen;

/// <summary>
/// Sleeps with microsecond precision for the spread sender: Thread.Sleep rounds to milliseconds, so a
/// sender that uses it wakes about 1,000 times a second and sends every frame that fell due meanwhile
/// in one burst (10 frames per wake-up at 10,000 heartbeats/s).
/// </summary>
internal static partial class Pacing
{
    private const int PrSetTimerSlack = 29;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "nanosleep")]
    private static partial int NanoSleep(in TimeSpec request, IntPtr remaining);

    [LibraryImport("libc", EntryPoint = "prctl")]
    private static partial int Prctl(int option, nuint argument2, nuint argument3, nuint argument4, nuint argument5);

    /// <summary>
    /// The kernel lets a normal thread's timer fire up to 50 µs late so it can batch wake-ups; the
    /// spread sender wants its own wake-ups one by one. Applies to the calling thread.
    /// </summary>
    public static void TightenTimerSlack() => Prctl(PrSetTimerSlack, 1_000, 0, 0, 0);

    /// <summary>Sleeps for the given Stopwatch ticks (an interrupted sleep just returns early).</summary>
    public static void Sleep(long ticks)
    {
        if (ticks <= 0) return;
        var nanoseconds = (long)(ticks * (1e9 / Stopwatch.Frequency));
        NanoSleep(new TimeSpec { Seconds = nanoseconds / 1_000_000_000, Nanoseconds = nanoseconds % 1_000_000_000 }, IntPtr.Zero);
    }
}
