using System.Runtime.Serialization;
using System.Text.Json;
using Akka.Actor;
using Akka.Serialization;
using Supervisor.Messages.Protocol;

namespace Supervisor.Cluster;

/// <summary>
/// How the supervisor's own messages cross between nodes: System.Text.Json, one short manifest per type. Akka's
/// default (Newtonsoft with a type name on every object) took about 2 s for one node's 19,000-row table and held
/// the remoting connection, and with it the cluster's heartbeats, for as long (bench/README.md, issue 8).
/// Every type that crosses is listed here once; a type missing from the list would fall back to the default.
/// </summary>
internal sealed class WireSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const string Name = "supervisor-wire";

    /// <summary>Akka's identifiers below 100 are reserved for its own serializers.</summary>
    public const int Id = 8_421;

    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.General);

    /// <summary>Manifest → type, for every message that travels between nodes (questions and their answers).</summary>
    public static IReadOnlyDictionary<string, Type> Types { get; } = new Dictionary<string, Type>
    {
        ["r.stats?"] = typeof(RegistryProtocol.GetStats),
        ["r.stats"] = typeof(RegistryProtocol.Stats),
        ["r.query"] = typeof(RegistryProtocol.QueryConnections),
        ["r.page"] = typeof(RegistryProtocol.ConnectionsPage),
        ["r.all?"] = typeof(RegistryProtocol.GetConnections),
        ["r.all"] = typeof(RegistryProtocol.Connections),
        ["r.one?"] = typeof(RegistryProtocol.GetConnection),
        ["r.one"] = typeof(RegistryProtocol.ConnectionFound),
        ["c.status?"] = typeof(ConnectionCommands.GetStatus),
        ["c.close"] = typeof(ConnectionCommands.CloseConnection),
        ["c.closed"] = typeof(ConnectionCommands.CloseAccepted),
        ["c.tcp?"] = typeof(ConnectionCommands.GetTcpInfo),
        ["c.tcp"] = typeof(ConnectionCommands.TcpInfoReport),
        ["k.batch"] = typeof(ClusterProtocol.LedgerBatch),
        ["k.resend"] = typeof(ClusterProtocol.ResendLedger),
        ["k.counts"] = typeof(ClusterProtocol.NodeCounts),
        ["k.lost"] = typeof(ClusterProtocol.NodeLost),
        ["k.report"] = typeof(ClusterProtocol.ReportLoss),
        ["m.alerts?"] = typeof(MonitorProtocol.GetAlerts),
        ["m.alerts"] = typeof(MonitorProtocol.Alerts),
        ["m.counters?"] = typeof(MonitorProtocol.GetCounters),
        ["m.counters"] = typeof(MonitorProtocol.Counters),
    };

    private static readonly IReadOnlyDictionary<Type, string> Manifests = Types.ToDictionary(t => t.Value, t => t.Key);

    public override int Identifier => Id;

    public override string Manifest(object o) =>
        Manifests.TryGetValue(o.GetType(), out var manifest)
            ? manifest
            : throw new ArgumentException($"{o.GetType()} is not a supervisor wire message", nameof(o));

    public override byte[] ToBinary(object obj) => JsonSerializer.SerializeToUtf8Bytes(obj, obj.GetType(), Options);

    public override object FromBinary(byte[] bytes, string manifest) =>
        Types.TryGetValue(manifest, out var type)
            ? JsonSerializer.Deserialize(bytes, type, Options) ?? throw new SerializationException($"null {manifest}")
            : throw new SerializationException($"unknown supervisor wire manifest '{manifest}'");
}
