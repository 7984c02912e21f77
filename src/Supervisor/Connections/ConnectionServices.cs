using Akka.Actor;
using Microsoft.Extensions.Logging;
using Supervisor.Monitoring;

namespace Supervisor.Connections;

/// <summary>What every connection actor reports to and calls, handed down by its supervisor.</summary>
internal sealed record ConnectionServices(
    IActorRef Registry,
    IActorRef Monitor,
    ConnectionHandler Handler,
    SupervisorMetrics Metrics,
    ILogger Log)
{
    /// <summary>How often, at most, a healthy connection refreshes its counters in the registry (<c>registry.status-refresh</c>).</summary>
    public TimeSpan StatusRefresh { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How the handler is run: its bound on frames in flight and its timeout (<c>supervisor.handler</c>).</summary>
    public HandlerSettings HandlerSettings { get; init; } = HandlerSettings.Default;

    /// <summary>The hub that tells the application of opens and closes; null: nobody listens.</summary>
    public ConnectionHub? Hub { get; init; }

    /// <summary>Appended to every connection id: <c>@host:port</c> of this node in a cluster (ids are unique cluster-wide and name their node), empty otherwise.</summary>
    public string IdSuffix { get; init; } = "";

    /// <summary>The process-wide budget of memory in unfinished frames (<c>limits.pending-frame-memory</c>); null: none.</summary>
    public Transport.PendingFrameMemory? FrameMemory { get; init; }

    /// <summary>Told when a connection's socket is released, so that listeners paused for want of descriptors resume at once; null: none.</summary>
    public Hosting.FileDescriptorBudget? Descriptors { get; init; }

    /// <summary>Event loops of the epoll transport (<c>io.epoll-loops</c>); 0: one per core.</summary>
    public int EpollLoops { get; init; }
}
