using Akka.Actor;
using Microsoft.Extensions.Logging;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;

namespace Supervisor.Connections;

/// <summary>
/// The one place a connection's lifecycle event is published (DESIGN §3, "One lifecycle"). The connection (or, for a
/// refusal, its supervisor) calls it once per event, in order; it fans the event out to the meter and the log on the
/// publishing thread (no message, so /metrics and the log line carry the moment the event happened), then to the
/// actor system's EventStream, where the registry, the monitor, the cluster ledger and the application subscribe.
/// Nothing else reports opens, closes or refusals. A close is rare and a heartbeat is not an event, so the cost does
/// not grow with traffic.
/// </summary>
internal static class LifecyclePublisher
{
    /// <summary>
    /// Subscribes a consumer of the lifecycle the moment it is created. Its own subscription in PreStart runs later, on
    /// its dispatcher, and a connection that opens in between would be missing from its books for good (seen under load:
    /// a monitor that never counted the first connection). Subscribing twice is harmless: the stream keeps one.
    /// </summary>
    public static IActorRef SubscribedFromStart(ActorSystem system, IActorRef consumer)
    {
        system.EventStream.Subscribe(consumer, typeof(IConnectionLifecycleEvent));
        return consumer;
    }

    public static void Publish(ActorSystem system, SupervisorMetrics metrics, ILogger log, IConnectionLifecycleEvent lifecycle)
    {
        metrics.Observe(lifecycle);
        Log(log, lifecycle);
        system.EventStream.Publish(lifecycle);
    }

    /// <summary>The log's view: a line per inbound open, close and refusal (outbound clients log theirs with their reconnect context).</summary>
    private static void Log(ILogger log, IConnectionLifecycleEvent lifecycle)
    {
        switch (lifecycle)
        {
            case ConnectionLifecycle.Opened { Direction: ConnectionDirection.Inbound } opened:
                ConnectionLog.Opened(log, opened.Status.Id, opened.Status.Remote, opened.Status.Listener);
                break;
            case ConnectionLifecycle.Closed { Direction: ConnectionDirection.Inbound } closed:
                ConnectionLog.Closed(log, closed.Status.Id, closed.Reason.ToWireName(), closed.Detail, closed.Status.Remote,
                    (closed.At - closed.Status.ConnectedAt).TotalSeconds, closed.Status.BytesIn, closed.Status.BytesOut);
                break;
            case ConnectionLifecycle.Refused refused:
                ConnectionLog.Refused(log, refused.Remote, refused.Listener, refused.Reason.ToWireName(), refused.Detail);
                break;
        }
    }
}
