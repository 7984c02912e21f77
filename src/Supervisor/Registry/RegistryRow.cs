using Supervisor.Messages.Protocol;

namespace Supervisor.Registry;

/// <summary>
/// One open connection's row of the table, updated in place. A connection refreshes its row every
/// <c>registry.status-refresh</c>; storing each refresh's <see cref="ConnectionStatus"/> made every row an object that
/// lived 10 s, long enough to reach the GC's oldest generation, and replaced it there: at 19,000 connections 400 KB/s
/// of dead rows piled up in gen 2 between its collections (the idle service's RSS climbed from 3.2 to 4.4 KB per
/// connection over four minutes, bench/README.md, issue 16). Copied into a row that stays, a refresh's status dies
/// young, where collecting it costs nothing. Queries get a <see cref="ConnectionStatus"/> built from the row.
/// </summary>
internal sealed class RegistryRow(ConnectionStatus opened)
{
    private readonly string _id = opened.Id, _remote = opened.Remote, _listener = opened.Listener, _protocol = opened.Protocol;
    private readonly DateTimeOffset _connectedAt = opened.ConnectedAt;
    private ConnectionState _state = opened.State;
    private DateTimeOffset? _lastFrameAt = opened.LastFrameAt, _lastHeartbeatAt = opened.LastHeartbeatAt;
    private int _missedHeartbeats = opened.MissedHeartbeats;
    private double? _rttMs = opened.RttMs;
    private long _bytesIn = opened.BytesIn, _bytesOut = opened.BytesOut, _heartbeatsReceived = opened.HeartbeatsReceived;
    private KeepAliveStatus _keepAlive = opened.KeepAlive;
    private HandlerFlow _handler = opened.Handler;
    private PhiStatus? _phi = opened.Phi;
    private NegotiatedHeartbeat? _negotiated = opened.Negotiated;
    private SilenceCause? _cause = opened.Cause;

    /// <summary>What a fresher status of the same connection says now (its identity, address and start do not change).</summary>
    public void Refresh(ConnectionStatus status)
    {
        _state = status.State;
        _lastFrameAt = status.LastFrameAt;
        _lastHeartbeatAt = status.LastHeartbeatAt;
        _missedHeartbeats = status.MissedHeartbeats;
        _rttMs = status.RttMs;
        _bytesIn = status.BytesIn;
        _bytesOut = status.BytesOut;
        _heartbeatsReceived = status.HeartbeatsReceived;
        _keepAlive = status.KeepAlive;
        _handler = status.Handler;
        _phi = status.Phi;
        _negotiated = status.Negotiated;
        _cause = status.Cause;
    }

    public ConnectionStatus Status => new(_id, _remote, _listener, _protocol, _state, _connectedAt, _lastFrameAt,
        _lastHeartbeatAt, _missedHeartbeats, _rttMs, _bytesIn, _bytesOut, _heartbeatsReceived, _keepAlive)
    {
        Handler = _handler,
        Phi = _phi,
        Negotiated = _negotiated,
        Cause = _cause,
    };
}
