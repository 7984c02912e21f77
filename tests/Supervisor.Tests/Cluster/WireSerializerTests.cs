using System.Text.Json;
using Akka.Actor;
using Supervisor.Cluster;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Tests.Cluster;

public sealed class WireSerializerTests : Akka.TestKit.Xunit2.TestKit
{
    private static readonly DateTimeOffset At = new(2026, 11, 25, 12, 0, 0, TimeSpan.FromHours(1));

    private static readonly ConnectionStatus Status = new("c17@127.0.0.1:4053", "127.0.0.1:50000", "tcp", "tcp", ConnectionState.Suspect,
        At, At.AddSeconds(3), null, 2, 0.25, 100, 200, 7, new KeepAliveStatus(true, 600, 30, 3, null, ["idle differs"]));

    private static readonly RegistryProtocol.Stats Totals = new(3, 10, new Dictionary<string, long> { ["peer-closed"] = 7 }, 70, 1_000, 2_000);

    private static readonly Alert AnAlert = new("node-down:n-1", "node-down:n", AlertSeverity.Critical, 5, 0, At, null, "lost", AlertScopes.Cluster);

    /// <summary>One of every message that crosses between nodes.</summary>
    public static TheoryData<string> Samples => new(WireSerializer.Types.Keys);

    private static readonly Dictionary<Type, object> Instances = new object[]
    {
        RegistryProtocol.GetStats.Instance,
        Totals,
        new RegistryProtocol.QueryConnections(new ConnectionFilter([ConnectionState.Active, ConnectionState.Suspect], "tcp", null), 50),
        new RegistryProtocol.ConnectionsPage(1, [Status], ["127.0.0.1:4055"]),
        RegistryProtocol.GetConnections.Instance,
        new RegistryProtocol.Connections([Status]),
        new RegistryProtocol.GetConnection(Status.Id),
        new RegistryProtocol.ConnectionFound(Status.Id, Status),
        new ConnectionCommands.GetStatus(Status.Id),
        new ConnectionCommands.CloseConnection(Status.Id, CloseReason.AdminClosed),
        new ConnectionCommands.CloseAccepted(Status.Id, true),
        new ConnectionCommands.GetTcpInfo(Status.Id),
        new ConnectionCommands.TcpInfoReport(Status.Id, "tcp", new TcpInfo("established", 0, 0, 204, 0.1, 0.05, 0, 0, 0, 10, 5, 5, 5)),
        new LedgerBatch("127.0.0.1:4053", 42, 7, true, [new LedgerEntry(Status.Id, Status.Remote, "tcp", "tcp", At)], [new ClosedEntry("c1@127.0.0.1:4053", "peer-closed")], Totals),
        new ResendLedger("127.0.0.1:4054"),
        new NodeCounts("127.0.0.1:4053", 42, Totals),
        new NodeLost("127.0.0.1:4053", 42, 3, Totals),
        new ReportLoss("127.0.0.1:4053", 42, true),
        MonitorProtocol.GetAlerts.Instance,
        new MonitorProtocol.Alerts([AnAlert], [AnAlert with { ResolvedAt = At.AddMinutes(1) }]),
        MonitorProtocol.GetCounters.Instance,
        new MonitorProtocol.Counters(3, 10, new Dictionary<string, long> { ["node-down"] = 2 }, 4, 1, new MonitorProtocol.RttSummary(5, 0.1, 0.2, 0.3, 0.4)),
    }.ToDictionary(o => o.GetType());

    [Theory]
    [MemberData(nameof(Samples))]
    public void Every_wire_message_must_survive_the_trip(string manifest)
    {
        var serializer = new WireSerializer((ExtendedActorSystem)Sys);
        var message = Instances[WireSerializer.Types[manifest]];
        Assert.Equal(manifest, serializer.Manifest(message));
        var back = serializer.FromBinary(serializer.ToBinary(message), manifest);
        Assert.IsType(message.GetType(), back);
        // Records holding lists compare those by reference: compare what they say instead.
        Assert.Equal(JsonSerializer.Serialize(message, message.GetType()), JsonSerializer.Serialize(back, back.GetType()));
    }

    [Fact]
    public void Every_message_a_node_asks_or_answers_across_the_cluster_must_be_listed()
    {
        // Local only: connection actors to their registry, shutdown to the supervisor, the HTTP side to this node's actors.
        Type[] localOnly =
        [
            typeof(RegistryProtocol.ConnectionUpdated), typeof(RegistryProtocol.OutboundTotals), typeof(ConnectionCommands.CloseAll), typeof(ConnectionCommands.AllClosed),
            typeof(MonitorProtocol.FlushSinks), typeof(MonitorProtocol.SinksFlushed), typeof(MonitorProtocol.RttSummary),
            typeof(GetClusterView), typeof(ClusterView), typeof(MemberView), typeof(Departure), typeof(MonitorCounts), typeof(LedgerEntry), typeof(ClosedEntry),
        ];
        var declared = new[] { typeof(RegistryProtocol), typeof(ConnectionCommands), typeof(ClusterProtocol), typeof(MonitorProtocol) }
            .SelectMany(t => t.GetNestedTypes())
            .Where(t => t.IsClass && !localOnly.Contains(t));
        Assert.Empty(declared.Except(WireSerializer.Types.Values));
    }

    [Fact]
    public void An_unknown_manifest_must_be_refused_by_name()
    {
        var serializer = new WireSerializer((ExtendedActorSystem)Sys);
        var error = Assert.Throws<System.Runtime.Serialization.SerializationException>(() => serializer.FromBinary("{}"u8.ToArray(), "x.nope"));
        Assert.Contains("x.nope", error.Message);
    }
}
