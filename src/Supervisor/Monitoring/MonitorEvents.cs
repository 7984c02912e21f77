using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Monitoring;

/// <summary>What connections tell the monitor; the monitor stamps each with its own clock on arrival.</summary>
internal static class MonitorEvents
{
    public interface IMonitorEvent : IMonitorMessage;

    // Opens, closes and refusals are not told here: the monitor subscribes to the connections' lifecycle events.

    public sealed record HeartbeatMissed(string Listener, string ConnectionId) : IMonitorEvent;

    public sealed record RttSampled(double Milliseconds) : IMonitorEvent;

    /// <summary>
    /// A dependency probe went up or down (rise/fall already applied): down raises <c>probe-down:NAME</c>,
    /// up resolves it.
    /// </summary>
    public sealed record ProbeStateChanged(string Probe, bool Up, int ConsecutiveFailures, int Fall, string Detail) : IMonitorEvent;

    /// <summary>
    /// What a cluster node's totals did since the cluster monitor last heard from it: the bulk form of the lifecycle's
    /// opens, closes and refusals (a refusal is an open and a close at once, as in /api/stats) for the singleton monitor.
    /// </summary>
    /// <param name="Refused">How many of <c>Opened</c> and <c>Closed</c> were refusals.</param>
    public sealed record ConnectionsCounted(long Opened, IReadOnlyDictionary<CloseReason, long> Closed, long Refused = 0) : IMonitorEvent;

    /// <summary>
    /// A node's books as they stood when the cluster monitor first heard of the node (it started after the node, or
    /// took over as the singleton): they join the counters since start, so the cluster's counters stay the sum of the
    /// nodes' (DESIGN §8), but no window, since none of it happened while the monitor could see it.
    /// </summary>
    public sealed record BooksAdopted(RegistryProtocol.Stats Books) : IMonitorEvent;

    /// <summary>A cluster node was lost with <c>Lost</c> live connections: they close with <c>node-down</c> and <c>node-down:NODE</c> is raised.</summary>
    public sealed record NodeDown(string Node, long Lost) : IMonitorEvent;

    /// <summary>A node is up at that address again: resolves its <c>node-down:NODE</c>.</summary>
    public sealed record NodeUp(string Node) : IMonitorEvent;

    /// <summary>A connection's deadline fired this late: the server stalled, so the stall was not held against the peer.</summary>
    public sealed record StallForgiven(string ConnectionId, TimeSpan Stall) : IMonitorEvent;

    /// <summary>The TCP listeners stopped accepting for want of file descriptors: raises <c>fd-exhausted</c>.</summary>
    public sealed record FileDescriptorsExhausted(int Open, long Ceiling, string Detail) : IMonitorEvent;

    /// <summary>They accept again: resolves <c>fd-exhausted</c>.</summary>
    public sealed record FileDescriptorsRecovered(int Open) : IMonitorEvent;
}
