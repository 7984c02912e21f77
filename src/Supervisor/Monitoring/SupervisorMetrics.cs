using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Monitoring;

/// <summary>
/// The <c>Supervisor</c> Meter and its instruments, named by the OpenTelemetry semantic conventions: durations
/// in seconds (<c>s</c>) with buckets from 100 µs to 30 s, bytes as <c>By</c> with <c>network.io.direction</c>,
/// counts as <c>{thing}</c>. Instruments are thread-safe, so connection actors record into them directly;
/// visible in dotnet-counters (<c>dotnet-counters monitor -p PID --counters Supervisor</c>) and to any exporter.
/// </summary>
internal sealed class SupervisorMetrics : IDisposable
{
    public const string MeterName = "Supervisor";

    /// <summary>
    /// Bucket boundaries of the latency histograms, in seconds: a loopback round trip (tens of µs to 1 ms) and a
    /// peer across an ocean or a stalled server (seconds) each land in buckets of their own.
    /// </summary>
    public static readonly IReadOnlyList<double> LatencyBuckets =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    /// <summary>Bucket boundaries of the reconnect backoff, in seconds (full jitter from milliseconds up to the maximum backoff).</summary>
    public static readonly IReadOnlyList<double> BackoffBuckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

    private readonly Meter _meter;
    // Recorded through the methods below, which convert the callers' milliseconds to the instruments' seconds.
    private readonly Histogram<double> _rtt, _clientRtt, _clientReconnectDelay, _probeLatency;
    private long _active;
    private int _activeAlerts;
    private int _observingDescriptors;
    private readonly ConcurrentDictionary<string, PoolProtocol.PoolStats> _pools = new();
    private readonly ConcurrentDictionary<string, (string Kind, ProbeState State)> _probes = new();

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Akka.Actor.ActorSystem, SupervisorMetrics> BySystem = new();

    /// <summary>
    /// The meter of the supervisor in this actor system, the same instance for the core and every feature package: the
    /// host's when its container has one (the service registers it), else one of the actor system's own, disposed with it.
    /// </summary>
    public static SupervisorMetrics Of(Akka.Actor.ActorSystem system, Akka.DependencyInjection.IDependencyResolver resolver) =>
        BySystem.GetValue(system, owner =>
        {
            if (resolver.GetService<SupervisorMetrics>() is { } hosts) return hosts;
            var own = new SupervisorMetrics(resolver.GetService<IMeterFactory>());
            owner.RegisterOnTermination(own.Dispose);
            return own;
        });

    public SupervisorMetrics(IMeterFactory? meters = null)
    {
        _meter = meters?.Create(MeterName) ?? new Meter(MeterName);
        Accepted = _meter.CreateCounter<long>("supervisor.connections.accepted", "{connection}", "Connections accepted, refused ones included");
        Closed = _meter.CreateCounter<long>("supervisor.connections.closed", "{connection}", "Connections closed, by reason");
        // Heartbeats and bytes are read from the connections' striped counters at each collection: one tally, shared with /api/stats.
        _meter.CreateObservableCounter("supervisor.heartbeats.received", () => Traffic.Read().Heartbeats, "{heartbeat}", "Heartbeat frames received from peers");
        HeartbeatsMissed = _meter.CreateCounter<long>("supervisor.heartbeats.missed", "{heartbeat}", "Heartbeat intervals that passed without a valid frame");
        HeartbeatsTooFast = _meter.CreateCounter<long>("supervisor.heartbeats.too_fast", "{connection}",
            "Connections closed for heartbeating far faster than the interval they announced (rate-limited)");
        _rtt = Latency("supervisor.heartbeat.rtt", "Round-trip time of server pings");
        // The convention's name and attribute for bytes through an interface (system.network.io, process.network.io),
        // read from the same striped counters as the heartbeats.
        _meter.CreateObservableCounter("supervisor.network.io", ObserveBytes, "By", "Bytes received from and sent to peers, as on the wire, by network.io.direction");
        _meter.CreateObservableUpDownCounter("supervisor.connections.active", () => Interlocked.Read(ref _active), "{connection}", "Live connections");
        _meter.CreateObservableUpDownCounter("supervisor.alerts.active", () => Volatile.Read(ref _activeAlerts), "{alert}", "Alerts raised and not yet resolved");

        // Outbound side (issue 5): heartbeat clients, pools, dependency probes.
        ClientConnects = _meter.CreateCounter<long>("supervisor.client.connects", "{connection}", "Outbound client connections established, by client");
        ClientDisconnects = _meter.CreateCounter<long>("supervisor.client.disconnects", "{connection}", "Outbound client connections lost, by client and reason");
        _clientRtt = Latency("supervisor.client.rtt", "Round-trip time of outbound client heartbeats, by client");
        _clientReconnectDelay = _meter.CreateHistogram("supervisor.client.reconnect.delay", "s", "Backoff delays drawn before reconnect attempts, by client",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = BackoffBuckets });
        ClientFramesDropped = _meter.CreateCounter<long>("supervisor.client.frames.dropped", "{frame}", "Data frames dropped or refused by a full client buffer, by client and policy");
        ProbeChecks = _meter.CreateCounter<long>("supervisor.probe.checks", "{check}", "Probe checks run, by probe and result (success, failure)");
        _probeLatency = Latency("supervisor.probe.latency", "Duration of successful probe checks, by probe");
        _meter.CreateObservableGauge("supervisor.pool.connections", ObservePools, "{connection}", "Pool members by pool and health (healthy, suspect, reconnecting)");
        _meter.CreateObservableGauge("supervisor.probe.state", ObserveProbes, "{state}", "Probe state by probe: 1 up, 0 down, -1 unknown");
    }

    /// <summary>A duration histogram in seconds with <see cref="LatencyBuckets"/>: the exporter's defaults (0, 5, 10 … 10000) would put every loopback round trip in its first bucket.</summary>
    private Histogram<double> Latency(string name, string description) =>
        _meter.CreateHistogram(name, "s", description, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });

    public Meter Meter => _meter;
    public Counter<long> Accepted { get; }
    public Counter<long> Closed { get; }
    public Counter<long> HeartbeatsMissed { get; }
    public Counter<long> HeartbeatsTooFast { get; }

    /// <summary>The server-ping round-trip histogram (seconds), for in-process listeners such as the dashboard's history.</summary>
    internal Instrument HeartbeatRtt => _rtt;

    /// <summary>Heartbeats and bytes of inbound connections, added by the connection actors and read on demand.</summary>
    public Connections.LiveTraffic Traffic { get; } = new();

    public Counter<long> ClientConnects { get; }
    public Counter<long> ClientDisconnects { get; }
    public Counter<long> ClientFramesDropped { get; }
    public Counter<long> ProbeChecks { get; }

    /// <summary>A server ping's round trip, measured in milliseconds, recorded in seconds.</summary>
    public void HeartbeatRoundTrip(double milliseconds) => _rtt.Record(milliseconds / 1000);

    /// <summary>An outbound client heartbeat's round trip, measured in milliseconds, recorded in seconds.</summary>
    public void ClientRoundTrip(double milliseconds, KeyValuePair<string, object?> client) => _clientRtt.Record(milliseconds / 1000, client);

    public void ClientReconnectDelay(TimeSpan delay, KeyValuePair<string, object?> client) => _clientReconnectDelay.Record(delay.TotalSeconds, client);

    /// <summary>A successful probe check's duration, measured in milliseconds, recorded in seconds.</summary>
    public void ProbeLatency(double milliseconds, KeyValuePair<string, object?> probe) => _probeLatency.Record(milliseconds / 1000, probe);

    /// <summary>Set by each pool actor, the only writer of its entry.</summary>
    public void SetPoolStats(PoolProtocol.PoolStats stats) => _pools[stats.Pool] = stats;

    public void RemovePool(string pool) => _pools.TryRemove(pool, out _);

    /// <summary>Set by each probe actor, the only writer of its entry.</summary>
    public void SetProbeState(string probe, string kind, ProbeState state) => _probes[probe] = (kind, state);

    public void RemoveProbe(string probe) => _probes.TryRemove(probe, out _);

    private IEnumerable<Measurement<int>> ObservePools()
    {
        foreach (var (pool, stats) in _pools)
        {
            yield return new Measurement<int>(stats.Healthy, new("pool", pool), new("health", "healthy"));
            yield return new Measurement<int>(stats.Suspect, new("pool", pool), new("health", "suspect"));
            yield return new Measurement<int>(stats.Reconnecting, new("pool", pool), new("health", "reconnecting"));
        }
    }

    private IEnumerable<Measurement<int>> ObserveProbes()
    {
        foreach (var (probe, (kind, state)) in _probes)
            yield return new Measurement<int>(state switch { ProbeState.Up => 1, ProbeState.Down => 0, _ => -1 },
                new("probe", probe), new("kind", kind));
    }

    private IEnumerable<Measurement<long>> ObserveBytes()
    {
        var (_, received, sent) = Traffic.Read();
        yield return new Measurement<long>(received, new KeyValuePair<string, object?>("network.io.direction", "receive"));
        yield return new Measurement<long>(sent, new KeyValuePair<string, object?>("network.io.direction", "transmit"));
    }

    /// <summary>
    /// How the meter learns of the lifecycle: every event, once, from <see cref="Connections.LifecyclePublisher"/> on the
    /// publishing thread. Inbound connections count in <c>supervisor.connections.*</c>, outbound ones in their own
    /// <c>supervisor.client.connects</c> / <c>supervisor.client.disconnects</c> (DESIGN §3, "One lifecycle").
    /// </summary>
    internal void Observe(IConnectionLifecycleEvent lifecycle)
    {
        switch (lifecycle)
        {
            case ConnectionLifecycle.Opened { Direction: ConnectionDirection.Inbound }:
                ConnectionOpened();
                break;
            case ConnectionLifecycle.Closed { Direction: ConnectionDirection.Inbound } closed:
                ConnectionClosed(closed.Reason, closed.Cause);
                break;
            case ConnectionLifecycle.Refused refused:
                ConnectionRefused(refused.Reason);
                break;
            case ConnectionLifecycle.Opened opened:
                ClientConnects.Add(1, new KeyValuePair<string, object?>("client", opened.Status.Listener));
                break;
            case ConnectionLifecycle.Closed closed:
                ClientDisconnects.Add(1, new KeyValuePair<string, object?>("client", closed.Status.Listener),
                    new KeyValuePair<string, object?>("reason", closed.Reason.ToWireName()));
                break;
        }
    }

    private void ConnectionOpened()
    {
        Interlocked.Increment(ref _active);
        Accepted.Add(1);
    }

    private void ConnectionRefused(CloseReason reason)
    {
        Accepted.Add(1);
        Closed.Add(1, new KeyValuePair<string, object?>("reason", reason.ToWireName()));
    }

    /// <param name="cause">On heartbeat-timeout closes only: the <c>cause</c> label (DESIGN §3, "Cause of death"); other series keep <c>reason</c> alone.</param>
    private void ConnectionClosed(CloseReason reason, SilenceCause? cause)
    {
        Interlocked.Decrement(ref _active);
        if (cause is { } c && reason == CloseReason.HeartbeatTimeout)
            Closed.Add(1, new KeyValuePair<string, object?>("reason", reason.ToWireName()), new KeyValuePair<string, object?>("cause", c.ToWireName()));
        else
            Closed.Add(1, new KeyValuePair<string, object?>("reason", reason.ToWireName()));
    }

    /// <summary>Connections of a lost cluster node, closed with <c>node-down</c> by this survivor (they were never active here).</summary>
    public void ConnectionsLost(long count) =>
        Closed.Add(count, new KeyValuePair<string, object?>("reason", CloseReason.NodeDown.ToWireName()));


    /// <summary>
    /// Gauges of the process's descriptors: <c>process.unix.file_descriptor.count</c> (the convention's name; the
    /// budget's count, at most a second old), <c>process.unix.file_descriptor.limit</c> (the soft limit; both exported to Prometheus under its
    /// process collector's names, <see cref="ServiceIdentity.PrometheusNames"/>) and <c>supervisor.accept.paused</c> (1 while the TCP listeners
    /// do not accept for want of descriptors). Called once, by the wiring of the listeners.
    /// </summary>
    internal void ObserveFileDescriptors(Hosting.FileDescriptorBudget descriptors)
    {
        if (Interlocked.Exchange(ref _observingDescriptors, 1) == 1) return;
        _meter.CreateObservableUpDownCounter("process.unix.file_descriptor.count", () => ObserveOpenDescriptors(descriptors), "{file_descriptor}", "File descriptors open in the process");
        if (descriptors.Limit != long.MaxValue)
            _meter.CreateObservableGauge("process.unix.file_descriptor.limit", () => descriptors.Limit, "{file_descriptor}", "The process's soft file descriptor limit (RLIMIT_NOFILE)");
        _meter.CreateObservableGauge("supervisor.accept.paused", () => descriptors.Current is null ? 0 : 1, "{state}",
            "1 while the TCP listeners do not accept for want of file descriptors, else 0");
    }

    /// <summary>The budget's count (at most a second old), shared with the listeners rather than counted per scrape.</summary>
    private static IEnumerable<Measurement<int>> ObserveOpenDescriptors(Hosting.FileDescriptorBudget descriptors) =>
        descriptors.OpenNow() is { } open ? [new Measurement<int>(open)] : [];

    /// <summary>Set by the monitor actor, the only writer.</summary>
    public void SetActiveAlerts(int count) => Volatile.Write(ref _activeAlerts, count);

    public void Dispose() => _meter.Dispose();
}
