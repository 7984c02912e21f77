using Supervisor.Cluster;
using Supervisor.Messages.Protocol;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Tests.Cluster;

public sealed class LedgerReplicaTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    private static LedgerEntry Entry(string id) => new(id, "127.0.0.1:5000", "tcp", "tcp", T0);

    private static RegistryProtocol.Stats Totals(long active, long accepted) =>
        new(active, accepted, new Dictionary<string, long> { ["peer-closed"] = accepted - active }, 0, 0, 0);

    private static LedgerBatch Batch(long sequence, bool reset, string[] opened, string[] closed, RegistryProtocol.Stats totals) =>
        new("127.0.0.1:4053", 7, sequence, reset, opened.Select(Entry).ToArray(), closed.Select(id => new ClosedEntry(id, "peer-closed")).ToArray(), totals);

    [Fact]
    public void Batches_in_order_must_rebuild_the_members_ledger()
    {
        var replica = new LedgerReplica(7);
        Assert.True(replica.Apply(Batch(1, reset: true, ["c1@n", "c2@n"], [], Totals(2, 2)), T0));
        Assert.True(replica.Apply(Batch(2, reset: false, ["c3@n"], ["c1@n"], Totals(2, 3)), T0));
        Assert.True(replica.Complete);
        Assert.Equal(["c2@n", "c3@n"], replica.Live.Keys.Order());
        Assert.Equal(3, replica.Totals.Accepted);
    }

    [Fact]
    public void A_gap_must_ask_for_a_full_copy_once_per_wait_and_keep_the_freshest_totals()
    {
        var replica = new LedgerReplica(7);
        replica.Apply(Batch(1, reset: true, ["c1@n"], [], Totals(1, 1)), T0);
        // Batch 2 is lost.
        Assert.False(replica.Apply(Batch(3, reset: false, ["c3@n"], [], Totals(2, 3)), T0));
        Assert.False(replica.Complete);
        Assert.Equal(3, replica.Totals.Accepted);
        Assert.DoesNotContain("c3@n", replica.Live.Keys);
        // Further batches before the copy arrives: not asked again within the wait, asked again after it.
        Assert.True(replica.Apply(Batch(4, reset: false, ["c4@n"], [], Totals(3, 4)), T0 + TimeSpan.FromMilliseconds(250)));
        Assert.False(replica.Apply(Batch(5, reset: false, [], [], Totals(3, 4)), T0 + LedgerReplica.CopyWait));
        // The copy (two batches: a reset, then the rest) replaces what was known.
        Assert.True(replica.Apply(Batch(6, reset: true, ["c1@n", "c2@n"], [], Totals(4, 5)), T0 + LedgerReplica.CopyWait));
        Assert.True(replica.Apply(Batch(7, reset: false, ["c3@n", "c4@n"], [], Totals(4, 5)), T0 + LedgerReplica.CopyWait));
        Assert.True(replica.Complete);
        Assert.Equal(["c1@n", "c2@n", "c3@n", "c4@n"], replica.Live.Keys.Order());
    }

    [Fact]
    public void A_batch_before_any_full_copy_must_ask_for_one()
    {
        var replica = new LedgerReplica(7);
        Assert.False(replica.Apply(Batch(5, reset: false, ["c9@n"], [], Totals(1, 1)), T0));
        Assert.Empty(replica.Live);
        Assert.Equal(1, replica.Totals.Active);
    }
}
