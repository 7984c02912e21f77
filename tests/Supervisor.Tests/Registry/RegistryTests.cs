using System.Diagnostics;
using Akka.Actor;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Registry;
using Xunit.Abstractions;

namespace Supervisor.Tests.Registry;

public sealed class RegistryTests(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit
{
    private static ConnectionStatus Status(int n, long heartbeats = 0) => new(
        $"c{n}", $"127.0.0.1:{n % 60000}", "tcp", "tcp", ConnectionState.Active, DateTimeOffset.UnixEpoch.AddSeconds(n),
        null, null, 0, null, 10, 20, heartbeats, KeepAliveStatus.Disabled);

    private static ConnectionLifecycle.Opened Opened(int n, ConnectionDirection direction = ConnectionDirection.Inbound) =>
        new(Status(n), direction, DateTimeOffset.UtcNow);

    private static ConnectionLifecycle.Closed Closed(ConnectionStatus status, CloseReason reason,
        ConnectionDirection direction = ConnectionDirection.Inbound) =>
        new(status with { State = ConnectionState.Closing }, direction, reason, "test", DateTimeOffset.UtcNow);

    [Fact]
    public async Task A_query_over_19000_connections_must_answer_well_under_a_second()
    {
        var registry = Sys.ActorOf(ConnectionRegistry.Props(16));
        for (var n = 0; n < 19_000; n++)
            registry.Tell(Opened(n));
        await registry.Ask<RegistryProtocol.Stats>(RegistryProtocol.GetStats.Instance); // all opened are in

        var clock = Stopwatch.StartNew();
        var all = await registry.Ask<RegistryProtocol.Connections>(RegistryProtocol.GetConnections.Instance, TimeSpan.FromSeconds(5));
        var listed = clock.Elapsed;
        var stats = await registry.Ask<RegistryProtocol.Stats>(RegistryProtocol.GetStats.Instance, TimeSpan.FromSeconds(5));
        output.WriteLine($"list of 19000: {listed.TotalMilliseconds:F1} ms; list + stats: {clock.Elapsed.TotalMilliseconds:F1} ms");

        Assert.Equal(19_000, all.Items.Count);
        Assert.Equal(19_000, all.Items.Select(s => s.Id).Distinct().Count());
        Assert.Equal(19_000, stats.Active);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Totals_must_count_accepted_active_closed_by_reason_refused_outbound_and_live_traffic()
    {
        var traffic = new Supervisor.Connections.LiveTraffic();
        var registry = Sys.ActorOf(ConnectionRegistry.Props(4, traffic));
        for (var n = 0; n < 10; n++)
            registry.Tell(Opened(n));
        registry.Tell(Opened(100, ConnectionDirection.Outbound));
        registry.Tell(Opened(101, ConnectionDirection.Outbound));
        registry.Tell(new RegistryProtocol.ConnectionUpdated(Status(1, heartbeats: 5)));
        registry.Tell(Closed(Status(2, heartbeats: 3), CloseReason.HeartbeatTimeout));
        registry.Tell(Closed(Status(3), CloseReason.PeerReset));
        registry.Tell(new ConnectionLifecycle.Released("c3", ConnectionDirection.Inbound, DateTimeOffset.UtcNow));
        registry.Tell(Closed(Status(101), CloseReason.PeerClosed, ConnectionDirection.Outbound));
        registry.Tell(new ConnectionLifecycle.Refused("127.0.0.1:1", "tcp", CloseReason.RejectedCapacity, "full", DateTimeOffset.UtcNow));
        // An update that arrives after its close must not bring the connection back.
        registry.Tell(new RegistryProtocol.ConnectionUpdated(Status(3)));
        // Heartbeats and bytes are the live counters', current to the frame, not the rows' sums.
        for (var i = 0; i < 7; i++) traffic.HeartbeatReceived();
        traffic.Received(123);
        traffic.Sent(45);

        var stats = await registry.Ask<RegistryProtocol.Stats>(RegistryProtocol.GetStats.Instance);
        Assert.Equal(11, stats.Accepted);
        Assert.Equal(8, stats.Active);
        Assert.Equal(1, stats.Refused);
        Assert.Equal(1, stats.Closed(CloseReason.HeartbeatTimeout));
        Assert.Equal(1, stats.Closed(CloseReason.PeerReset));
        Assert.Equal(1, stats.Closed(CloseReason.RejectedCapacity));
        Assert.Equal(0, stats.Closed(CloseReason.PeerClosed)); // the outbound close is in its own totals
        Assert.Equal(stats.Accepted, stats.Active + stats.ClosedByReason.Values.Sum());
        Assert.Equal(new RegistryProtocol.OutboundTotals(2, 1, 1), stats.Outbound);
        Assert.Equal((7L, 123L, 45L), (stats.Heartbeats, stats.BytesIn, stats.BytesOut));

        var one = await registry.Ask<RegistryProtocol.ConnectionFound>(new RegistryProtocol.GetConnection("c1"));
        Assert.Equal(5, one.Status!.HeartbeatsReceived);
        // Closed and not yet released: listed as closing; released: gone.
        Assert.Equal(ConnectionState.Closing, (await registry.Ask<RegistryProtocol.ConnectionFound>(new RegistryProtocol.GetConnection("c2"))).Status!.State);
        Assert.Null((await registry.Ask<RegistryProtocol.ConnectionFound>(new RegistryProtocol.GetConnection("c3"))).Status);
    }

    [Fact]
    public async Task A_corrupt_message_must_leave_the_table_and_totals_intact()
    {
        var registry = Sys.ActorOf(ConnectionRegistry.Props(1));
        for (var n = 0; n < 5; n++)
            registry.Tell(Opened(n));
        registry.Tell(Closed(Status(0), CloseReason.PeerClosed));
        // A corrupt message (no status) is dropped with a warning, not a restart that would lose the table.
        await EventFilter.Warning(contains: "malformed").ExpectOneAsync(() =>
        {
            registry.Tell(new ConnectionLifecycle.Closed(null!, ConnectionDirection.Inbound, CloseReason.PeerClosed, "", DateTimeOffset.UtcNow));
            return Task.CompletedTask;
        });
        var stats = await registry.Ask<RegistryProtocol.Stats>(RegistryProtocol.GetStats.Instance);
        Assert.Equal((5L, 4L, 1L), (stats.Accepted, stats.Active, stats.Closed(CloseReason.PeerClosed)));
        Assert.Equal(stats.Accepted, stats.Active + stats.ClosedByReason.Values.Sum());
    }

    [Fact]
    public async Task A_refreshed_row_must_show_every_field_of_the_refresh_and_keep_the_connections_identity()
    {
        // Rows are refreshed in place (RegistryRow): a field ConnectionStatus gains and the row does not copy would
        // be lost from every query. The refresh below differs from the opened status in every field but the identity
        // ones, so a new field fails here until the row carries it.
        var registry = Sys.ActorOf(ConnectionRegistry.Props(2));
        var opened = Status(7);
        registry.Tell(new ConnectionLifecycle.Opened(opened, ConnectionDirection.Inbound, DateTimeOffset.UtcNow));
        var refreshed = opened with
        {
            Id = opened.Id, // identity, start and address do not change over a connection's life
            State = ConnectionState.Suspect,
            LastFrameAt = DateTimeOffset.UnixEpoch.AddDays(1),
            LastHeartbeatAt = DateTimeOffset.UnixEpoch.AddDays(2),
            MissedHeartbeats = 2,
            RttMs = 1.5,
            BytesIn = 1_000,
            BytesOut = 2_000,
            HeartbeatsReceived = 42,
            KeepAlive = new KeepAliveStatus(true, 1, 1, 9, null, ["nudged"]),
            Handler = new HandlerFlow(3, 64, true, 1),
            Phi = new PhiStatus(2.5, 2_000, 100, 12, 4_000, 8_000),
            Negotiated = new NegotiatedHeartbeat(1_000, 2_000, 4_000, 6_000),
            Cause = SilenceCause.PeerHung,
        };
        var identity = new[] { "Id", "Remote", "Listener", "Protocol", "ConnectedAt", "EqualityContract" };
        foreach (var property in typeof(ConnectionStatus).GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
        {
            if (identity.Contains(property.Name)) continue;
            Assert.False(Equals(property.GetValue(opened), property.GetValue(refreshed)), $"the refresh must change {property.Name}");
        }

        registry.Tell(new RegistryProtocol.ConnectionUpdated(refreshed));
        var found = await registry.Ask<RegistryProtocol.ConnectionFound>(new RegistryProtocol.GetConnection(opened.Id));
        Assert.Equal(refreshed, found.Status);
        var listed = await registry.Ask<RegistryProtocol.Connections>(RegistryProtocol.GetConnections.Instance);
        Assert.Equal(refreshed, Assert.Single(listed.Items));
        // A state change is a refresh too; the close keeps the last status as it came.
        var suspectAgain = refreshed with { MissedHeartbeats = 3 };
        registry.Tell(new ConnectionLifecycle.StateChanged(suspectAgain, ConnectionDirection.Inbound, DateTimeOffset.UtcNow));
        Assert.Equal(suspectAgain, (await registry.Ask<RegistryProtocol.ConnectionFound>(new RegistryProtocol.GetConnection(opened.Id))).Status);
    }

    [Fact]
    public void Shard_index_must_be_stable_and_spread_ids()
    {
        Assert.Equal(ConnectionRegistry.ShardIndex("c12345", 16), ConnectionRegistry.ShardIndex("c12345", 16));
        var used = Enumerable.Range(0, 1000).Select(n => ConnectionRegistry.ShardIndex($"c{n}", 16)).Distinct().Count();
        Assert.Equal(16, used);
    }
}
