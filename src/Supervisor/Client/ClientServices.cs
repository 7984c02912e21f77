using Akka.Actor;
using Microsoft.Extensions.Logging;
using Supervisor.Monitoring;

namespace Supervisor.Client;

/// <summary>What a heartbeat client reports to: the connection registry (<see cref="ActorRefs.Nobody"/> when there is none, as in the <c>client</c> command), the meter and the log.</summary>
internal sealed record ClientServices(IActorRef Registry, SupervisorMetrics Metrics, ILogger Log);
