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
}
