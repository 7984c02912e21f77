using Supervisor.Client;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Probes;

namespace Supervisor.Tests.Client;

/// <summary>The outbound side's decisions, free of actors and sockets: backoff, buffer, hash ring, rise/fall.</summary>
public sealed class ClientDecisionTests
{
    private static readonly BackoffSettings Backoffs = new(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2), 2.0, TimeSpan.FromSeconds(30));

    [Fact]
    public void Backoff_delays_must_stay_within_min_and_a_ceiling_that_grows_to_max_and_be_spread_by_jitter()
    {
        Assert.Equal([200, 400, 800, 1600, 2000, 2000], Enumerable.Range(1, 6).Select(n => Backoff.Ceiling(Backoffs, n).TotalMilliseconds));
        for (var seed = 0; seed < 20; seed++)
        {
            var backoff = new Backoff(Backoffs, new Random(seed));
            for (var n = 1; n <= 8; n++)
            {
                var delay = backoff.Next();
                Assert.Equal(n, backoff.Attempt);
                Assert.InRange(delay, Backoffs.Min, Backoff.Ceiling(Backoffs, n));
            }
        }
        // Full jitter: many clients that failed together spread out over the whole range.
        var fifth = Enumerable.Range(0, 500).Select(seed =>
        {
            var backoff = new Backoff(Backoffs, new Random(seed));
            for (var n = 1; n < 5; n++) backoff.Next();
            return backoff.Next().TotalMilliseconds;
        }).ToArray();
        Assert.InRange(fifth.Min(), 100, 300);
        Assert.InRange(fifth.Max(), 1800, 2000);
        Assert.InRange(fifth.Average(), 900, 1200);
    }

    [Fact]
    public void Backoff_must_start_again_from_attempt_1_after_a_reset()
    {
        var backoff = new Backoff(Backoffs, new Random(1));
        for (var n = 0; n < 5; n++) backoff.Next();
        backoff.Reset();
        Assert.Equal(0, backoff.Attempt);
        Assert.InRange(backoff.Next(), Backoffs.Min, Backoff.Ceiling(Backoffs, 1));
    }

    [Fact]
    public void Backoff_with_equal_min_and_max_must_always_wait_exactly_that_long()
    {
        var fixedDelay = new BackoffSettings(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), 2.0, TimeSpan.FromSeconds(1));
        var backoff = new Backoff(fixedDelay, new Random(3));
        Assert.All(Enumerable.Range(0, 5).Select(_ => backoff.Next()), d => Assert.Equal(TimeSpan.FromSeconds(1), d));
    }

    private static Frame Data(string text) => new(FrameType.Data, 0, text);

    [Fact]
    public void Buffer_must_apply_each_overflow_policy_and_count_what_it_loses()
    {
        var oldest = new OutboundBuffer(2, OverflowPolicy.DropOldest);
        Assert.Equal(OfferOutcome.Buffered, oldest.Offer(Data("a"), out _));
        Assert.Equal(OfferOutcome.Buffered, oldest.Offer(Data("b"), out _));
        Assert.Equal(OfferOutcome.BufferedDroppedOldest, oldest.Offer(Data("c"), out var dropped));
        Assert.Equal("a", dropped!.Data);
        Assert.True(oldest.TryPeek(out var head));
        Assert.Equal("b", head.Data);
        Assert.Equal((2, 1L, 0L), (oldest.Count, oldest.Dropped, oldest.Rejected));

        var newest = new OutboundBuffer(1, OverflowPolicy.DropNewest);
        newest.Offer(Data("a"), out _);
        Assert.Equal(OfferOutcome.DroppedNewest, newest.Offer(Data("b"), out dropped));
        Assert.Equal("b", dropped!.Data);
        Assert.Equal((1, 1L), (newest.Count, newest.Dropped));

        var fail = new OutboundBuffer(1, OverflowPolicy.Fail);
        fail.Offer(Data("a"), out _);
        Assert.Equal(OfferOutcome.Rejected, fail.Offer(Data("b"), out dropped));
        Assert.Null(dropped);
        Assert.Equal((1, 0L, 1L), (fail.Count, fail.Dropped, fail.Rejected));

        var none = new OutboundBuffer(0, OverflowPolicy.DropOldest);
        Assert.Equal(OfferOutcome.DroppedNewest, none.Offer(Data("a"), out _));
        Assert.Equal(0, none.Count);
    }

    [Fact]
    public void Hash_ring_must_walk_every_member_once_starting_at_the_owner_and_move_only_a_lost_members_keys()
    {
        var members = Enumerable.Range(0, 4).Select(i => $"p-{i}").ToArray();
        var ring = new HashRing(members, 100);
        var keys = Enumerable.Range(0, 2000).Select(i => $"key-{i}").ToArray();
        foreach (var key in keys.Take(100))
        {
            var walk = ring.Walk(key).ToArray();
            Assert.Equal(ring.Owner(key), walk[0]);
            Assert.Equal([0, 1, 2, 3], walk.Order());
        }
        var shares = keys.GroupBy(ring.Owner).Select(g => g.Count()).ToArray();
        Assert.Equal(4, shares.Length);
        Assert.All(shares, n => Assert.InRange(n, 300, 700));

        // Without member 2 (what skipping it does): its keys spread over the others, nobody else's move.
        var without = new HashRing(members.Where((_, i) => i != 2).ToArray(), 100);
        foreach (var key in keys)
        {
            var next = ring.Walk(key).First(m => m != 2);
            Assert.Equal(members[next], without.Members[without.Owner(key)]);
        }
    }

    [Fact]
    public void Probe_tracker_must_apply_rise_and_fall_like_haproxy()
    {
        var tracker = new ProbeTracker(rise: 2, fall: 3);
        Assert.Equal(ProbeState.Unknown, tracker.State);
        Assert.Null(tracker.Record(true));
        Assert.Equal(ProbeState.Up, tracker.Record(true));
        Assert.Null(tracker.Record(true));
        Assert.Null(tracker.Record(false));
        Assert.Null(tracker.Record(false));
        Assert.Null(tracker.Record(true)); // a success in between starts the count again
        Assert.Null(tracker.Record(false));
        Assert.Null(tracker.Record(false));
        Assert.Equal(ProbeState.Down, tracker.Record(false));
        Assert.Equal(3, tracker.ConsecutiveFailures);
        Assert.Null(tracker.Record(false));
        Assert.Null(tracker.Record(true));
        Assert.Equal(ProbeState.Up, tracker.Record(true));

        var failing = new ProbeTracker(rise: 2, fall: 2);
        Assert.Null(failing.Record(false));
        Assert.Equal(ProbeState.Down, failing.Record(false));
    }
}
