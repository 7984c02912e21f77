using System.Runtime.InteropServices;

namespace Supervisor.Transport;

/// <summary>
/// Gives the native heap's free pages back to the kernel a few seconds after TLS handshakes. A handshake allocates
/// tens of KB in OpenSSL that it frees at its end, interleaved with the connections' long-lived objects; glibc keeps
/// those freed pages resident, so after a burst of handshakes the process holds far more than its live connections
/// need (bench/README.md, issue 16: memory per connection). <c>malloc_trim(0)</c> returns every whole free page of
/// every arena. At most one trim per <see cref="Delay"/>, scheduled by the first handshake after the last one.
/// </summary>
internal static class NativeHeapTrim
{
    /// <summary>How long after a handshake the trim runs: handshakes arrive in bursts, and one trim covers a burst.</summary>
    private static readonly TimeSpan Delay = TimeSpan.FromSeconds(5);

    private static readonly bool Available = OperatingSystem.IsLinux();
    private static int _scheduled;
    private static readonly Timer Trimmer = new(static _ => Trim(), null, Timeout.Infinite, Timeout.Infinite);

    /// <summary>A handshake ended (or failed): trim within <see cref="Delay"/> unless a trim is already due.</summary>
    public static void AfterHandshake()
    {
        if (!Available || Interlocked.Exchange(ref _scheduled, 1) == 1) return;
        Trimmer.Change(Delay, Timeout.InfiniteTimeSpan);
    }

    private static void Trim()
    {
        Volatile.Write(ref _scheduled, 0);
        try
        {
            MallocTrim(0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc (musl has no malloc_trim): its allocator keeps what it keeps.
        }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);
}
