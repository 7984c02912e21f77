using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using Supervisor.Transport;

namespace Supervisor.Tests.Hardening;

/// <summary>
/// The heap settle after a burst of opens (<see cref="HeapSettle"/>; its effect on RSS is measured in bench/README.md,
/// issue 16). Each test has its own instance; the collections it runs are the process's real ones.
/// </summary>
public sealed class HeapSettleTests
{
    private static (HeapSettle Settle, ChannelReader<HeapSettle.Report> Reports) Make(TimeSpan quiet)
    {
        var settle = new HeapSettle(quiet);
        var reports = Channel.CreateUnbounded<HeapSettle.Report>();
        settle.Settled += report => reports.Writer.TryWrite(report);
        return (settle, reports.Reader);
    }

    [Fact]
    public async Task A_burst_of_opens_must_be_followed_once_quiet_by_one_compacting_collection()
    {
        var (settle, reports) = Make(TimeSpan.FromMilliseconds(300));
        using var _ = settle;
        var fullCollections = GC.CollectionCount(GC.MaxGeneration);
        for (var i = 0; i < HeapSettle.MinBurst; i++) settle.ConnectionOpened();

        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var report = await reports.ReadAsync(wait.Token);
        Assert.Equal(HeapSettle.MinBurst, report.Opened);
        Assert.True(report.Compacted);
        Assert.True(GC.CollectionCount(GC.MaxGeneration) > fullCollections, "no full collection ran");
        // One settle per burst: nothing more without new opens.
        await Task.Delay(1_000);
        Assert.False(reports.TryRead(out var more), $"a second settle without opens: {more}");
        // A second burst within MinCompactionInterval (a peer repeating bursts to pause the process): trimmed, not compacted.
        for (var i = 0; i < HeapSettle.MinBurst; i++) settle.ConnectionOpened();
        var second = await reports.ReadAsync(wait.Token);
        Assert.False(second.Compacted, "compacted again within MinCompactionInterval");
    }

    [Fact]
    public async Task A_few_opens_must_only_trim_the_native_heap_without_pausing_the_process()
    {
        var (settle, reports) = Make(TimeSpan.FromMilliseconds(200));
        using var _ = settle;
        for (var i = 0; i < 10; i++) settle.ConnectionOpened();
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var report = await reports.ReadAsync(wait.Token);
        Assert.Equal(10, report.Opened);
        Assert.False(report.Compacted);
    }

    [Fact]
    public async Task Opens_that_keep_coming_must_hold_the_settle_back_until_they_stop()
    {
        // The quiet (3 s) is 60 times the gap between opens: only a stall of the test's own thread that long could
        // let a settle in while they keep coming.
        var quiet = TimeSpan.FromSeconds(3);
        var (settle, reports) = Make(quiet);
        using var _ = settle;
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(4);
        var opened = 0;
        while (DateTime.UtcNow < until)
        {
            settle.ConnectionOpened();
            opened++;
            await Task.Delay(50);
            Assert.False(reports.TryRead(out var early), $"settled while opens kept coming: {early}");
        }
        var lastOpen = DateTime.UtcNow;
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var report = await reports.ReadAsync(wait.Token);
        Assert.True(DateTime.UtcNow - lastOpen >= quiet - TimeSpan.FromMilliseconds(100), $"settled {DateTime.UtcNow - lastOpen} after the last open");
        Assert.Equal(opened, report.Opened);
    }

    /// <param name="laterHostAsksForIt">A later host configures it on: off from one host holds for the process.</param>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Off_must_never_settle(bool laterHostAsksForIt)
    {
        var (settle, reports) = Make(TimeSpan.FromMilliseconds(100));
        using var _ = settle;
        settle.Configure(null, NullLogger.Instance);
        if (laterHostAsksForIt) settle.Configure(TimeSpan.FromMilliseconds(100), NullLogger.Instance);
        for (var i = 0; i < HeapSettle.MinBurst; i++) settle.ConnectionOpened();
        await Task.Delay(1_000);
        Assert.False(reports.TryRead(out var report), $"settled while off: {report}");
    }
}
