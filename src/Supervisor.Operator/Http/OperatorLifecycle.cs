using Akka;
using Akka.Actor;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Supervisor.Configuration;

namespace Supervisor.Http;

/// <summary>
/// Ties the web server into the service's life. Started: marks the service ready and logs the bound
/// endpoints. Stopping: marks it not ready and runs the actor system's coordinated shutdown before
/// Kestrel stops, so every connection (WebSocket ones included, which live inside Kestrel requests)
/// is closed with <c>server-shutdown</c> and announced while the server can still write to it.
/// </summary>
internal sealed class OperatorLifecycle(
    Readiness readiness,
    OperatorEndpoints endpoints,
    OperatorSettings settings,
    IServiceProvider services,
    ILogger<OperatorLifecycle> log) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        var system = services.GetRequiredService<ActorSystem>();
        CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseBeforeServiceUnbind, "operator-not-ready", () =>
        {
            readiness.MarkStopping();
            return Task.FromResult(Done.Instance);
        });
        // The same "Listener NAME accepting on HOST:PORT" line as the TCP listeners, so scripts find every port alike.
        if (endpoints.Http is { } http)
        {
            log.LogInformation("Listener {Listener} accepting on {Endpoint} (operator API, metrics, health, dashboard)", OperatorEndpoints.HttpName, http);
            if (!settings.Http.LoopbackOnly && settings.Http.AdminToken is null)
                log.LogWarning("The operator API listens beyond loopback (supervisor.http.host = {Host}) and supervisor.http.admin-token is unset: " +
                               "anyone who reaches {Endpoint} can close connections; set supervisor.http.admin-token, or bind supervisor.http.host to 127.0.0.1",
                    settings.Http.Host, http);
        }
        if (endpoints.WebSocket is { } ws)
            log.LogInformation("Listener {Listener} accepting on {Endpoint} (WebSocket at {Path}, ping {Ping}, pong timeout {Pong})",
                OperatorEndpoints.WebSocketName, ws, settings.WebSocket.Path,
                settings.WebSocket.PingInterval.ToHocon(), settings.WebSocket.PongTimeout.ToHocon());
        readiness.MarkStarted();
        return Task.CompletedTask;
    }

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        readiness.MarkStopping();
        var system = services.GetRequiredService<ActorSystem>();
        try
        {
            await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance).WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            log.LogWarning("Coordinated shutdown did not finish within the host's shutdown timeout; stopping the web server anyway");
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
