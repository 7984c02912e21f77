using Supervisor.Connections;

namespace Supervisor.Tests.Connections;

/// <summary>The deadline queue on the real scheduler (its own thread): on time, moved, cancelled.</summary>
public sealed class DeadlineQueueTests : Akka.TestKit.Xunit2.TestKit
{
    private sealed record Due(string Name);

    [Fact]
    public void A_deadline_must_be_told_once_when_it_passes_and_not_before()
    {
        var deadline = DeadlineQueue.Get(Sys).Register(TestActor, new Due("a"));
        var armedAt = Sys.Scheduler.Now;
        deadline.Set(armedAt + TimeSpan.FromMilliseconds(300));
        ExpectNoMsg(TimeSpan.FromMilliseconds(250));
        ExpectMsg<Due>(TimeSpan.FromSeconds(1));
        Assert.True(Sys.Scheduler.Now - armedAt >= TimeSpan.FromMilliseconds(300));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void A_deadline_moved_later_must_be_told_at_its_new_time_only()
    {
        var deadline = DeadlineQueue.Get(Sys).Register(TestActor, new Due("moved"));
        var armedAt = Sys.Scheduler.Now;
        deadline.Set(armedAt + TimeSpan.FromMilliseconds(200));
        deadline.Set(armedAt + TimeSpan.FromMilliseconds(1000)); // what a frame does: no lock, no message
        // Past the old time by 300 ms, short of the new one by 500 (at load 12 the test thread was once 134 ms late
        // into a window that ended 100 ms before the new time).
        ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        ExpectMsg<Due>(TimeSpan.FromSeconds(2));
        Assert.True(Sys.Scheduler.Now - armedAt >= TimeSpan.FromMilliseconds(1000));
    }

    [Fact]
    public void A_deadline_moved_earlier_or_cancelled_must_follow_its_last_setting()
    {
        var queue = DeadlineQueue.Get(Sys);
        var earlier = queue.Register(TestActor, new Due("earlier"));
        var cancelled = queue.Register(TestActor, new Due("cancelled"));
        var now = Sys.Scheduler.Now;
        earlier.Set(now + TimeSpan.FromSeconds(30));
        earlier.Set(now + TimeSpan.FromMilliseconds(100));
        cancelled.Set(now + TimeSpan.FromMilliseconds(150));
        cancelled.Cancel();
        Assert.Equal("earlier", ExpectMsg<Due>(TimeSpan.FromSeconds(1)).Name);
        ExpectNoMsg(TimeSpan.FromMilliseconds(400));
    }
}
