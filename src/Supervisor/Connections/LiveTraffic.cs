using System.Runtime.InteropServices;

namespace Supervisor.Connections;

/// <summary>
/// Heartbeats and bytes of every inbound connection, added where the work happens (the connection actor, on the
/// thread that handles the frame) and summed only when asked (<c>/api/stats</c>, <c>/metrics</c>, the dashboard):
/// the totals are current to the frame without a message per heartbeat. Striped by processor, each stripe on its own
/// cache line, so the dispatcher threads do not contend; an add is one uncontended interlocked instruction and
/// allocates nothing.
/// </summary>
internal sealed class LiveTraffic
{
    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private struct Stripe
    {
        // 128 bytes: a stripe on its own pair of cache lines (adjacent-line prefetch), padding on both sides of the counters.
        [FieldOffset(64)] public long Heartbeats;
        [FieldOffset(72)] public long BytesIn;
        [FieldOffset(80)] public long BytesOut;
    }

    private readonly Stripe[] _stripes;
    private readonly int _mask;

    public LiveTraffic()
    {
        var count = 1;
        while (count < Environment.ProcessorCount) count <<= 1;
        _stripes = new Stripe[count];
        _mask = count - 1;
    }

    private ref Stripe Mine => ref _stripes[Thread.GetCurrentProcessorId() & _mask];

    public void HeartbeatReceived() => Interlocked.Increment(ref Mine.Heartbeats);

    public void Received(long bytes) => Interlocked.Add(ref Mine.BytesIn, bytes);

    public void Sent(long bytes) => Interlocked.Add(ref Mine.BytesOut, bytes);

    /// <summary>The sums now; each is exact for the adds that finished before it was read.</summary>
    public (long Heartbeats, long BytesIn, long BytesOut) Read()
    {
        long heartbeats = 0, bytesIn = 0, bytesOut = 0;
        for (var i = 0; i < _stripes.Length; i++)
        {
            heartbeats += Volatile.Read(ref _stripes[i].Heartbeats);
            bytesIn += Volatile.Read(ref _stripes[i].BytesIn);
            bytesOut += Volatile.Read(ref _stripes[i].BytesOut);
        }
        return (heartbeats, bytesIn, bytesOut);
    }
}
