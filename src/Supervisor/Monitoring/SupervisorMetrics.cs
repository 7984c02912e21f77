using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Monitoring;

/// <summary>
/// The <c>Supervisor</c> Meter and its instruments, named by OpenTelemetry conventions. Instruments
/// are thread-safe, so connection actors record into them directly; visible in dotnet-counters
/// (<c>dotnet-counters monitor -n Supervisor --counters Supervisor</c>) and to any exporter.
/// </summary>
internal sealed class SupervisorMetrics : IDisposable
{
    public const string MeterName = "Supervisor";

    private readonly Meter _meter;
    private long _active;
    private int _activeAlerts;
    private int _observingDescriptors;
    private readonly ConcurrentDictionary<string, PoolProtocol.PoolStats> _pools = new();
    private readonly ConcurrentDictionary<string, (string Kind, ProbeState State)> _probes = new();

    public SupervisorMetrics(IMeterFactory? meters = null)
    {
        _meter = meters?.Create(MeterName) ?? new Meter(MeterName);
        Accepted = _meter.CreateCounter<long>("supervisor.connections.accepted", "{connection}", "Connections accepted, refused ones included");
        Closed = _meter.CreateCounter<long>("supervisor.connections.closed", "{connection}", "Connections closed, by reason");
        HeartbeatsReceived = _meter.CreateCounter<long>("supervisor.heartbeats.received", "{heartbeat}", "Heartbeat frames received from peers");
        HeartbeatsMissed = _meter.CreateCounter<long>("supervisor.heartbeats.missed", "{heartbeat}", "Heartbeat intervals that passed without a valid frame");
        Rtt = _meter.CreateHistogram<double>("supervisor.heartbeat.rtt", "ms", "Round-trip time of server pings");
        Bytes = _meter.CreateCounter<long>("supervisor.bytes", "By", "Bytes received from and sent to peers");
        _meter.CreateObservableUpDownCounter("supervisor.connections.active", () => Interlocked.Read(ref _active), "{connection}", "Live connections");
        _meter.CreateObservableUpDownCounter("supervisor.alerts.active", () => Volatile.Read(ref _activeAlerts), "{alert}", "Alerts raised and not yet resolved");

        // Outbound side (issue 5): heartbeat clients, pools, dependency probes.
        ClientConnects = _meter.CreateCounter<long>("supervisor.client.connects", "{connection}", "Outbound client connections established, by client");
        ClientDisconnects = _meter.CreateCounter<long>("supervisor.client.disconnects", "{connection}", "Outbound client connections lost, by client and reason");
        ClientRtt = _meter.CreateHistogram<double>("supervisor.client.rtt", "ms", "Round-trip time of outbound client heartbeats, by client");
        ClientReconnectDelay = _meter.CreateHistogram<double>("supervisor.client.reconnect.delay", "ms", "Backoff delays drawn before reconnect attempts, by client");
        ClientFramesDropped = _meter.CreateCounter<long>("supervisor.client.frames.dropped", "{frame}", "Data frames dropped or refused by a full client buffer, by client and policy");
        ProbeChecks = _meter.CreateCounter<long>("supervisor.probe.checks", "{check}", "Probe checks run, by probe and result (success, failure)");
        ProbeLatency = _meter.CreateHistogram<double>("supervisor.probe.latency", "ms", "Duration of successful probe checks, by probe");
        _meter.CreateObservableGauge("supervisor.pool.connections", ObservePools, "{connection}", "Pool members by pool and health (healthy, suspect, reconnecting)");
        _meter.CreateObservableGauge("supervisor.probe.state", ObserveProbes, "{state}", "Probe state by probe: 1 up, 0 down, -1 unknown");
    }

    public Meter Meter => _meter;
    public Counter<long> Accepted { get; }
    public Counter<long> Closed { get; }
    public Counter<long> HeartbeatsReceived { get; }
    public Counter<long> HeartbeatsMissed { get; }
    public Histogram<double> Rtt { get; }
    public Counter<long> Bytes { get; }

    public Counter<long> ClientConnects { get; }
    public Counter<long> ClientDisconnects { get; }
    public Histogram<double> ClientRtt { get; }
    public Histogram<double> ClientReconnectDelay { get; }
    public Counter<long> ClientFramesDropped { get; }
    public Counter<long> ProbeChecks { get; }
    public Histogram<double> ProbeLatency { get; }

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

    public void ConnectionOpened()
    {
        Interlocked.Increment(ref _active);
        Accepted.Add(1);
    }

    public void ConnectionRefused(CloseReason reason)
    {
        Accepted.Add(1);
        Closed.Add(1, new KeyValuePair<string, object?>("reason", reason.ToWireName()));
    }

    public void ConnectionClosed(CloseReason reason)
    {
        Interlocked.Decrement(ref _active);
        Closed.Add(1, new KeyValuePair<string, object?>("reason", reason.ToWireName()));
    }

    /// <summary>Connections of a lost cluster node, closed with <c>node-down</c> by this survivor (they were never active here).</summary>
    public void ConnectionsLost(long count) =>
        Closed.Add(count, new KeyValuePair<string, object?>("reason", CloseReason.NodeDown.ToWireName()));

    public void Received(long bytes) => Bytes.Add(bytes, new KeyValuePair<string, object?>("direction", "received"));

    public void Sent(long bytes) => Bytes.Add(bytes, new KeyValuePair<string, object?>("direction", "sent"));

    /// <summary>
    /// Gauges of the process's descriptors: <c>supervisor.fds.open</c> (counted at each collection),
    /// <c>supervisor.fds.limit</c> (the soft limit) and <c>supervisor.accept.paused</c> (1 while the TCP listeners
    /// do not accept for want of descriptors). Called once, by the wiring of the listeners.
    /// </summary>
    internal void ObserveFileDescriptors(Hosting.FileDescriptorBudget descriptors)
    {
        if (Interlocked.Exchange(ref _observingDescriptors, 1) == 1) return;
        _meter.CreateObservableGauge("supervisor.fds.open", ObserveOpenDescriptors, "{file_descriptor}", "File descriptors open in the process");
        if (descriptors.Limit != long.MaxValue)
            _meter.CreateObservableGauge("supervisor.fds.limit", () => descriptors.Limit, "{file_descriptor}", "The process's soft file descriptor limit (RLIMIT_NOFILE)");
        _meter.CreateObservableGauge("supervisor.accept.paused", () => descriptors.Current is null ? 0 : 1, "{state}",
            "1 while the TCP listeners do not accept for want of file descriptors, else 0");
    }

    private static IEnumerable<Measurement<int>> ObserveOpenDescriptors() =>
        Hosting.FileDescriptorLimits.CountOpen() is { } open ? [new Measurement<int>(open)] : [];

    /// <summary>Set by the monitor actor, the only writer.</summary>
    public void SetActiveAlerts(int count) => Volatile.Write(ref _activeAlerts, count);

    public void Dispose() => _meter.Dispose();
}
