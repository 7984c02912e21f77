using System.Diagnostics.Metrics;
using Supervisor.Messages.Wire;

namespace Supervisor.Monitoring;

/// <summary>
/// The <c>Supervisor</c> Meter and its instruments, named by OpenTelemetry conventions. Instruments
/// are thread-safe, so connection actors record into them directly; visible in dotnet-counters
/// (<c>dotnet-counters monitor -n Supervisor --counters Supervisor</c>) and to any exporter.
/// </summary>
public sealed class SupervisorMetrics : IDisposable
{
    public const string MeterName = "Supervisor";

    private readonly Meter _meter;
    private long _active;
    private int _activeAlerts;

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
    }

    public Meter Meter => _meter;
    public Counter<long> Accepted { get; }
    public Counter<long> Closed { get; }
    public Counter<long> HeartbeatsReceived { get; }
    public Counter<long> HeartbeatsMissed { get; }
    public Histogram<double> Rtt { get; }
    public Counter<long> Bytes { get; }

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

    public void Received(long bytes) => Bytes.Add(bytes, new KeyValuePair<string, object?>("direction", "received"));

    public void Sent(long bytes) => Bytes.Add(bytes, new KeyValuePair<string, object?>("direction", "sent"));

    /// <summary>Set by the monitor actor, the only writer.</summary>
    public void SetActiveAlerts(int count) => Volatile.Write(ref _activeAlerts, count);

    public void Dispose() => _meter.Dispose();
}
