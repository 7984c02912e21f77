using Microsoft.Extensions.Logging;

namespace Supervisor.Cluster;

internal static partial class ClusterLog
{
    /// <summary>The close line of a connection whose node was lost, written by the one survivor the singleton monitor chose.</summary>
    [LoggerMessage(EventId = 20, Level = LogLevel.Information,
        Message = "Connection {ConnectionId} closed: node-down (node {Node} was lost); remote {Remote}, listener {Listener}, open {OpenSeconds:F1} s")]
    public static partial void ConnectionLost(ILogger log, string connectionId, string node, string remote, string listener, double openSeconds);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information,
        Message = "Cluster node {Node} (roles {Roles}); seed nodes {Seeds}; downing {Strategy} after {StableAfter} stable, failure detector pause {Pause}")]
    public static partial void Joining(ILogger log, string node, string roles, string seeds, string strategy, string stableAfter, string pause);

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning,
        Message = "Cluster node {Node} was frozen for {StallMs:F0} ms, longer than the cluster takes to down a silent node ({DowningMs:F0} ms): the other nodes have marked it down, so it marks itself down and stops")]
    public static partial void DowningSelfAfterStall(ILogger log, string node, double stallMs, double downingMs);

    [LoggerMessage(EventId = 23, Level = LogLevel.Warning,
        Message = "Cluster node {Node} was quarantined by member {Member} (it was removed from the cluster; no association is possible until it restarts): it marks itself down and stops")]
    public static partial void DowningSelfQuarantined(ILogger log, string node, string member);
}
