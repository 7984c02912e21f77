using System.Net;
using System.Security.Cryptography;
using System.Text;
using Akka.Configuration;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Supervisor.Configuration;
using Supervisor.Hosting;
using Supervisor.Monitoring;
using Supervisor.WebSockets;

namespace Supervisor.Http;

/// <summary>
/// The operator surface (DESIGN §5) and the WebSocket listener on Kestrel, inside the service's own host:
/// two Kestrel endpoints, each request routed by the endpoint it arrived on, so the API never answers on
/// the public WebSocket port and WebSocket peers never reach the API.
/// </summary>
internal static class OperatorSurface
{
    /// <summary>
    /// Registers everything the HTTP and WebSocket side needs. With both <c>supervisor.http</c> and
    /// <c>supervisor.websocket</c> off it registers only the settings; the host then runs no web server
    /// (the service executable's SupervisorHostBuilder).
    /// </summary>
    public static IServiceCollection AddOperatorSurface(this IServiceCollection services, Config config, SupervisorSettings settings)
    {
        var surface = OperatorConfig.Read(config, settings);
        services.AddSingleton(surface);
        services.TryAddSingleton(provider => new SupervisorMetrics(provider.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.TryAddSingleton(_ => Hosting.FileDescriptorBudget.ForThisProcess());
        if (!surface.NeedsWebServer) return services;

        services.AddSingleton<OperatorEndpoints>();
        services.AddSingleton<Readiness>();
        services.AddSingleton<SupervisorQueries>();
        services.AddSingleton<IConfigureOptions<KestrelServerOptions>, KestrelEndpoints>();
        services.AddSingleton<IStartupFilter, OperatorPipeline>();
        services.AddHostedService<OperatorLifecycle>();

        if (surface.WebSocket.Enabled)
            services.AddSingleton<WebSocketEndpoint>();

        if (surface.Http.Enabled)
        {
            services.AddRouting();
            services.ConfigureHttpJsonOptions(options => ApiJson.Configure(options.SerializerOptions));
            services.AddSingleton<DiagnosticsService>();
            services.AddSingleton<DashboardHistory>();
            services.AddHostedService(provider => provider.GetRequiredService<DashboardHistory>());
            services.AddSingleton<DashboardEvents>();
            services.AddHealthChecks()
                .AddCheck<LivenessCheck>("actor-system", tags: ["live"])
                .AddCheck<ReadinessCheck>("listeners", tags: ["ready"]);
            services.AddOpenTelemetry()
                .ConfigureResource(resource => resource.AddService(ServiceIdentity.Name,
                    serviceVersion: ServiceIdentity.Version, serviceInstanceId: ServiceIdentity.InstanceId(settings, surface.Http.Port)))
                .WithMetrics(metrics =>
                {
                    metrics.AddMeter(SupervisorMetrics.MeterName).AddMeter(ServiceIdentity.PlatformMeters);
                    foreach (var (instrument, exported) in ServiceIdentity.PrometheusNames) metrics.AddView(instrument, exported);
                    metrics.AddPrometheusExporter(options => options.ScrapeResponseCacheDurationMilliseconds = 0);
                });
        }
        return services;
    }

    /// <summary>The two endpoints, each tagging its connections so a request knows where it came in.</summary>
    private sealed class KestrelEndpoints(OperatorSettings surface, OperatorEndpoints endpoints) : IConfigureOptions<KestrelServerOptions>
    {
        public void Configure(KestrelServerOptions options)
        {
            options.AddServerHeader = false;
            if (surface.Http.Enabled)
                options.Listen(IPAddress.Parse(surface.Http.Host), surface.Http.Port, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1;
                    Tag(listen, OperatorEndpoints.HttpName);
                    endpoints.HttpListen = listen;
                });
            if (surface.WebSocket.Enabled)
                options.Listen(IPAddress.Parse(surface.WebSocket.Host), surface.WebSocket.Port, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1;
                    // wss: the certificate of supervisor.websocket.tls (or, unset, supervisor.tcp.tls).
                    if (surface.WebSocket.Listener.TlsCertificate is { } certificate)
                        listen.UseHttps(https =>
                        {
                            https.ServerCertificate = certificate;
                            https.HandshakeTimeout = surface.WebSocket.Listener.TlsHandshakeTimeout;
                        });
                    Tag(listen, OperatorEndpoints.WebSocketName);
                    endpoints.WebSocketListen = listen;
                });
        }

        private static void Tag(ListenOptions listen, string name) => listen.Use(next => connection =>
        {
            connection.Items[OperatorEndpoints.EndpointItem] = name;
            return next(connection);
        });
    }

    /// <summary>The request pipeline: one branch per endpoint; anything else is 404.</summary>
    private sealed class OperatorPipeline(OperatorSettings surface) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            if (surface.WebSocket.Enabled)
                app.MapWhen(context => OperatorEndpoints.IsOn(context, OperatorEndpoints.WebSocketName), ws =>
                {
                    ws.UseWebSockets();
                    ws.Run(context => context.RequestServices.GetRequiredService<WebSocketEndpoint>().HandleAsync(context));
                });
            if (surface.Http.Enabled)
                app.MapWhen(context => OperatorEndpoints.IsOn(context, OperatorEndpoints.HttpName), api =>
                {
                    // Host allowlist and cross-origin refusal before anything else, so they cover every route.
                    api.Use(new OperatorRequestGuard(surface.Http).InvokeAsync);
                    api.Use(AnswerUnavailable);
                    api.UseRouting();
                    api.UseEndpoints(endpoints => endpoints.MapOperatorRoutes(surface.Http));
                });
            next(app);
        };

        /// <summary>An actor that cannot answer makes a 503 with the reason, not a 500 with a stack trace.</summary>
        private static async Task AnswerUnavailable(HttpContext context, RequestDelegate next)
        {
            try
            {
                await next(context);
            }
            catch (ServiceUnavailable e) when (!context.Response.HasStarted)
            {
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                await context.Response.WriteAsJsonAsync(new ApiError(e.Message), ApiJson.Options);
            }
        }
    }

    /// <summary>The routes of DESIGN §5 (probes come with the probes issue).</summary>
    public static IEndpointRouteBuilder MapOperatorRoutes(this IEndpointRouteBuilder routes, HttpSettings http)
    {
        routes.MapGet("/", DashboardPage.ServeAsync);
        routes.MapGet("/api/events", (HttpContext context, DashboardEvents events) => events.StreamAsync(context));

        routes.MapGet("/api/connections", async (HttpContext context, SupervisorQueries queries) =>
        {
            var (query, error) = ConnectionQuery.Parse(context.Request.Query, defaultLimit: null, maxLimit: 100_000);
            if (query is null) return Results.BadRequest(new ApiError(error!));
            return Results.Ok(await queries.ConnectionPageAsync(query, context.RequestAborted));
        });
        routes.MapGet("/api/connections/{id}", async (string id, SupervisorQueries queries, CancellationToken cancel) =>
            await queries.LiveStatusAsync(id, cancel) is { } status
                ? Results.Ok(status)
                : Results.NotFound(new ApiError($"no live connection {id}")));
        routes.MapDelete("/api/connections/{id}", async (string id, SupervisorQueries queries, CancellationToken cancel) =>
            await queries.CloseAsync(id, cancel)
                ? Results.Accepted($"/api/connections/{id}", new { Id = id, Reason = "admin-closed" })
                : Results.NotFound(new ApiError($"no live connection {id}")))
            .AddEndpointFilter(AdminToken(http.AdminToken));

        routes.MapGet("/api/stats", async (SupervisorQueries queries, CancellationToken cancel) =>
            Results.Ok(StatsView.Of(await queries.StatsAsync(cancel))));
        routes.MapGet("/api/alerts", async (SupervisorQueries queries, CancellationToken cancel) =>
        {
            var alerts = await queries.AlertsAsync(cancel);
            return Results.Ok(new { alerts.Active, alerts.History });
        });
        // The cluster monitor's counters are asked here only, not in the dashboard's feed: a question a second per
        // stream to whichever node runs the singleton would buy the page nothing it shows.
        routes.MapGet("/api/cluster", async (SupervisorQueries queries, CancellationToken cancel) =>
        {
            var view = queries.ClusterAsync(cancel);
            var monitor = queries.ClusterMonitorCountsAsync(cancel);
            return Results.Ok(await view with { Monitor = await monitor });
        });
        routes.MapGet("/api/probes", async (SupervisorQueries queries, CancellationToken cancel) =>
            Results.Ok((await queries.ProbesAsync(cancel)).Items));
        routes.MapGet("/api/diagnostics", async (HttpContext context, DiagnosticsService diagnostics) =>
        {
            var (query, error) = ConnectionQuery.Parse(context.Request.Query, defaultLimit: 100, maxLimit: 1000);
            if (query is null) return Results.BadRequest(new ApiError(error!));
            return Results.Ok(await diagnostics.ReportAsync(query, context.RequestAborted));
        });

        routes.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = check => check.Tags.Contains("live"), ResponseWriter = HealthJson.WriteAsync });
        routes.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready"), ResponseWriter = HealthJson.WriteAsync });
        routes.MapPrometheusScrapingEndpoint("/metrics");
        return routes;
    }

    /// <summary>With <c>admin-token</c> set, the route needs <c>Authorization: Bearer &lt;token&gt;</c>; anything else is 401.</summary>
    private static Func<EndpointFilterInvocationContext, EndpointFilterDelegate, ValueTask<object?>> AdminToken(string? token)
    {
        var expected = token is null ? null : Encoding.UTF8.GetBytes(token);
        return async (context, next) =>
        {
            if (expected is null) return await next(context);
            var header = context.HttpContext.Request.Headers[HeaderNames.Authorization].ToString();
            const string scheme = "Bearer ";
            var given = header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) ? Encoding.UTF8.GetBytes(header[scheme.Length..].Trim()) : [];
            if (CryptographicOperations.FixedTimeEquals(given, expected)) return await next(context);
            context.HttpContext.Response.Headers[HeaderNames.WWWAuthenticate] = "Bearer realm=\"supervisor\"";
            return Results.Json(new ApiError("this route needs Authorization: Bearer <supervisor.http.admin-token>"), ApiJson.Options, statusCode: StatusCodes.Status401Unauthorized);
        };
    }
}

/// <summary>The operator surface for an application that embeds the connection supervisor.</summary>
public static class OperatorHosting
{
    /// <summary>
    /// Serves the operator surface of the connection supervisor that <paramref name="options"/> describe (give the same
    /// object to <c>WithConnectionSupervisor</c>): the HTTP API, the dashboard and Prometheus <c>/metrics</c> on
    /// <c>supervisor.http</c>, and the WebSocket listener on <c>supervisor.websocket</c>, in the application's own
    /// ASP.NET Core host (Kestrel listens on those ports beside the application's own). The supervisor's TCP listeners
    /// are bound here, so a taken port fails before the host starts. Throws <see cref="Configuration.ConfigurationError"/>
    /// for a key or value it refuses.
    /// </summary>
    public static IServiceCollection AddConnectionSupervisorOperator(this IServiceCollection services, ConnectionSupervisorOptions options)
    {
        var config = options.Build();
        var settings = SupervisorConfig.Read(config);
        services.TryAddSingleton(settings);
        services.TryAddSingleton(_ => BoundListeners.Bind(settings));
        return services.AddOperatorSurface(config, settings);
    }
}
