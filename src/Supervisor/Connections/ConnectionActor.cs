using System.Collections.Concurrent;
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
/// data to the application's <see cref="ConnectionHandler"/> (one call at a time, in order, pausing its socket's
/// reads while the handler is <c>handler.max-frames-in-flight</c> frames behind), and closes itself with exactly
/// one reason (DESIGN §2–§3). It is also the connection's <see cref="IConnection"/> handle: the members a handler
/// or the <see cref="IConnectionHub"/> calls from another thread only read immutable fields or tell it a message. The deadline
/// lives in the system's <see cref="DeadlineQueue"/>: a frame only publishes the next deadline, and
/// <c>DeadlineDue</c> arrives only when one has passed, so a steady peer costs no timer per heartbeat.
/// </summary>
internal sealed class ConnectionActor : UntypedActor, IConnection
{
    /// <summary>A frame for the peer from outside the actor (a handler after an await, the hub).</summary>
    internal sealed record Push(Frame Frame);

    /// <summary>A close from outside the actor (a handler after an await, the hub).</summary>
    internal sealed record CloseWith(CloseReason Reason, string Detail);

    public sealed record Setup(
        string Id,
        ListenerSettings Listener,
        IConnectionTransport Transport,
        ConnectionServices Services);

    /// <summary>Props for one connection (tests start single connections with their own dispatcher this way).</summary>
    public static Props Props(Setup setup) => new(Deploy.None, typeof(ConnectionActor), setup);

    /// <summary>
    /// How a supervisor starts its connections: one <see cref="Akka.Actor.Props"/> for all of them, whose producer hands
    /// each new actor its <see cref="Setup"/> by the actor's name (its connection id). Props per connection — the
    /// props, its producer and the argument array holding the setup — stayed with each actor for its life, because the
    /// actor cell keeps its props for a restart (which a connection never has: its supervisor stops a failed one).
    /// 176 B per connection with the setup (bench/README.md, issue 16).
    /// </summary>
    internal sealed class Starts : IIndirectActorProducer
    {
        private readonly ConcurrentDictionary<string, Setup> _handoff = new(StringComparer.Ordinal);

        /// <param name="deploy">The connections' deployment (dispatcher, mailbox), as is for every one.</param>
        public Starts(Deploy deploy) => Props = Akka.Actor.Props.CreateBy(this).WithDeploy(deploy);

        public Props Props { get; }

        public Type ActorType => typeof(ConnectionActor);

        /// <summary>Starts the connection <paramref name="setup"/> describes as a child of <paramref name="context"/>, named by its id.</summary>
        public IActorRef Start(IActorRefFactory context, Setup setup)
        {
            _handoff[setup.Id] = setup;
            try
            {
                return context.ActorOf(Props, setup.Id);
            }
            catch
            {
                _handoff.TryRemove(setup.Id, out _);
                throw;
            }
        }

        public ActorBase Produce() => new ConnectionActor(this);

        public void Release(ActorBase actor)
        {
        }

        /// <summary>The setup of the connection being constructed; it is taken once (a restart would find none and stop).</summary>
        internal Setup Take(string id) => _handoff.TryRemove(id, out var setup)
            ? setup
            : throw new InvalidOperationException($"connection {id} has no setup: a connection actor is never restarted");
    }

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

    private sealed class HandlerTimedOut : INotInfluenceReceiveTimeout
    {
        public static readonly HandlerTimedOut Instance = new();
    }

    /// <summary>The handler's call number <c>Call</c> completed (<c>Error</c> null) or failed.</summary>
    private sealed record HandlerCompleted(long Call, Exception? Error);

    private readonly string _id;
    private readonly ListenerSettings _listener;
    private readonly ConnectionServices _services;
    private readonly IConnectionTransport _transport;
    private readonly DateTimeOffset _connectedAt;
    private readonly ITimeProvider _clock;
    private readonly HeartbeatDeadlines _deadlines;
    private long _bytesIn;
    // The transport's bytes out already added to the meter: written bytes count when the kernel took them,
    // which for a queued write is at its WriteFinished, not when it was written.
    private long _bytesOutMetered;
    private CloseReason? _closeReason;
    private string? _closeDetail;
    // Why the peer is silent, from TCP_INFO: set when it turns suspect, at each further missed interval and at a
    // heartbeat-timeout close (DESIGN §3, "Cause of death"); whether its keep-alive is nudged to probe it meanwhile.
    private SilenceCause? _cause;
    private bool _keepAliveNudged;
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

    // The application's handler: one call at a time; data frames read meanwhile wait in _waitingData, and past
    // max-frames-in-flight the transport stops reading. Touched on the actor's thread only, except as noted.
    private Queue<Frame>? _waitingData;
    private bool _handlerBusy, _busyWithFrame;
    private long _handlerCalls;
    private Deadline? _handlerDeadline;
    private DateTimeOffset _handlerDueAt;
    private bool _readingPaused;
    private long _timesPaused;
    private DateTimeOffset _pausedAt;
    // Read from other threads: the actor's ref, whether it accepts sends, whether it stopped, and the thread that
    // runs a handler callback synchronously right now (its sends are written at once, without a message).
    private IActorRef _self = ActorRefs.Nobody;
    private volatile bool _closing, _stopped;
    private int _handlerThread;

    private ConnectionActor(Starts starts) : this(starts.Take(Context.Self.Path.Name))
    {
    }

    public ConnectionActor(Setup setup)
    {
        _id = setup.Id;
        _listener = setup.Listener;
        _services = setup.Services;
        _transport = setup.Transport;
        _clock = Context.System.Scheduler;
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
            case HandlerCompleted completed:
                OnHandlerCompleted(completed);
                break;
            case HandlerTimedOut:
                OnHandlerTimedOut();
                break;
            case Push push:
                SendNow(push.Frame);
                break;
            case CloseWith close:
                Close(close.Reason, close.Detail);
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
                    CloseReason.ServerShutdown => ConnectionSupervisor.ShuttingDown(command.ReconnectAfter),
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

    public string Id => _id;
    public string Remote => _transport.Remote;
    public string Listener => _listener.Name;
    public DateTimeOffset Now => _clock.Now;

    /// <summary>Whether the calling thread is this actor's, inside a synchronous handler callback.</summary>
    private bool OnHandlerThread => _handlerThread == Environment.CurrentManagedThreadId;

    public bool Send(Frame frame)
    {
        if (_closing) return false;
        if (!OnHandlerThread)
        {
            _self.Tell(new Push(frame));
            return true;
        }
        SendNow(frame);
        return !_closing;
    }

    bool IConnection.Close(CloseReason reason, string detail)
    {
        if (_closing) return false;
        if (OnHandlerThread) Close(reason, detail);
        else _self.Tell(new CloseWith(reason, detail));
        return true;
    }

    public async Task<ConnectionStatus?> GetStatusAsync(CancellationToken cancel = default)
    {
        if (OnHandlerThread) return Status();
        if (_stopped) return null;
        try
        {
            return (await _self.Ask<RegistryProtocol.ConnectionFound>(new ConnectionCommands.GetStatus(Id), ConnectionHub.StatusAskTimeout, cancel)
                .ConfigureAwait(false)).Status;
        }
        catch (AskTimeoutException)
        {
            return null;
        }
    }

    private void SendNow(Frame frame)
    {
        if (_closeReason is not null) return;
        if (!_transport.Write(frame))
        {
            CloseForWriteFailure();
            return;
        }
        MeterBytesOut();
    }

    private void SendHeartbeatResponse(long timestamp, long? seq, int? interval)
    {
        if (_closeReason is not null) return;
        if (!_transport.WriteHeartbeatResponse(timestamp, seq, interval))
        {
            CloseForWriteFailure();
            return;
        }
        MeterBytesOut();
    }

    /// <summary>Adds what the transport has sent since the last call to the live counters, so /api/stats and /metrics count exactly what reached the kernel, notices included.</summary>
    private void MeterBytesOut()
    {
        var sent = _transport.BytesOut;
        _services.Metrics.Traffic.Sent(sent - _bytesOutMetered);
        _bytesOutMetered = sent;
    }

    protected override void PreStart()
    {
        // Timers first: whoever learns that this connection opened (a test advancing virtual time, say)
        // may rely on its deadlines being armed already.
        _timers = DeadlineQueue.Get(Context.System);
        _deadline = _timers.Register(Self, DeadlineDue.Instance);
        ArmDeadline();
        var limits = _listener.Limits;
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
        Publish(new ConnectionLifecycle.Opened(Status(), ConnectionDirection.Inbound, _connectedAt));
        foreach (var problem in _transport.KeepAlive.Problems)
            ConnectionLog.KeepAliveProblem(_services.Log, Id, problem);
        _self = Self;
        _transport.Start(Self);
        Invoke(null);
    }

    /// <summary>Takes every frame the transport has queued, in order, until one closes the connection.</summary>
    private void TakeFrames()
    {
        var inbound = _transport.Inbound;
        inbound.BeginTaking();
        while (_closeReason is null && inbound.TryTake(out var next))
            OnFrame(next.Frame, next.WireBytes);
    }

    /// <param name="frame">The frame as decoded.</param>
    /// <param name="wireBytes">Its size on the wire, newline included.</param>
    private void OnFrame(DecodedFrame frame, int wireBytes)
    {
        _bytesIn += wireBytes;
        _services.Metrics.Traffic.Received(wireBytes);
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
                // Not needed again (OnFirstFrameDue returns on _sawValidFrame): its 72 B go once the queue drops the stale entry.
                _firstFrame = null;
                Context.Parent.Tell(ConnectionSupervisor.FirstFrameSeen.Instance, Self);
            }
        }
        // What the peer announced is taken before the frame is counted, so its gap is judged against its own interval.
        int? acceptedInterval = frame.Type == FrameType.Heartbeat && frame.Interval is { } requested ? Negotiate(requested) : null;
        var rttSamples = _deadlines.RttSamples;
        if (_deadlines.OnFrame(frame.Type, frame.Seq, now))
        {
            // The peer spoke again: the kernel goes back to the listener's keep-alive.
            if (_keepAliveNudged)
            {
                _keepAliveNudged = false;
                _transport.RestoreKeepAlive();
            }
            ReportStatus(now, stateChanged: true);
        }
        else if (now >= _statusRefreshAt)
            ReportStatus(now, stateChanged: false);
        ArmDeadline();
        if (_deadlines.RttSamples != rttSamples && _deadlines.RttMs is { } rtt)
        {
            _services.Metrics.HeartbeatRoundTrip(rtt);
            _services.Monitor.Tell(new MonitorEvents.RttSampled(rtt));
        }

        switch (frame.Type)
        {
            case FrameType.Heartbeat:
                _services.Metrics.Traffic.HeartbeatReceived();
                ConnectionLog.Heartbeat(_services.Log, Id, frame.Seq);
                if (_deadlines.HeartbeatsTooFast)
                {
                    _services.Metrics.HeartbeatsTooFast.Add(1);
                    Close(CloseReason.RateLimited,
                        $"heartbeats every {_deadlines.FastHeartbeatGapMs:F0} ms against the {_deadlines.RequestedIntervalMs} ms interval it announced");
                    return;
                }
                // Only a peer that announced an interval is told one: the source document's clients get the response they know.
                SendHeartbeatResponse(now.ToUnixTimeSeconds(), frame.Seq, acceptedInterval);
                break;
            case FrameType.Data:
                OnData(frame.ToFrame());
                break;
            case FrameType.HeartbeatResponse:
                break;
            case FrameType.ErrorNotice:
                ConnectionLog.PeerNotice(_services.Log, Id, frame.Data);
                break;
        }
    }

    /// <summary>The peer announced its heartbeat interval: accepted or clamped (logged once per announcement), and the deadlines re-armed by the caller.</summary>
    private int Negotiate(int requested)
    {
        var changed = _deadlines.Negotiated?.RequestedMs != requested;
        var accepted = _deadlines.Negotiate(requested);
        if (changed)
            ConnectionLog.IntervalNegotiated(_services.Log, Id, requested, accepted, _deadlines.Timeout.TotalMilliseconds);
        return accepted;
    }

    /// <summary>
    /// Takes a token for this frame; the detail of the rate-limited close when there was none. Heartbeat
    /// traffic is always limited (a real peer sends one heartbeat an interval); data frames only when
    /// <c>max-data-frames-per-second</c> is set, since their rate is the application's business.
    /// </summary>
    private string? RateLimitExceeded(FrameType type, DateTimeOffset now)
    {
        var limits = _listener.Limits;
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
        if (!_firstFramePostponed && Max(now - _firstFrameDueAt, _firstFrame!.ProcessLateness) >= _listener.Heartbeat.StarvationThreshold)
        {
            _firstFramePostponed = true;
            _firstFrameDueAt = now + _listener.Heartbeat.StarvationThreshold;
            _firstFrame.Set(_firstFrameDueAt);
            return;
        }
        // The deadline counts from when the transport could carry a frame: a TLS handshake that a busy server
        // (or a slow link) stretched is bounded by tcp.tls.handshake-timeout, and the peer then gets the whole
        // first-frame time. (The transport's clock is the wall clock; only TLS answers anything but MaxValue.)
        var firstFrame = _listener.Limits.FirstFrameTimeout!.Value;
        var ready = _transport.ReadyFor;
        if (ready is null || ready < firstFrame)
        {
            _firstFrameDueAt = now + (firstFrame - (ready ?? TimeSpan.Zero));
            _firstFrame!.Set(_firstFrameDueAt);
            return;
        }
        Close(CloseReason.FirstFrameTimeout, $"no complete frame within {firstFrame.ToHocon()} of {(ready == TimeSpan.MaxValue ? "connecting" : "the TLS handshake's end")}");
    }

    private void OnDeadline()
    {
        var now = Now;
        if (_readingPaused)
        {
            // This end is not reading (its handler is behind): the peer's frames wait unread, so its silence proves
            // nothing. Judged again once reading resumes, with the pause forgiven (see ResumeReading).
            if (now >= _statusRefreshAt) ReportStatus(now, stateChanged: false);
            _armedDeadline = now + _listener.Heartbeat.Interval;
            _deadline!.Set(_armedDeadline);
            return;
        }
        // A deadline timer that fires far too late means this process stalled (GC, CPU starvation),
        // not that the peer did: frames it sent meanwhile may still sit unread in the socket. A deadline
        // that fell due at the very end of a stall is hardly late itself; the queue's lateness shows it.
        var lateness = Max(now - _armedDeadline, _deadline!.ProcessLateness);
        var stateBefore = _deadlines.State;
        if (lateness >= _listener.Heartbeat.StarvationThreshold)
        {
            _deadlines.ForgiveStall(lateness, now);
            _services.Monitor.Tell(new MonitorEvents.StallForgiven(Id, lateness));
        }
        switch (_deadlines.Check(now))
        {
            case DeadlineVerdict.TimedOut:
            {
                var verdict = SilenceClassifier.Classify(_transport.ReadTcpInfo());
                _cause = verdict.Cause;
                // "no valid frame for N ms" stays first: operators' tools and the tests read it.
                Close(CloseReason.HeartbeatTimeout, $"no valid frame for {(now - _deadlines.LastLivenessAt).TotalMilliseconds:F0} ms; {verdict.DetailSuffix}");
                return;
            }
            case DeadlineVerdict.MissedHeartbeatSendPing:
                _services.Metrics.HeartbeatsMissed.Add(1);
                _services.Monitor.Tell(new MonitorEvents.HeartbeatMissed(Listener, Id));
                // Judged before the ping goes out: the cause is about the silence so far, not a ping a moment old.
                JudgeSilence(now);
                SendNow(_deadlines.NextPing(now));
                break;
            case DeadlineVerdict.MissedHeartbeat:
                _services.Metrics.HeartbeatsMissed.Add(1);
                _services.Monitor.Tell(new MonitorEvents.HeartbeatMissed(Listener, Id));
                JudgeSilence(now);
                break;
            case DeadlineVerdict.Nothing:
                // Told early (a frame raced the queue's check), or a tick without heartbeat deadlines:
                // nothing changed, so the registry hears only when its refresh is due.
                if (_deadlines.State != stateBefore) ReportStatus(now, stateChanged: true);
                else if (now >= _statusRefreshAt) ReportStatus(now, stateChanged: false);
                ArmDeadline();
                return;
        }
        ReportStatus(now, _deadlines.State != stateBefore);
        ArmDeadline();
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    /// <summary>
    /// A missed interval: reads the kernel's view of the socket for the suspect's cause, and, the first time, nudges its
    /// keep-alive so that the kernel probes the peer while the heartbeat timeout runs (with the default server-ping off
    /// nothing else would be in flight, and the close could only say <c>silent</c>). A probe's ACK proves the peer's
    /// stack alive; probes unanswered prove the path dead. Probes are TCP segments without data, which every peer's
    /// stack answers and no application sees. Not nudged: a listener with keep-alive off (the operator chose no
    /// probes), or with TCP_USER_TIMEOUT, which the kernel applies to unanswered probes too and would close the
    /// connection (keepalive-failed) before heartbeat.timeout; nor when the configured keep-alive already probes this often.
    /// </summary>
    private void JudgeSilence(DateTimeOffset now)
    {
        _cause = SilenceClassifier.Classify(_transport.ReadTcpInfo()).Cause;
        if (_keepAliveNudged) return;
        var keepAlive = _transport.KeepAlive;
        if (!keepAlive.Enabled || keepAlive.UserTimeoutMs is not null) return;
        // Enough probes at the nudged pace to outlast the heartbeat timeout (the kernel gives up after TCP_KEEPCNT
        // unanswered ones, and that close must stay heartbeat-timeout's); the kernel takes at most 127.
        var remaining = _deadlines.Timeout - (now - _deadlines.LastLivenessAt);
        var every = Math.Max(NudgedProbeSeconds, (int)Math.Ceiling(remaining.TotalSeconds / (MaxKeepAliveProbes - 2)));
        if (keepAlive.IdleSeconds is { } idle && idle <= every) return;
        var probes = Math.Clamp((int)Math.Ceiling(remaining.TotalSeconds / every) + 2, keepAlive.Probes ?? 1, MaxKeepAliveProbes);
        _keepAliveNudged = _transport.NudgeKeepAlive(every, probes);
    }

    /// <summary>The nudged keep-alive's idle and interval: the kernel's smallest (whole seconds).</summary>
    private const int NudgedProbeSeconds = 1;

    /// <summary>TCP_MAX_KEEPCNT.</summary>
    private const int MaxKeepAliveProbes = 127;

    /// <summary>A move between active and suspect is a lifecycle event; fresher counters are for the registry's table alone.</summary>
    private void ReportStatus(DateTimeOffset now, bool stateChanged)
    {
        if (stateChanged) Publish(new ConnectionLifecycle.StateChanged(Status(), ConnectionDirection.Inbound, now));
        else _services.Registry.Tell(new RegistryProtocol.ConnectionUpdated(Status()));
        _statusRefreshAt = now + _services.StatusRefresh;
    }

    /// <summary>The one place a connection's lifecycle goes out: to every subscriber, and to the application's hub readers.</summary>
    private void Publish(IConnectionLifecycleEvent lifecycle)
    {
        LifecyclePublisher.Publish(Context.System, _services.Metrics, _services.Log, lifecycle);
        if (_services.Hub is { Observed: true } hub) hub.Observe(lifecycle);
    }

    /// <summary>Publishes the next deadline; after a frame this only moves it later, without a lock or a message.</summary>
    private void ArmDeadline()
    {
        if (_closeReason is not null) return;
        // Without heartbeat deadlines (keep-alive only, or a WebSocket's ping/pong) the same timer still
        // ticks once an interval, so the registry's view of the connection (bytes, last frame) stays fresh.
        var deadline = _deadlines.NextDeadline() ?? Now + _listener.Heartbeat.Interval;
        _armedDeadline = deadline;
        _deadline!.Set(deadline);
    }

    private void OnWriteFinished(TransportEvents.WriteFinished finished)
    {
        var accepted = _transport.OnWriteFinished(finished);
        MeterBytesOut();
        if (!accepted)
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
        _closing = true;
        _deadline?.Cancel();
        _firstFrame?.Cancel();
        _handlerDeadline?.Cancel();
        // A closing connection holds no slot: the peer that caused it may already be reconnecting.
        Context.Parent.Tell(ConnectionSupervisor.SlotReleased.Instance, Self);
        StopHandling();
        var announced = reason.IsAnnouncedToPeer();
        if (announced)
        {
            // Notice, then FIN, then wait for the peer's FIN: closing at once with unread input would
            // send an RST, and an RST can destroy the notice before the peer reads it. The notice goes out
            // before the close is published, so the close's final counters (and the meter's bytes out) include it.
            _transport.Close(reason, detail);
            MeterBytesOut();
        }
        ReportClose();
        if (!announced)
        {
            Context.Stop(Self);
            return;
        }
        _linger = _timers.Register(Self, LingerExpired.Instance);
        _linger.Set(_closedAt + _listener.CloseLinger);
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
            // Input after the close decision proves nothing and changes nothing; the transport may read on (drain).
            case TransportEvents.FramesReady:
                Discard(_transport.Inbound);
                break;
            case TransportEvents.WriteFinished finished:
                OnWriteFinished(finished);
                break;
            case ConnectionCommands.GetStatus or ConnectionCommands.GetTcpInfo:
                AnswerQuery(message);
                break;
            case TransportEvents.ITransportEvent:
            case ConnectionCommands.CloseConnection:
            // Pushed by the application through the hub after the close was decided: nothing more goes to the peer.
            case Push:
            case CloseWith:
            case DeadlineDue:
            case FirstFrameDue:
            case ConnectionSupervisor.EvictUnproven:
            case HandlerCompleted or HandlerTimedOut or Push or CloseWith:
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
        _stopped = true;
        _closing = true;
        _deadline?.Cancel();
        _firstFrame?.Cancel();
        _linger?.Cancel();
        _handlerDeadline?.Cancel();
        try
        {
            if (_closeReason is null)
            {
                // Stopped by the supervisor after a failure: tell the peer why, then let go of the socket.
                _closeReason = CloseReason.InternalError;
                _closeDetail = "the server failed while handling this connection";
                _closedAt = Now;
                try
                {
                    _transport.Close(CloseReason.InternalError, _closeDetail);
                    MeterBytesOut();
                }
                finally
                {
                    ReportClose();
                }
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
                MeterBytesOut();
            }
            finally
            {
                // The table keeps the connection (as closing) until its socket is released.
                Publish(new ConnectionLifecycle.Released(Id, ConnectionDirection.Inbound, Now));
            }
        }
    }

    /// <summary>
    /// The close is published when it is decided, not when the linger for the peer's FIN ends: from then on the
    /// connection is closed everywhere at once (DESIGN §3, "One lifecycle"), and alerts and log lines carry the moment
    /// the peer was judged. The caller writes the peer's notice first, so the close's final counters include it.
    /// </summary>
    private void ReportClose()
    {
        var reason = _closeReason!.Value;
        Publish(new ConnectionLifecycle.Closed(Status(), ConnectionDirection.Inbound, reason, _closeDetail ?? "", _closedAt)
        {
            Cause = reason == CloseReason.HeartbeatTimeout ? _cause : null,
        });
        NotifyHandlerClosed(reason, _closeDetail ?? "");
    }

    // ---- the application's handler ----

    /// <summary>A data frame: to the handler now if it is free, else it waits its turn (and may pause reading).</summary>
    private void OnData(Frame frame)
    {
        if (_handlerBusy)
        {
            (_waitingData ??= new Queue<Frame>()).Enqueue(frame);
            ApplyBackpressure();
            return;
        }
        Invoke(frame);
        if (_handlerBusy) ApplyBackpressure();
    }

    /// <summary>
    /// Calls the handler for one data frame (null: <see cref="ConnectionHandler.OnConnectedAsync"/>). A call that
    /// completes synchronously is done here, without an allocation of ours; one that does not keeps the handler busy
    /// until its completion comes back as a message (never run on this actor's state from the task's thread).
    /// </summary>
    private void Invoke(Frame? frame)
    {
        ValueTask call;
        _handlerThread = Environment.CurrentManagedThreadId;
        _busyWithFrame = frame is not null;
        try
        {
            call = frame is null ? _services.Handler.OnConnectedAsync(this) : _services.Handler.OnDataAsync(this, frame);
        }
        catch (Exception e)
        {
            HandlerFailed(e);
            return;
        }
        finally
        {
            _handlerThread = 0;
        }
        if (call.IsCompleted)
        {
            try
            {
                call.GetAwaiter().GetResult();
            }
            catch (Exception e)
            {
                HandlerFailed(e);
            }
            return;
        }
        _handlerBusy = true;
        var number = ++_handlerCalls;
        if (_services.HandlerSettings.Timeout is { } timeout && _closeReason is null)
        {
            _handlerDeadline ??= _timers.Register(Self, HandlerTimedOut.Instance);
            _handlerDueAt = Now + timeout;
            _handlerDeadline.Set(_handlerDueAt);
        }
        _ = AwaitHandlerAsync(call, number);
    }

    /// <summary>Off the actor: waits for the handler's task and tells the actor; reads only immutable and volatile fields.</summary>
    private async Task AwaitHandlerAsync(ValueTask call, long number)
    {
        Exception? error = null;
        try
        {
            await call.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            error = e;
        }
        if (!_stopped) _self.Tell(new HandlerCompleted(number, error));
    }

    private void OnHandlerCompleted(HandlerCompleted completed)
    {
        if (!_handlerBusy || completed.Call != _handlerCalls) return;
        _handlerBusy = false;
        _handlerDeadline?.Cancel();
        if (completed.Error is not null)
        {
            HandlerFailed(completed.Error);
            return;
        }
        while (!_handlerBusy && _closeReason is null && _waitingData is { Count: > 0 } waiting)
            Invoke(waiting.Dequeue());
        ApplyBackpressure();
    }

    private void OnHandlerTimedOut()
    {
        if (!_handlerBusy || Now < _handlerDueAt) return;
        Close(CloseReason.InternalError, $"the connection handler did not complete within handler.timeout ({_services.HandlerSettings.Timeout!.Value.ToHocon()})");
    }

    /// <summary>The handler threw or its task failed: that connection closes with internal-error (the peer is not told why in detail).</summary>
    private void HandlerFailed(Exception e)
    {
        ConnectionLog.HandlerFailed(_services.Log, e, Id);
        Close(CloseReason.InternalError, "the connection handler failed");
    }

    /// <summary>Data frames read and not yet handled: the one the handler is busy with and those waiting.</summary>
    private int FramesInFlight => ((_handlerBusy || _handlerThread != 0) && _busyWithFrame ? 1 : 0) + (_waitingData?.Count ?? 0);

    /// <summary>Stops reading at <c>max-frames-in-flight</c>; reads again once the handler is down to half of it.</summary>
    private void ApplyBackpressure()
    {
        var inFlight = FramesInFlight;
        if (!_readingPaused)
        {
            if (inFlight < _services.HandlerSettings.MaxFramesInFlight || _closeReason is not null) return;
            _readingPaused = true;
            _timesPaused++;
            _pausedAt = Now;
            _transport.Inbound.PauseReading();
        }
        else if (inFlight <= _services.HandlerSettings.MaxFramesInFlight / 2)
        {
            ResumeReading();
        }
    }

    private void ResumeReading()
    {
        _readingPaused = false;
        _transport.Inbound.ResumeReading();
        if (_closeReason is not null) return;
        // The pause was this end's: the peer's silence during it is not held against it.
        var now = Now;
        _deadlines.ForgiveStall(now - _pausedAt, now);
        ArmDeadline();
    }

    /// <summary>Closing: frames waiting for the handler are dropped, and reading goes on so the peer's FIN is seen.</summary>
    private void StopHandling()
    {
        _waitingData?.Clear();
        if (_readingPaused) ResumeReading();
        Discard(_transport.Inbound);
    }

    private static void Discard(IInboundFrames inbound)
    {
        inbound.BeginTaking();
        while (inbound.TryTake(out _)) { }
    }

    private void NotifyHandlerClosed(CloseReason reason, string detail)
    {
        ValueTask call;
        try
        {
            call = _services.Handler.OnClosedAsync(this, reason, detail);
        }
        catch (Exception e)
        {
            ConnectionLog.HandlerFailed(_services.Log, e, Id);
            return;
        }
        if (call.IsCompletedSuccessfully) call.GetAwaiter().GetResult();
        else _ = ObserveClosedAsync(call);
    }

    private async Task ObserveClosedAsync(ValueTask call)
    {
        try
        {
            await call.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            ConnectionLog.HandlerFailed(_services.Log, e, Id);
        }
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
        _transport.KeepAlive)
    {
        Handler = new HandlerFlow(FramesInFlight, _services.HandlerSettings.MaxFramesInFlight, _readingPaused, _timesPaused),
        Phi = _deadlines.PhiStatus(Now),
        Negotiated = _deadlines.Negotiated,
        // While suspect, and on the row of a connection closed for silence.
        Cause = _closeReason switch
        {
            null => _deadlines.State == ConnectionState.Suspect ? _cause : null,
            CloseReason.HeartbeatTimeout => _cause,
            _ => null,
        },
    };
}
