using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Supervisor.Messages.Protocol;
using Supervisor.Monitoring;

namespace Supervisor.Http;

/// <summary>One second of the dashboard's chart: live connections, and the heartbeat round trips measured in it.</summary>
/// <param name="T">Unix milliseconds.</param>
/// <param name="RttMs">Mean of the round trips recorded in the second; null when none was.</param>
/// <param name="RttMaxMs">Largest of them.</param>
internal sealed record HistorySample(long T, long Active, double? RttMs, double? RttMaxMs);

/// <summary>
/// Samples the service once a second for the dashboard's chart and keeps the last ten minutes, so a page
/// opened now shows the minutes before it. Active connections come from the registry's totals (one small
/// message per shard), round trips from the <c>supervisor.heartbeat.rtt</c> instrument of this service's
/// <see cref="SupervisorMetrics"/> (the same measurements /metrics exports).
/// </summary>
internal sealed class DashboardHistory : BackgroundService
{
    public const int Capacity = 600;
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(1);

    private readonly SupervisorQueries _queries;
    private readonly MeterListener _listener;
    private readonly Queue<HistorySample> _samples = new(Capacity);
    private readonly object _gate = new();
    private long _rttCount;
    private double _rttSum, _rttMax;
    private int _disposed;

    public DashboardHistory(SupervisorQueries queries, SupervisorMetrics metrics)
    {
        _queries = queries;
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (ReferenceEquals(instrument, metrics.HeartbeatRtt)) listener.EnableMeasurementEvents(instrument);
            },
        };
        _listener.SetMeasurementEventCallback<double>((_, seconds, _, _) =>
        {
            var value = seconds * 1000; // the chart is in milliseconds
            lock (_gate)
            {
                _rttCount++;
                _rttSum += value;
                _rttMax = Math.Max(_rttMax, value);
            }
        });
        _listener.Start();
    }

    public IReadOnlyList<HistorySample> Samples
    {
        get { lock (_gate) return _samples.ToArray(); }
    }

    public HistorySample? Latest
    {
        get { lock (_gate) return _samples.Count == 0 ? null : _samples.Last(); }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Period);
        try
        {
            do
            {
                await SampleAsync(stoppingToken);
            } while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Host stopping.
        }
    }

    private async Task SampleAsync(CancellationToken cancel)
    {
        long active;
        try
        {
            active = (await _queries.StatsAsync(cancel)).Active;
        }
        catch (ServiceUnavailable)
        {
            return; // starting or stopping: a gap in the chart, not a zero
        }
        lock (_gate)
        {
            var sample = new HistorySample(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), active,
                _rttCount == 0 ? null : _rttSum / _rttCount, _rttCount == 0 ? null : _rttMax);
            _rttCount = 0;
            _rttSum = _rttMax = 0;
            if (_samples.Count == Capacity) _samples.Dequeue();
            _samples.Enqueue(sample);
        }
    }

    public override void Dispose()
    {
        // Registered as a singleton and as the hosted service resolved from it: the container disposes it twice.
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _listener.Dispose();
        base.Dispose();
    }
}

/// <summary>What the dashboard receives every second on <c>/api/events</c>.</summary>
/// <param name="Connections">The page of the table the page asked for (state filter, offset, limit).</param>
/// <param name="Alerts">Active alerts; null with <c>AlertsError</c> set when the monitor did not answer.</param>
/// <param name="History">The last minutes of samples: on the first event of a stream only.</param>
internal sealed record DashboardSnapshot(
    DateTimeOffset Time,
    bool Ready,
    StatsView Stats,
    ConnectionPage Connections,
    IReadOnlyList<Alert>? Alerts,
    string? AlertsError,
    HistorySample? Sample,
    IReadOnlyList<HistorySample>? History)
{
    /// <summary>Every dependency probe (empty when none is configured or the probes did not answer).</summary>
    public IReadOnlyList<ProbeProtocol.ProbeStatus> Probes { get; init; } = [];

    /// <summary>The cluster's members as this node sees them; null on a single node (no cluster configured).</summary>
    public ClusterProtocol.ClusterView? Cluster { get; init; }
}

/// <summary>
/// <c>GET /api/events</c>: server-sent events, one <c>snapshot</c> a second, until the client goes or the
/// service stops. Each stream asks for its own page only (at most <see cref="MaxPageSize"/> rows per shard and node),
/// and at most <c>supervisor.http.max-event-clients</c> streams run at once: each costs a page query a second,
/// so an unbounded number of them is a way to burn the CPU the connections need.
/// </summary>
internal sealed class DashboardEvents
{
    public const int DefaultPageSize = 50;
    public const int MaxPageSize = 1000;

    /// <summary>What a refused client is told to wait before trying again (the dashboard page waits as long).</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(5);

    private readonly SupervisorQueries _queries;
    private readonly DashboardHistory _history;
    private readonly Readiness _readiness;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly int _maxClients;
    private readonly Counter<long> _refused;
    private int _clients;

    public DashboardEvents(SupervisorQueries queries, DashboardHistory history, Readiness readiness, IHostApplicationLifetime lifetime,
        OperatorSettings settings, SupervisorMetrics metrics)
    {
        _queries = queries;
        _history = history;
        _readiness = readiness;
        _lifetime = lifetime;
        _maxClients = settings.Http.MaxEventClients;
        metrics.Meter.CreateObservableUpDownCounter("supervisor.http.event_clients", () => Volatile.Read(ref _clients), "{client}",
            "Open /api/events streams");
        _refused = metrics.Meter.CreateCounter<long>("supervisor.http.event_clients.refused", "{client}",
            "/api/events requests refused because max-event-clients streams were open");
    }

    public async Task StreamAsync(HttpContext context)
    {
        var (query, error) = ConnectionQuery.Parse(context.Request.Query, DefaultPageSize, MaxPageSize);
        if (query is null)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            await context.Response.WriteAsJsonAsync(new ApiError(error!), ApiJson.Options);
            return;
        }
        if (Interlocked.Increment(ref _clients) > _maxClients)
        {
            Interlocked.Decrement(ref _clients);
            _refused.Add(1);
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Response.Headers.RetryAfter = ((int)RetryAfter.TotalSeconds).ToString(CultureInfo.InvariantCulture);
            await context.Response.WriteAsJsonAsync(new ApiError(
                $"{_maxClients} event streams are open, the most supervisor.http.max-event-clients allows; retry later or close a dashboard"),
                ApiJson.Options);
            return;
        }
        try
        {
            await StreamSnapshotsAsync(context, query);
        }
        finally
        {
            Interlocked.Decrement(ref _clients);
        }
    }

    private async Task StreamSnapshotsAsync(HttpContext context, ConnectionQuery query)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _lifetime.ApplicationStopping);
        var cancel = stop.Token;
        using var timer = new PeriodicTimer(DashboardHistory.Period);
        try
        {
            await context.Response.WriteAsync("retry: 2000\n\n", cancel);
            var first = true;
            do
            {
                var snapshot = await SnapshotAsync(query, first, cancel);
                if (snapshot is not null)
                {
                    await context.Response.WriteAsync($"event: snapshot\ndata: {JsonSerializer.Serialize(snapshot, ApiJson.Options)}\n\n", cancel);
                    await context.Response.Body.FlushAsync(cancel);
                    first = false;
                }
            } while (await timer.WaitForNextTickAsync(cancel));
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            // The page went away, or the service is stopping.
        }
    }

    private async Task<DashboardSnapshot?> SnapshotAsync(ConnectionQuery query, bool withHistory, CancellationToken cancel)
    {
        RegistryProtocol.Stats stats;
        ConnectionPage page;
        try
        {
            stats = await _queries.StatsAsync(cancel);
            page = await _queries.ConnectionPageAsync(query, cancel);
        }
        catch (ServiceUnavailable)
        {
            return null; // nothing to show this second
        }
        IReadOnlyList<Alert>? alerts = null;
        string? alertsError = null;
        try
        {
            alerts = (await _queries.AlertsAsync(cancel)).Active;
        }
        catch (ServiceUnavailable e)
        {
            alertsError = e.Message;
        }
        IReadOnlyList<ProbeProtocol.ProbeStatus> probes = [];
        try
        {
            probes = (await _queries.ProbesAsync(cancel)).Items;
        }
        catch (ServiceUnavailable)
        {
            // Shown as no probes this second.
        }
        ClusterProtocol.ClusterView? cluster = null;
        if (_queries.IsCluster)
        {
            try
            {
                cluster = await _queries.ClusterAsync(cancel);
            }
            catch (ServiceUnavailable)
            {
                // Shown as no nodes this second.
            }
        }
        return new DashboardSnapshot(DateTimeOffset.UtcNow, _readiness.Started && !_readiness.Stopping, StatsView.Of(stats), page,
            alerts, alertsError, _history.Latest, withHistory ? _history.Samples : null) { Probes = probes, Cluster = cluster };
    }
}

/// <summary>The dashboard page: one static HTML file embedded in the executable (no CDN, no build step).</summary>
internal static class DashboardPage
{
    private const string Resource = "Supervisor.Dashboard.index.html";
    private static readonly Lazy<byte[]> Html = new(() =>
    {
        using var stream = typeof(DashboardPage).Assembly.GetManifestResourceStream(Resource)
            ?? throw new InvalidOperationException($"embedded resource {Resource} is missing from the build");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    public static async Task ServeAsync(HttpContext context)
    {
        context.Response.ContentType = "text/html; charset=utf-8";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["Content-Security-Policy"] =
            $"default-src 'self'; connect-src {ConnectSources(context)}; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'";
        await context.Response.Body.WriteAsync(Html.Value, context.RequestAborted);
    }

    /// <summary>
    /// The page talks to its own origin, and may open the service's own WebSocket listener on the host it was loaded
    /// from (the README's console example: <c>new WebSocket("ws://127.0.0.1:8082/ws")</c> from this page); nothing else.
    /// The host is the request's, already checked against the Host allowlist; an IPv6 literal has no CSP spelling.
    /// </summary>
    private static string ConnectSources(HttpContext context)
    {
        var services = context.RequestServices;
        var host = context.Request.Host.Host;
        if (services.GetService<OperatorEndpoints>()?.WebSocket is not { } webSocket || host.Contains(':') || host.Length == 0)
            return "'self'";
        var secure = services.GetService<OperatorSettings>()?.WebSocket.Listener.TlsCertificate is not null;
        return $"'self' {(secure ? "wss" : "ws")}://{host}:{webSocket.Port}";
    }
}
