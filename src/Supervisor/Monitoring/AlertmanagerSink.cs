using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Configuration;
using Microsoft.Extensions.Logging;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using static Supervisor.Configuration.HoconReader;

namespace Supervisor.Monitoring;

/// <param name="Url">Alertmanager's base URL (…:9093); null when the sink is off.</param>
/// <param name="ResendInterval">Active alerts are posted again this often, as Prometheus does, so a restarted Alertmanager learns them.</param>
/// <param name="Timeout">Time allowed for one POST.</param>
internal sealed record AlertmanagerSettings(Uri? Url, TimeSpan ResendInterval, TimeSpan Timeout)
{
    public const string Path = "supervisor.monitor.sinks.alertmanager";

    public static AlertmanagerSettings Read(Config config)
    {
        var section = config.GetConfig(Path);
        var url = ReadString(section, "url", Path);
        Uri? parsed = null;
        if (url.Length > 0 && (!Uri.TryCreate(url, UriKind.Absolute, out parsed) || parsed.Scheme is not ("http" or "https")))
            throw new ConfigurationError($"{Path}.url", $"'{url}' is not an http(s) URL such as http://127.0.0.1:9093");
        return new AlertmanagerSettings(parsed, ReadPositiveDuration(section, "resend-interval", Path), ReadPositiveDuration(section, "timeout", Path));
    }
}

/// <summary>
/// Sends the monitor's alerts to a Prometheus Alertmanager (<c>POST /api/v2/alerts</c>), so teams route them
/// with what they already run. It listens to <see cref="AlertRaised"/> and <see cref="AlertResolved"/> on the
/// EventStream (the monitor publishes each once), posts a raised alert at once and again every
/// <c>resend-interval</c> while it stands, with <c>endsAt</c> four intervals ahead (so Alertmanager resolves it
/// by itself if this process dies, as it does for Prometheus), and a resolved one with its real <c>endsAt</c>.
/// Each post carries the alert's current value and its peak (<see cref="AlertUpdated"/> keeps them fresh).
/// A failed post is logged once per outage and retried with the next resend.
/// </summary>
internal sealed class AlertmanagerSink : ReceiveActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;

    private sealed class Resend
    {
        public static readonly Resend Instance = new();
    }

    private sealed record Posted(int Alerts, string? Error);

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly AlertmanagerSettings _settings;
    private readonly ILogger _log;
    private readonly string _instance;
    private readonly HttpClient _http;
    private readonly Dictionary<string, Alert> _active = [];
    private bool _failing;

    public static Props Props(AlertmanagerSettings settings, ILogger log, string instance) =>
        Akka.Actor.Props.Create(() => new AlertmanagerSink(settings, log, instance));

    public AlertmanagerSink(AlertmanagerSettings settings, ILogger log, string instance)
    {
        _settings = settings;
        _log = log;
        _instance = instance;
        _http = new HttpClient { BaseAddress = settings.Url, Timeout = settings.Timeout };
        Receive<AlertRaised>(raised =>
        {
            _active[raised.Alert.Id] = raised.Alert;
            Post([raised.Alert]);
        });
        // The value and peak of a standing alert move; the next resend carries them.
        Receive<AlertUpdated>(updated =>
        {
            if (_active.ContainsKey(updated.Alert.Id)) _active[updated.Alert.Id] = updated.Alert;
        });
        Receive<AlertResolved>(resolved =>
        {
            _active.Remove(resolved.Alert.Id);
            Post([resolved.Alert]);
        });
        Receive<Resend>(_ =>
        {
            if (_active.Count > 0) Post(_active.Values.ToArray());
        });
        Receive<Posted>(OnPosted);
    }

    protected override void PreStart()
    {
        Context.System.EventStream.Subscribe(Self, typeof(AlertRaised));
        Context.System.EventStream.Subscribe(Self, typeof(AlertResolved));
        Context.System.EventStream.Subscribe(Self, typeof(AlertUpdated));
        Timers.StartPeriodicTimer("resend", Resend.Instance, _settings.ResendInterval);
    }

    protected override void PostStop()
    {
        Context.System.EventStream.Unsubscribe(Self);
        _http.Dispose();
    }

    private void Post(IReadOnlyList<Alert> alerts)
    {
        var now = DateTimeOffset.UtcNow;
        var body = alerts.Select(a => new
        {
            labels = new Dictionary<string, string>
            {
                ["alertname"] = a.Rule,
                ["severity"] = a.Severity.ToString().ToLowerInvariant(),
                ["scope"] = a.Scope,
                ["instance"] = _instance,
                ["service"] = ServiceIdentity.Name,
            },
            annotations = new Dictionary<string, string>
            {
                ["summary"] = a.Message,
                ["value"] = a.Value.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture),
                ["peak"] = a.Peak.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture),
                ["threshold"] = a.Threshold.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture),
                ["alert_id"] = a.Id,
            },
            startsAt = a.RaisedAt,
            endsAt = a.ResolvedAt ?? now + 4 * _settings.ResendInterval,
        }).ToArray();
        var count = alerts.Count;
        PostAsync(JsonSerializer.SerializeToUtf8Bytes(body, Json)).PipeTo(Self,
            success: error => new Posted(count, error),
            failure: e => new Posted(count, e.GetBaseException().Message));
    }

    private async Task<string?> PostAsync(byte[] json)
    {
        using var content = new ByteArrayContent(json);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        try
        {
            using var response = await _http.PostAsync("api/v2/alerts", content).ConfigureAwait(false);
            return response.IsSuccessStatusCode ? null : $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return e.Message;
        }
    }

    private void OnPosted(Posted posted)
    {
        if (posted.Error is null)
        {
            if (_failing) _log.LogInformation("Alertmanager at {Url} takes alerts again", _settings.Url);
            _failing = false;
            return;
        }
        if (!_failing)
            _log.LogWarning("Alertmanager at {Url} did not take {Count} alert(s): {Error}; active alerts are sent again every {Interval}",
                _settings.Url, posted.Alerts, posted.Error, _settings.ResendInterval.ToHocon());
        _failing = true;
    }
}
