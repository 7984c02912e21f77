using Akka.Actor;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Monitoring;

namespace Supervisor.Probes;

/// <summary>What every probe reports to: the monitor (alerts), the meter and the log.</summary>
internal sealed record ProbeServices(IActorRef Monitor, SupervisorMetrics Metrics, ILogger Log);

/// <summary>
/// One dependency probe: runs its check every <c>interval</c> (start to start, never two at once), gives a
/// check up after <c>timeout</c>, and turns the results into unknown/up/down with rise/fall
/// (<see cref="ProbeTracker"/>). Each change goes to the monitor (<c>probe-down:NAME</c> raised or resolved),
/// the EventStream, the meter and the log; every result goes to the parent <see cref="ProbesActor"/>.
/// </summary>
internal sealed class ProbeActor : ReceiveActor, IWithTimers
{
    public static Props Props(ProbeSettings settings, ProbeServices services, Func<ProbeSettings, IProbeCheck>? checks = null) =>
        Akka.Actor.Props.Create(() => new ProbeActor(settings, services, checks ?? ProbeChecks.Create));

    private sealed class CheckDue : INotInfluenceReceiveTimeout
    {
        public static readonly CheckDue Instance = new();
    }

    private sealed record CheckDone(ProbeResult Result)
    {
        /// <summary>An exception the check did not expect (a bug, or a client library's surprise): logged, counted as a failure.</summary>
        public Exception? Unexpected { get; init; }
    }

    private const string CheckTimer = "check";

    private readonly ProbeSettings _settings;
    private readonly ProbeServices _services;
    private readonly IProbeCheck _check;
    private readonly ProbeTracker _tracker;
    private readonly KeyValuePair<string, object?> _probeTag;
    private CancellationTokenSource? _inFlight;
    private DateTimeOffset _startedAt;
    private DateTimeOffset? _lastCheckAt, _stateSince;
    private double? _lastLatencyMs;
    private string? _lastError;
    private long _checks;
    private IReadOnlyDictionary<string, string> _details = ProbeResult.NoDetails;

    public ITimerScheduler Timers { get; set; } = null!;

    public ProbeActor(ProbeSettings settings, ProbeServices services, Func<ProbeSettings, IProbeCheck> checks)
    {
        _settings = settings;
        _services = services;
        _check = checks(settings);
        _tracker = new ProbeTracker(settings.Rise, settings.Fall);
        _probeTag = new KeyValuePair<string, object?>("probe", settings.Name);

        Receive<CheckDue>(_ => StartCheck());
        Receive<CheckDone>(OnCheckDone);
    }

    private DateTimeOffset Now => Context.System.Scheduler.Now;

    protected override void PreStart()
    {
        _services.Metrics.SetProbeState(_settings.Name, _settings.KindName, ProbeState.Unknown);
        Context.Parent.Tell(new ProbesActor.ProbeUpdated(Status()));
        StartCheck();
    }

    protected override void PostStop()
    {
        _inFlight?.Cancel();
        _inFlight?.Dispose();
        _check.Dispose();
        _services.Metrics.RemoveProbe(_settings.Name);
    }

    private void StartCheck()
    {
        if (_inFlight is not null) return;
        _startedAt = Now;
        _inFlight = new CancellationTokenSource(_settings.Timeout);
        var settings = _settings;
        RunAsync(_check, settings, _inFlight.Token).PipeTo(Self,
            success: result => new CheckDone(result),
            failure: e => new CheckDone(ProbeResult.Down($"{settings.KindName} check of {settings.Endpoint} failed unexpectedly: {e.GetBaseException().GetType().Name}: {e.GetBaseException().Message}"))
            {
                Unexpected = e.GetBaseException(),
            });
    }

    /// <summary>Runs off the actor: the check's own errors become a failed result; the timeout is enforced here too.</summary>
    private static async Task<ProbeResult> RunAsync(IProbeCheck check, ProbeSettings settings, CancellationToken cancellation)
    {
        var timedOut = $"{settings.KindName} check of {settings.Endpoint} timed out after {settings.Timeout.ToHocon()}";
        try
        {
            return await check.RunAsync(cancellation).WaitAsync(settings.Timeout, cancellation).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException && e is not RedisTimeoutException)
        {
            return ProbeResult.Down(timedOut);
        }
        catch (Exception e) when (e is RedisException or RedisTimeoutException or System.Net.Sockets.SocketException
                                      or HttpRequestException or IOException or ObjectDisposedException)
        {
            return ProbeResult.Down($"{settings.KindName} check of {settings.Endpoint} failed: {e.GetBaseException().Message.Split('\n')[0].Trim()}");
        }
    }

    private void OnCheckDone(CheckDone done)
    {
        _inFlight?.Dispose();
        _inFlight = null;
        var result = done.Result;
        if (done.Unexpected is { } unexpected)
            _services.Log.LogError(unexpected, "Probe {Probe}: the check failed unexpectedly", _settings.Name);
        var now = Now;
        _checks++;
        _lastCheckAt = now;
        _details = result.Details;
        if (result.Success)
        {
            _lastLatencyMs = result.LatencyMs;
            _lastError = null;
            if (result.LatencyMs is { } ms) _services.Metrics.ProbeLatency(ms, _probeTag);
        }
        else
        {
            _lastError = result.Error;
        }
        _services.Metrics.ProbeChecks.Add(1, _probeTag, new("result", result.Success ? "success" : "failure"));

        var previous = _tracker.State;
        if (_tracker.Record(result.Success) is { } state)
        {
            _stateSince = now;
            _services.Metrics.SetProbeState(_settings.Name, _settings.KindName, state);
            var detail = state == ProbeState.Up
                ? $"{_tracker.ConsecutiveSuccesses} checks in a row passed, last in {_lastLatencyMs:F1} ms"
                : $"{_tracker.ConsecutiveFailures} checks in a row failed, last: {_lastError}";
            if (state == ProbeState.Up)
                _services.Log.LogInformation("Probe {Probe} ({Kind} {Endpoint}) is up: {Detail}", _settings.Name, _settings.KindName, _settings.Endpoint, detail);
            else
                _services.Log.LogWarning("Probe {Probe} ({Kind} {Endpoint}) is down: {Detail}", _settings.Name, _settings.KindName, _settings.Endpoint, detail);
            _services.Monitor.Tell(new MonitorEvents.ProbeStateChanged(_settings.Name, state == ProbeState.Up,
                _tracker.ConsecutiveFailures, _settings.Fall, detail));
            Context.System.EventStream.Publish(new ProbeProtocol.ProbeStateChanged(Status(), previous));
        }
        Context.Parent.Tell(new ProbesActor.ProbeUpdated(Status()));

        var wait = _startedAt + _settings.Interval - now;
        Timers.StartSingleTimer(CheckTimer, CheckDue.Instance, wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
    }

    private ProbeProtocol.ProbeStatus Status() => new(
        _settings.Name,
        _settings.KindName,
        _settings.Endpoint,
        _tracker.State,
        _lastLatencyMs,
        _tracker.ConsecutiveFailures,
        _tracker.ConsecutiveSuccesses,
        _lastError,
        _lastCheckAt,
        _stateSince,
        _checks,
        _details);
}
