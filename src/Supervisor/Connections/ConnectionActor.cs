using Akka.Actor;
using Microsoft.Extensions.Logging;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Transport;

namespace Supervisor.Connections;

/// <summary>
/// One peer connection: owns its transport and its one heartbeat deadline, answers heartbeats, hands
/// data to the data handler, and closes itself with exactly one reason (DESIGN §2–§3). The deadline
/// lives in the system's <see cref="DeadlineQueue"/>: a frame only publishes the next deadline, and
/// <c>DeadlineDue</c> arrives only when one has passed, so a steady peer costs no timer per heartbeat.
/// </summary>
internal sealed class ConnectionActor : UntypedActor, IConnectionContext
{
    public sealed record Setup(
        string Id,
        ListenerSettings Listener,
        IConnectionTransport Transport,
        ConnectionServices Services);

    public static Props Props(Setup setup) => Akka.Actor.Props.Create(() => new ConnectionActor(setup));

    private sealed class DeadlineDue : INotInfluenceReceiveTimeout
    {
        public static readonly DeadlineDue Instance = new();
    }

    private sealed class LingerExpired : INotInfluenceReceiveTimeout
    {
        public static readonly LingerExpired Instance = new();
    }


    private sealed class FirstFrameDue : INotInfluenceReceiveTimeout
    {
        public static readonly FirstFrameDue Instance = new();
    }

    private readonly Setup _setup;
    private readonly ConnectionServices _services;
    private readonly IConnectionTransport _transport;
    private readonly DateTimeOffset _connectedAt;
    private readonly HeartbeatDeadlines _deadlines;
    private long _bytesIn;
    private CloseReason? _closeReason;
    private string? _closeDetail;
    private DateTimeOffset _closedAt;
    private DateTimeOffset _armedDeadline;
    // All three of its timers live in the deadline queue (no Akka TimerScheduler per connection).
    private DeadlineQueue _timers = null!;
    private Deadline? _deadline, _firstFrame, _linger;
    // The registry hears of every state change at once, and of counters at most every status-refresh.
    private DateTimeOffset _statusRefreshAt;
    private bool _sawValidFrame;
    // When the first-frame deadline is due, and whether a server stall has already postponed it once.
    private DateTimeOffset _firstFrameDueAt;
    private bool _firstFramePostponed;
    // Token buckets of the frame-rate limits: heartbeat traffic (every frame but data) always, data frames when configured.
    private TokenBucket _heartbeatTokens, _dataTokens;


    public ConnectionActor(Setup setup)
    {
        _setup = setup;
        _services = setup.Services;
        _transport = setup.Transport;
        _connectedAt = Now;
        _deadlines = new HeartbeatDeadlines(setup.Listener.Heartbeat, _connectedAt);
    }

    // An UntypedActor with a switch, unlike the project's other actors: a ReceiveActor builds its
    // handler table per instance (a delegate per Receive<T>, plus the matcher), 824 B for each of tens
    // of thousands of connections (measured with dotnet-gcdump, bench/README.md, issue 7).
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case TransportEvents.FramesReady:
                TakeFrames();
                break;
            case TransportEvents.FrameReceived received:
                OnFrame(new DecodedFrame(received.Frame.Type, received.Frame.Timestamp, received.Frame.Data, received.Frame.Seq),
                    received.WireBytes, received.Frame);
                _transport.FrameHandled();
                break;
            case TransportEvents.FrameRejected rejected:
                Close(rejected.Reason, rejected.Error);
                break;
            case TransportEvents.InputEnded ended:
                Close(ended.Reason, ended.Detail);
                break;
            case TransportEvents.WriteFinished finished:
                OnWriteFinished(finished);
                break;
            case DeadlineDue:
                OnDeadline();
                break;
            case FirstFrameDue:
                OnFirstFrameDue();
                break;
            case ConnectionSupervisor.EvictUnproven:
                if (_sawValidFrame)
                    Sender.Tell(ConnectionSupervisor.EvictionDeclined.Instance, Self);
                else
                    Close(CloseReason.FirstFrameTimeout, $"evicted: the server is full and this connection has sent no frame in {(Now - _connectedAt).TotalSeconds:0.0} s");
                break;
            case ConnectionCommands.CloseConnection command:
                Close(command.Reason, command.Reason switch
                {
                    CloseReason.ServerShutdown => "the server is shutting down",
                    CloseReason.AdminClosed => "closed by the operator",
                    _ => "closed by the server",
                });
                break;
            case ConnectionCommands.GetStatus or ConnectionCommands.GetTcpInfo:
                AnswerQuery(message);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    public string ConnectionId => _setup.Id;
    public string Remote => _transport.Remote;
    public string Listener => _setup.Listener.Name;
    public DateTimeOffset Now => Context.System.Scheduler.Now;
    private string Id => _setup.Id;

    public void Send(Frame frame)
    {
        if (_closeReason is not null) return;
        var before = _transport.BytesOut;
        if (!_transport.Write(frame))
        {
            CloseForWriteFailure();
            return;
        }
        _services.Metrics.Sent(_transport.BytesOut - before);
    }

    private void SendHeartbeatResponse(long timestamp, long? seq)
    {
        if (_closeReason is not null) return;
        var before = _transport.BytesOut;
        if (!_transport.WriteHeartbeatResponse(timestamp, seq))
        {
            CloseForWriteFailure();
            return;
        }
        _services.Metrics.Sent(_transport.BytesOut - before);
    }

    protected override void PreStart()
    {
        // Timers first: whoever learns that this connection opened (a test advancing virtual time, say)
        // may rely on its deadlines being armed already.
        _timers = DeadlineQueue.Get(Context.System);
        _deadline = _timers.Register(Self, DeadlineDue.Instance);
        ArmDeadline();
        var limits = _setup.Listener.Limits;
        if (limits.FirstFrameTimeout is { } firstFrame)
        {
            _firstFrame = _timers.Register(Self, FirstFrameDue.Instance);
            _firstFrameDueAt = _connectedAt + firstFrame;
            _firstFrame.Set(_firstFrameDueAt);
        }
        _heartbeatTokens = new TokenBucket(limits.MaxFramesPerSecond, limits.FrameBurst, _connectedAt);
        if (limits.MaxDataFramesPerSecond is { } dataRate)
            _dataTokens = new TokenBucket(dataRate, limits.FrameBurst, _connectedAt);
        _statusRefreshAt = _connectedAt + _services.StatusRefresh;
        _services.Registry.Tell(new RegistryProtocol.ConnectionOpened(Status()));
        _services.Monitor.Tell(new MonitorEvents.ConnectionOpened(Listener));
        _services.Metrics.ConnectionOpened();
        ConnectionLog.Opened(_services.Log, Id, Remote, Listener);
        foreach (var problem in _transport.KeepAlive.Problems)
            ConnectionLog.KeepAliveProblem(_services.Log, Id, problem);
        _transport.Start(Self);
    }

    /// <summary>Takes every frame the transport has queued, in order, until one closes the connection.</summary>
    private void TakeFrames()
    {
        if (_transport.Inbound is not { } inbound) return;
        inbound.BeginTaking();
        while (_closeReason is null && inbound.TryTake(out var next))
            OnFrame(next.Frame, next.WireBytes, null);
    }

    /// <param name="frame">The frame as decoded.</param>
    /// <param name="wireBytes">Its size on the wire, newline included.</param>
    /// <param name="record">The same frame as a record when the transport sent one, so a data frame is not copied again.</param>
    private void OnFrame(DecodedFrame frame, int wireBytes, Frame? record)
    {
        _bytesIn += wireBytes;
        _services.Metrics.Received(wireBytes);
        var now = Now;
        if (RateLimitExceeded(frame.Type, now) is { } exceeded)
        {
            Close(CloseReason.RateLimited, exceeded);
            return;
        }
        if (!_sawValidFrame)
        {
            _sawValidFrame = true;
            if (_firstFrame is not null)
            {
                _firstFrame.Cancel();
                Context.Parent.Tell(ConnectionSupervisor.FirstFrameSeen.Instance, Self);
            }
        }
        var rttSamples = _deadlines.RttSamples;
        if (_deadlines.OnFrame(frame.Type, frame.Seq, now) || now >= _statusRefreshAt)
            ReportStatus(now);
        ArmDeadline();
        if (_deadlines.RttSamples != rttSamples && _deadlines.RttMs is { } rtt)
        {
            _services.Metrics.Rtt.Record(rtt);
            _services.Monitor.Tell(new MonitorEvents.RttSampled(rtt));
        }

        switch (frame.Type)
        {
            case FrameType.Heartbeat:
                _services.Metrics.HeartbeatsReceived.Add(1);
                ConnectionLog.Heartbeat(_services.Log, Id, frame.Seq);
                SendHeartbeatResponse(now.ToUnixTimeSeconds(), frame.Seq);
                break;
            case FrameType.Data:
                _services.DataHandler.OnData(record ?? frame.ToFrame(), this);
                break;
            case FrameType.HeartbeatResponse:
                break;
            case FrameType.ErrorNotice:
                ConnectionLog.PeerNotice(_services.Log, Id, frame.Data);
                break;
        }
    }

    /// <summary>
    /// Takes a token for this frame; the detail of the rate-limited close when there was none. Heartbeat
    /// traffic is always limited (a real peer sends one heartbeat an interval); data frames only when
    /// <c>max-data-frames-per-second</c> is set, since their rate is the application's business.
    /// </summary>
    private string? RateLimitExceeded(FrameType type, DateTimeOffset now)
    {
        var limits = _setup.Listener.Limits;
        if (type != FrameType.Data)
            return _heartbeatTokens.TryTake(now) ? null
                : $"more than {limits.MaxFramesPerSecond:0.##} heartbeat frames per second (burst {limits.FrameBurst})";
        if (limits.MaxDataFramesPerSecond is not { } dataRate || _dataTokens.TryTake(now)) return null;
        return $"more than {dataRate:0.##} data frames per second (burst {limits.FrameBurst})";
    }

    /// <summary>A token bucket: tokens refill at <c>rate</c> a second up to <c>burst</c>; a frame takes one.</summary>
    private struct TokenBucket(double rate, int burst, DateTimeOffset now)
    {
        private double _tokens = burst;
        private DateTimeOffset _at = now;

        public bool TryTake(DateTimeOffset now)
        {
            _tokens = Math.Min(burst, _tokens + (now - _at).TotalSeconds * rate);
            _at = now;
            if (_tokens < 1) return false;
            _tokens -= 1;
            return true;
        }
    }

    private void OnFirstFrameDue()
    {
        if (_sawValidFrame || _closeReason is not null) return;
        var now = Now;
        // Fired this late, the server itself stalled: the peer's first frame may be unread in the socket.
        // Read it before judging, once: a server starved for good must still shed connect-and-idle floods.
        if (!_firstFramePostponed && Max(now - _firstFrameDueAt, _firstFrame!.ProcessLateness) >= _setup.Listener.Heartbeat.StarvationThreshold)
        {
            _firstFramePostponed = true;
            _firstFrameDueAt = now + _setup.Listener.Heartbeat.StarvationThreshold;
            _firstFrame.Set(_firstFrameDueAt);
            return;
        }
        Close(CloseReason.FirstFrameTimeout, $"no complete frame within {_setup.Listener.Limits.FirstFrameTimeout!.Value.ToHocon()} of connecting");
    }

    private void OnDeadline()
    {
        var now = Now;
        // A deadline timer that fires far too late means this process stalled (GC, CPU starvation),
        // not that the peer did: frames it sent meanwhile may still sit unread in the socket. A deadline
        // that fell due at the very end of a stall is hardly late itself; the queue's lateness shows it.
        var lateness = Max(now - _armedDeadline, _deadline!.ProcessLateness);
        if (lateness >= _setup.Listener.Heartbeat.StarvationThreshold)
        {
            _deadlines.ForgiveStall(lateness, now);
            _services.Monitor.Tell(new MonitorEvents.StallForgiven(Id, lateness));
        }
        switch (_deadlines.Check(now))
        {
            case DeadlineVerdict.TimedOut:
                Close(CloseReason.HeartbeatTimeout, $"no valid frame for {(now - _deadlines.LastLivenessAt).TotalMilliseconds:F0} ms");
                return;
            case DeadlineVerdict.MissedHeartbeatSendPing:
                _services.Metrics.HeartbeatsMissed.Add(1);
                _services.Monitor.Tell(new MonitorEvents.HeartbeatMissed(Listener, Id));
                Send(_deadlines.NextPing(now));
                break;
            case DeadlineVerdict.MissedHeartbeat:
                _services.Metrics.HeartbeatsMissed.Add(1);
                _services.Monitor.Tell(new MonitorEvents.HeartbeatMissed(Listener, Id));
                break;
            case DeadlineVerdict.Nothing:
                // Told early (a frame raced the queue's check), or a tick without heartbeat deadlines:
                // nothing changed, so the registry hears only when its refresh is due.
                if (now >= _statusRefreshAt) ReportStatus(now);
                ArmDeadline();
                return;
        }
        ReportStatus(now);
        ArmDeadline();
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private void ReportStatus(DateTimeOffset now)
    {
        _services.Registry.Tell(new RegistryProtocol.ConnectionUpdated(Status()));
        _statusRefreshAt = now + _services.StatusRefresh;
    }

    /// <summary>Publishes the next deadline; after a frame this only moves it later, without a lock or a message.</summary>
    private void ArmDeadline()
    {
        if (_closeReason is not null) return;
        // Without heartbeat deadlines (keep-alive only, or a WebSocket's ping/pong) the same timer still
        // ticks once an interval, so the registry's view of the connection (bytes, last frame) stays fresh.
        var deadline = _deadlines.NextDeadline() ?? Now + _setup.Listener.Heartbeat.Interval;
        _armedDeadline = deadline;
        _deadline!.Set(deadline);
    }

    private void OnWriteFinished(TransportEvents.WriteFinished finished)
    {
        if (!_transport.OnWriteFinished(finished))
        {
            if (_closeReason is null) CloseForWriteFailure();
            else Context.Stop(Self);
        }
    }

    /// <summary>A refused write closes with the transport's reason: a reset peer is peer-reset, only a peer that stopped reading write-failed.</summary>
    private void CloseForWriteFailure()
    {
        var failure = _transport.WriteFailure;
        Close(failure.Reason, failure.Detail);
    }

    private void Close(CloseReason reason, string detail)
    {
        if (_closeReason is not null) return;
        _closeReason = reason;
        _closeDetail = detail;
        _closedAt = Now;
        _deadline?.Cancel();
        _firstFrame?.Cancel();
        // A closing connection holds no slot: the peer that caused it may already be reconnecting.
        Context.Parent.Tell(ConnectionSupervisor.SlotReleased.Instance, Self);
        ReportClose();
        if (!reason.IsAnnouncedToPeer())
        {
            Context.Stop(Self);
            return;
        }
        // Notice, then FIN, then wait for the peer's FIN: closing at once with unread input would
        // send an RST, and an RST can destroy the notice before the peer reads it.
        _transport.Write(Frame.ErrorNotice(_closedAt.ToUnixTimeSeconds(), $"{reason.ToWireName()}: {detail}"));
        _transport.ShutdownOutput();
        _linger = _timers.Register(Self, LingerExpired.Instance);
        _linger.Set(_closedAt + _setup.Listener.CloseLinger);
        Become(Closing);
    }

    private void Closing(object message)
    {
        switch (message)
        {
            case TransportEvents.InputEnded:
            case LingerExpired:
                Context.Stop(Self);
                break;
            case TransportEvents.WriteFinished finished:
                OnWriteFinished(finished);
                break;
            case ConnectionCommands.GetStatus or ConnectionCommands.GetTcpInfo:
                AnswerQuery(message);
                break;
            // Input after the close decision proves nothing and changes nothing; the transport may read on (drain).
            case TransportEvents.FrameReceived:
                _transport.FrameHandled();
                break;
            case TransportEvents.ITransportEvent:
            case ConnectionCommands.CloseConnection:
            case DeadlineDue:
            case FirstFrameDue:
            case ConnectionSupervisor.EvictUnproven:
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    /// <summary>Questions answered alike while active and while closing.</summary>
    private void AnswerQuery(object query) => Sender.Tell(query is ConnectionCommands.GetTcpInfo
        ? new ConnectionCommands.TcpInfoReport(Id, _transport.Protocol, _transport.ReadTcpInfo())
        : new RegistryProtocol.ConnectionFound(Id, Status()));

    protected override void PostStop()
    {
        _deadline?.Cancel();
        _firstFrame?.Cancel();
        _linger?.Cancel();
        try
        {
            if (_closeReason is null)
            {
                // Stopped by the supervisor after a failure: tell the peer why, then let go of the socket.
                _closeReason = CloseReason.InternalError;
                _closeDetail = "the server failed while handling this connection";
                _closedAt = Now;
                ReportClose();
                _transport.Write(Frame.ErrorNotice(_closedAt.ToUnixTimeSeconds(), $"{CloseReason.InternalError.ToWireName()}: {_closeDetail}"));
            }
        }
        catch (Exception e)
        {
            // The notice is a courtesy; the transport that failed may fail again. The socket is released below whatever happens.
            ConnectionLog.Failed(_services.Log, e, Id);
        }
        finally
        {
            try
            {
                _transport.Dispose();
            }
            finally
            {
                // The registry keeps the connection (as closing) until its socket is released.
                _services.Registry.Tell(new RegistryProtocol.ConnectionClosed(Status(), _closeReason!.Value, _closedAt));
            }
        }
    }

    /// <summary>
    /// The monitor, the meter and the log learn of a close when it is decided, not when the linger
    /// for the peer's FIN ends, so alerts and log lines carry the moment the peer was judged.
    /// </summary>
    private void ReportClose()
    {
        var reason = _closeReason!.Value;
        _services.Monitor.Tell(new MonitorEvents.ConnectionClosed(Listener, Id, reason));
        _services.Metrics.ConnectionClosed(reason);
        ConnectionLog.Closed(_services.Log, Id, reason.ToWireName(), _closeDetail ?? "", Remote,
            (_closedAt - _connectedAt).TotalSeconds, _bytesIn, _transport.BytesOut);
    }

    private ConnectionStatus Status() => new(
        Id,
        Remote,
        Listener,
        _transport.Protocol,
        _closeReason is null ? _deadlines.State : ConnectionState.Closing,
        _connectedAt,
        _deadlines.LastFrameAt,
        _deadlines.LastHeartbeatAt,
        _deadlines.MissedHeartbeats,
        _deadlines.RttMs,
        _bytesIn,
        _transport.BytesOut,
        _deadlines.HeartbeatsReceived,
        _transport.KeepAlive);
}
