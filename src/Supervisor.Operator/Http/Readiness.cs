using System.Text.Json;
using Akka.Actor;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Supervisor.Http;

/// <summary>
/// Whether the service takes traffic: not until every hosted service has started (TCP listeners accepting,
/// Kestrel bound), and never again once shutdown has begun, whichever way it began (host stop, SIGTERM,
/// or coordinated shutdown from inside the actor system).
/// </summary>
internal sealed class Readiness
{
    private volatile bool _started;
    private volatile bool _stopping;

    public bool Started => _started;
    public bool Stopping => _stopping;

    public void MarkStarted() => _started = true;

    public void MarkStopping() => _stopping = true;
}

/// <summary><c>/healthz</c>: the process is alive as long as its actor system runs.</summary>
internal sealed class LivenessCheck(ActorSystem system) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(system.WhenTerminated.IsCompleted
            ? HealthCheckResult.Unhealthy("the actor system has terminated")
            : HealthCheckResult.Healthy($"actor system {system.Name} running for {system.Uptime.TotalSeconds:F0} s"));
}

/// <summary>
/// <c>/readyz</c>: started, not stopping, every listener accepting, and descriptors to accept with (while the TCP
/// listeners pause for want of them, the description says so: <c>out of file descriptors: 582 of 600 open …</c>).
/// </summary>
internal sealed class ReadinessCheck(Readiness readiness, SupervisorQueries queries, OperatorEndpoints endpoints, OperatorSettings settings,
    Hosting.FileDescriptorBudget descriptors) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (readiness.Stopping) return HealthCheckResult.Unhealthy("shutting down");
        if (!readiness.Started) return HealthCheckResult.Unhealthy("starting");
        if (descriptors.Current is { } exhaustion)
            return HealthCheckResult.Unhealthy($"{exhaustion.Describe()} (since {exhaustion.Since:HH:mm:ss.fff} UTC)");
        IReadOnlyList<Connections.TcpListenerActor.Binding> bindings;
        try
        {
            bindings = await queries.BindingsAsync(cancellationToken);
        }
        catch (ServiceUnavailable e)
        {
            return HealthCheckResult.Unhealthy(e.Message);
        }
        if (bindings.FirstOrDefault(b => b.Endpoint is null) is { } unbound)
            return HealthCheckResult.Unhealthy($"listener {unbound.Listener} is not accepting");
        if (settings.WebSocket.Enabled && endpoints.WebSocket is null)
            return HealthCheckResult.Unhealthy("the WebSocket listener is not bound");
        var names = bindings.Select(b => $"{b.Listener} {b.Endpoint}").ToList();
        if (endpoints.WebSocket is { } ws) names.Add($"{OperatorEndpoints.WebSocketName} {ws}");
        return HealthCheckResult.Healthy($"accepting: {string.Join(", ", names)}");
    }
}

/// <summary>Health answers as JSON: <c>{"status":"healthy","checks":[{"name":…,"status":…,"description":…}]}</c>.</summary>
internal static class HealthJson
{
    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        var body = new
        {
            Status = report.Status,
            Checks = report.Entries.Select(e => new { Name = e.Key, e.Value.Status, e.Value.Description }).ToArray(),
        };
        return context.Response.WriteAsync(JsonSerializer.Serialize(body, ApiJson.Options));
    }
}
