using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Supervisor.Configuration;
using Supervisor.Connections;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Transport;
using static Supervisor.Messages.Protocol.ClientProtocol;

namespace Supervisor.Client;

/// <summary>
/// One outbound heartbeat connection that heals itself (issue 5): connects, sends a heartbeat every
/// interval (with a <c>seq</c> unless told not to), measures the round trip, answers the server's pings,
/// and treats a silent server (<c>timeout</c>), a close, a reset or a protocol error as a disconnect with
/// exactly one reason. It then reconnects after a jittered exponential backoff (<see cref="Backoff"/>), or, when
/// the server's last notice said when to come back (<c>reconnect-after</c>, a server shutting down), after that.
/// Data sent while disconnected waits in a bounded <see cref="OutboundBuffer"/>. The socket I/O is the
/// server's own <see cref="SocketTransport"/>; each connection's transport events reach this actor through
/// a child relay that tags them with the connection's generation, so a stale socket can never be taken
/// for the current one. The connection is in the registry with protocol <c>tcp-out</c>.
/// <para>
/// Given several endpoints of one service (<c>endpoints</c>, a cluster's nodes), the client ranks them by
/// <see cref="EndpointRanking"/>: the first is its home. A <c>server-shutdown</c> notice with a hint sends it at the
/// hinted moment to the most preferred other endpoint (never back to the one going away); a refused connect or a lost
/// connection moves it to the next endpoint round the ranking after its backoff. Connected elsewhere than home, it
/// tries home every <c>home-return-interval</c> (the first try one to two intervals after it left, so a crowd's tries
/// are spread evenly) and, when home answers, moves there and closes the other connection: that is how the nodes'
/// totals come back to even after a node's restart (DESIGN §8, "Clients of a cluster").
/// </para>
/// </summary>
internal sealed class HeartbeatClient : ReceiveActor, IWithTimers
{
    public const string Protocol = "tcp-out";

    /// <param name="name">The client's name: in its events, the registry (<c>listener</c>), logs and metrics.</param>
    /// <param name="subscribers">Subscribed from the start, so they miss no event (a pool subscribes this way).</param>
    /// <param name="random">Source of the backoff jitter.</param>
    /// <param name="homeKey">What ranks the endpoints for this client (<see cref="EndpointRanking"/>); default: its name, host and process.</param>
    public static Props Props(string name, ClientSettings settings, ClientServices services,
        IReadOnlyList<IActorRef>? subscribers = null, Random? random = null, string? homeKey = null)
    {
        if (settings.AllEndpoints.Count == 0)
            throw new ArgumentException($"client {name}: the settings name no endpoint", nameof(settings));
        IReadOnlyList<IActorRef> initial = subscribers ?? [];
        var jitter = random ?? Random.Shared;
        var ranking = new EndpointRanking(settings.AllEndpoints, homeKey ?? EndpointRanking.DefaultKey(name));
        return Akka.Actor.Props.Create(() => new HeartbeatClient(name, settings, services, initial, jitter, ranking));
    }

    private sealed class ConnectDue
    {
        public static readonly ConnectDue Instance = new();
    }

    private sealed record ConnectSucceeded(int Generation);

    private sealed record ConnectFailed(int Generation, string Error);

    /// <summary>A transport event of connection number <c>Generation</c>.</summary>
    private sealed record Linked(int Generation, TransportEvents.ITransportEvent Event);

    private sealed class DeadlineDue : INotInfluenceReceiveTimeout
    {
        public static readonly DeadlineDue Instance = new();
    }

    private sealed class StableDue : INotInfluenceReceiveTimeout
    {
        public static readonly StableDue Instance = new();
    }

    private sealed class HomeProbeDue : INotInfluenceReceiveTimeout
    {
        public static readonly HomeProbeDue Instance = new();
    }

    private sealed record HomeProbeSucceeded(int Probe);

    private sealed record HomeProbeFailed(int Probe);

    /// <summary>Forwards one connection's transport events to the client, tagged with the connection's generation.</summary>
    private sealed class Relay : ReceiveActor
    {
        public Relay(int generation, IActorRef client) =>
            Receive<TransportEvents.ITransportEvent>(e => client.Tell(new Linked(generation, e)));
    }

    private const string ReconnectTimer = "reconnect";
    private const string DeadlineTimer = "deadline";
    private const string StableTimer = "stable";
    private const string HomeProbeTimer = "home-probe";
    private const int MaxOutstanding = 64;

    private readonly string _name;
    private readonly ClientSettings _settings;
    private readonly ClientServices _services;
    private readonly EndpointRanking _ranking;
    private readonly Random _random;
    private readonly Backoff _backoff;
    private readonly OutboundBuffer _buffer;
    private readonly IReadOnlyList<IActorRef> _initialSubscribers;
    private readonly HashSet<IActorRef> _subscribers = [];
    private readonly Queue<(long? Seq, long SentAt)> _outstanding = new();
    private readonly KeyValuePair<string, object?> _clientTag;

    private ClientState _state = ClientState.Connecting;
    private int _generation;
    /// <summary>Which endpoint of <see cref="_ranking"/> the client is connected to, or will try next; 0 is home.</summary>
    private int _current;
    private int _probeId;
    private Socket? _probe;
    private CancellationTokenSource? _probeTimeout;
    private Socket? _connecting;
    private CancellationTokenSource? _connectTimeout;
    private IConnectionTransport? _transport;
    private IActorRef? _relay;
    private string _connectionId = "";
    private string? _remote, _local;
    private DateTimeOffset? _connectedAt;
    /// <summary>
    /// When to heartbeat, when the server is suspect and when it is dead: the server's own rules
    /// (<see cref="HeartbeatDeadlines.ForOwnHeartbeats"/>), one per connection; the last one stays for
    /// <see cref="Status"/> while the client reconnects.
    /// </summary>
    private HeartbeatDeadlines? _deadlines;
    private bool _overflowLogged;
    private long _nextSeq;
    private double? _rttMs;
    private long _bytesIn, _responses, _connects, _dataSent, _framesReceived;
    private string? _serverNotice;

    public ITimerScheduler Timers { get; set; } = null!;

    public HeartbeatClient(string name, ClientSettings settings, ClientServices services, IReadOnlyList<IActorRef> subscribers, Random random,
        EndpointRanking ranking)
    {
        _name = name;
        _settings = settings;
        _services = services;
        _ranking = ranking;
        _random = random;
        _backoff = new Backoff(settings.Reconnect, random);
        _buffer = new OutboundBuffer(settings.BufferSize, settings.Overflow);
        _initialSubscribers = subscribers;
        _clientTag = new KeyValuePair<string, object?>("client", name);
        Disconnected();
    }

    private DateTimeOffset Now => Context.System.Scheduler.Now;

    /// <summary>The endpoint connected to, or the one the next connect goes to.</summary>
    private HostPort Current => _ranking.Ranked[_current];

    protected override void PreStart()
    {
        foreach (var subscriber in _initialSubscribers)
        {
            _subscribers.Add(subscriber);
            Context.Watch(subscriber);
            subscriber.Tell(new StateChanged(_name, _state));
        }
        StartConnect();
    }

    protected override void PostStop()
    {
        _connectTimeout?.Cancel();
        _connectTimeout?.Dispose();
        _connecting?.Dispose();
        CancelHomeProbe();
        if (_transport is not null)
            LetGo(CloseReason.AdminClosed, "the client was stopped");
    }

    // ---- behaviours ----

    /// <summary>Connecting, or waiting out a backoff delay.</summary>
    private void Disconnected()
    {
        Receive<ConnectDue>(_ => StartConnect());
        Receive<ConnectSucceeded>(OnConnectSucceeded);
        Receive<ConnectFailed>(OnConnectFailed);
        // Events of a transport already let go of, and timers of a connection already gone.
        Receive<Linked>(_ => { });
        Receive<DeadlineDue>(_ => { });
        Receive<StableDue>(_ => { });
        Receive<HomeProbeDue>(_ => { });
        Receive<HomeProbeSucceeded>(_ => { });
        Receive<HomeProbeFailed>(_ => { });
        Common();
    }

    private void Connected()
    {
        Receive<Linked>(OnLinked);
        Receive<DeadlineDue>(_ => OnDeadline());
        Receive<StableDue>(_ => _backoff.Reset());
        Receive<ConnectDue>(_ => { });
        Receive<HomeProbeDue>(_ => StartHomeProbe());
        Receive<HomeProbeSucceeded>(OnHomeProbeSucceeded);
        Receive<HomeProbeFailed>(OnHomeProbeFailed);
        Common();
    }

    private void Common()
    {
        Receive<Send>(OnSend);
        Receive<Subscribe>(subscribe =>
        {
            if (_subscribers.Add(subscribe.Subscriber)) Context.Watch(subscribe.Subscriber);
            subscribe.Subscriber.Tell(new StateChanged(_name, _state));
        });
        Receive<Unsubscribe>(unsubscribe =>
        {
            if (_subscribers.Remove(unsubscribe.Subscriber)) Context.Unwatch(unsubscribe.Subscriber);
        });
        Receive<Terminated>(terminated => _subscribers.Remove(terminated.ActorRef));
        Receive<GetStatus>(_ => Sender.Tell(Status()));
    }

    // ---- connecting ----

    private void StartConnect()
    {
        var generation = ++_generation;
        SetState(ClientState.Connecting);
        var target = Current.ToEndPoint();
        Socket socket;
        try
        {
            socket = NewSocket(target);
        }
        catch (SocketException e)
        {
            // Out of descriptors, say: that is a failed attempt like any other.
            ScheduleReconnect($"cannot open a socket: {e.Message}");
            return;
        }
        _connecting = socket;
        _connectTimeout = new CancellationTokenSource(_settings.ConnectTimeout);
        var timeout = _settings.ConnectTimeout;
        socket.ConnectAsync(target, _connectTimeout.Token).AsTask().PipeTo(Self,
            success: () => new ConnectSucceeded(generation),
            failure: e => new ConnectFailed(generation, DescribeConnectError(e, timeout)));
    }

    private static Socket NewSocket(EndPoint target) => target is IPEndPoint ip
        ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
        : new Socket(SocketType.Stream, ProtocolType.Tcp);

    private static string DescribeConnectError(Exception e, TimeSpan timeout) => e.GetBaseException() switch
    {
        OperationCanceledException => $"connect timed out after {timeout.ToHocon()}",
        SocketException { SocketErrorCode: SocketError.ConnectionRefused } => "connection refused",
        SocketException { SocketErrorCode: SocketError.TimedOut } => "connect timed out",
        SocketException { SocketErrorCode: SocketError.HostNotFound or SocketError.NoData } => "host not found",
        SocketException { SocketErrorCode: SocketError.HostUnreachable or SocketError.NetworkUnreachable } s => $"unreachable ({s.SocketErrorCode})",
        var other => other.Message,
    };

    private void OnConnectFailed(ConnectFailed failed)
    {
        if (failed.Generation != _generation) return;
        ReleaseConnectAttempt();
        var refused = Current;
        _current = _ranking.Next(_current);
        ScheduleReconnect(_ranking.Count > 1 ? $"{refused}: {failed.Error}" : failed.Error);
    }

    private void ReleaseConnectAttempt()
    {
        _connecting?.Dispose();
        _connecting = null;
        _connectTimeout?.Dispose();
        _connectTimeout = null;
    }

    private void OnConnectSucceeded(ConnectSucceeded succeeded)
    {
        if (succeeded.Generation != _generation || _connecting is null) return;
        var socket = _connecting;
        _connecting = null;
        _connectTimeout?.Dispose();
        _connectTimeout = null;
        try
        {
            _local = Show(socket.LocalEndPoint);
            _remote = Show(socket.RemoteEndPoint);
            var keepAlive = SocketKeepAlive.Apply(socket, _settings.KeepAlive);
            _transport = _settings.Tls is { } tls
                ? new TlsTransport(socket, tls.Options(Current.Host), Protocol, _settings.MaxFrameLength, _settings.MaxPendingWrite, keepAlive) { Codec = _settings.Codec }
                : new SocketTransport(socket, _settings.MaxFrameLength, _settings.MaxPendingWrite, keepAlive) { Codec = _settings.Codec };
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            socket.Dispose();
            _current = _ranking.Next(_current);
            ScheduleReconnect($"the connection vanished at once: {e.Message}");
            return;
        }
        foreach (var problem in _transport.KeepAlive.Problems)
            ClientLog.KeepAliveProblem(_services.Log, _name, problem);

        var generation = _generation;
        var self = Self;
        _relay = Context.ActorOf(Akka.Actor.Props.Create(() => new Relay(generation, self)), $"link-{generation}");
        var now = Now;
        _connectionId = $"{_name}.{generation}";
        _connects++;
        _connectedAt = now;
        _deadlines = HeartbeatDeadlines.ForOwnHeartbeats(_settings.HeartbeatInterval, _settings.HeartbeatTimeout, now);
        _outstanding.Clear();
        _serverNotice = null;
        _bytesIn = 0;
        _rttMs = null;
        _overflowLogged = false;
        _state = ClientState.Active;
        _transport.Start(_relay);
        Become(Connected);

        PublishLifecycle(new ConnectionLifecycle.Opened(RegistryStatus(), ConnectionDirection.Outbound, now));
        ClientLog.Connected(_services.Log, _name, _remote, _local, _backoff.Attempt);
        Publish(new ClientProtocol.Connected(_name, _remote, _local, _backoff.Attempt));

        Timers.StartSingleTimer(StableTimer, StableDue.Instance, _settings.Reconnect.ResetAfter);
        // Away from home: the first try one to two intervals from now, so the tries of a crowd that left home together
        // are spread evenly over an interval by the time home is back, and then one every interval.
        if (_current != 0 && _settings.HomeReturnInterval is { } homeReturn)
            Timers.StartSingleTimer(HomeProbeTimer, HomeProbeDue.Instance, homeReturn * (1 + _random.NextDouble()));
        // The first heartbeat is due at once; this sends it and arms the deadline timer.
        OnDeadline();
        FlushBuffer();
    }

    /// <param name="hinted">
    /// When the server asked this client to come back (its notice's <c>reconnect-after</c>): waited instead of the
    /// backoff, and not counted as a failed attempt (the server said when it can take the client again; a connect
    /// that then fails backs off as usual). Held to <c>max-backoff</c>, so no server keeps a client away longer
    /// than its own longest wait.
    /// </param>
    private void ScheduleReconnect(string cause, TimeSpan? hinted = null)
    {
        var delay = hinted is { } asked ? (asked < _settings.Reconnect.Max ? asked : _settings.Reconnect.Max) : _backoff.Next();
        var attempt = _backoff.Attempt;
        SetState(ClientState.Reconnecting);
        _services.Metrics.ClientReconnectDelay(delay, _clientTag);
        var next = Current.ToString();
        if (hinted is not null)
            ClientLog.ReconnectingAsHinted(_services.Log, _name, next, delay.TotalMilliseconds, $": {cause}");
        else
            ClientLog.Reconnecting(_services.Log, _name, next, delay.TotalMilliseconds, attempt,
                Backoff.Ceiling(_settings.Reconnect, attempt).TotalMilliseconds, $": {cause}");
        Publish(new Reconnecting(_name, attempt, delay, cause) { AsServerAsked = hinted is not null, Endpoint = next });
        Timers.StartSingleTimer(ReconnectTimer, ConnectDue.Instance, delay);
        Become(Disconnected);
    }

    // ---- connected ----

    private void OnLinked(Linked linked)
    {
        if (linked.Generation != _generation || _transport is null) return;
        switch (linked.Event)
        {
            case TransportEvents.FramesReady:
                // The transport queued decoded frames: take them all, stopping if one of them ends the connection.
                var transport = _transport;
                var inbound = transport.Inbound;
                inbound.BeginTaking();
                while (ReferenceEquals(_transport, transport) && inbound.TryTake(out var next))
                    OnFrame(next.Frame.ToFrame(), next.WireBytes);
                break;
            case TransportEvents.FrameRejected rejected:
                // The server is told why, as the server tells its peers; then the client lets go at once.
                _transport.Close(rejected.Reason, rejected.Error);
                Disconnect(rejected.Reason, $"the server sent a bad frame: {rejected.Error}");
                break;
            case TransportEvents.InputEnded ended:
                Disconnect(ended.Reason, _serverNotice is null ? ended.Detail : $"{ended.Detail}; the server said: {_serverNotice}");
                break;
            case TransportEvents.WriteFinished finished:
                if (!_transport.OnWriteFinished(finished))
                    DisconnectForWriteFailure();
                break;
        }
    }

    private void OnFrame(Frame frame, int wireBytes)
    {
        var now = Now;
        _bytesIn += wireBytes;
        // Every valid frame proves the server alive; a suspect connection is active again. No timer work: the
        // armed deadline can only come early now, and then it is re-armed.
        if (_deadlines!.OnFrame(frame, now))
        {
            SetState(ClientState.Active);
            PublishLifecycle(new ConnectionLifecycle.StateChanged(RegistryStatus(), ConnectionDirection.Outbound, now));
        }

        switch (frame.Type)
        {
            case FrameType.Heartbeat:
                if (Write(Frame.HeartbeatResponse(now.ToUnixTimeSeconds(), frame.Seq)))
                    Publish(new ServerPinged(_name, frame.Seq));
                break;
            case FrameType.HeartbeatResponse:
                OnHeartbeatResponse(frame, now);
                break;
            case FrameType.Data:
                _framesReceived++;
                Publish(new FrameReceived(_name, frame));
                break;
            case FrameType.ErrorNotice:
                _framesReceived++;
                _serverNotice = frame.Data;
                ClientLog.ServerNotice(_services.Log, _name, frame.Data);
                Publish(new FrameReceived(_name, frame));
                break;
        }
    }

    /// <summary>
    /// A response echoing a seq answers that heartbeat (older unanswered ones are given up); one without a
    /// seq, as the source document's server sends, answers the oldest heartbeat still outstanding.
    /// </summary>
    private void OnHeartbeatResponse(Frame frame, DateTimeOffset now)
    {
        _responses++;
        if (frame.Interval is { } accepted && accepted != _acceptedIntervalMs)
        {
            // Logged once per answer that changes: the server bounds the intervals it accepts (heartbeat.negotiation).
            _acceptedIntervalMs = accepted;
            if (accepted != AnnouncedIntervalMs) ClientLog.IntervalClamped(_services.Log, _name, AnnouncedIntervalMs, accepted);
        }
        long? sentAt = null;
        if (frame.Seq is { } seq)
        {
            if (_outstanding.Any(o => o.Seq == seq))
            {
                while (_outstanding.TryDequeue(out var outstanding))
                {
                    if (outstanding.Seq != seq) continue;
                    sentAt = outstanding.SentAt;
                    break;
                }
            }
        }
        else if (_outstanding.TryDequeue(out var oldest))
        {
            sentAt = oldest.SentAt;
        }

        double? rtt = sentAt is { } start ? Stopwatch.GetElapsedTime(start).TotalMilliseconds : null;
        if (rtt is { } ms)
        {
            _rttMs = ms;
            _services.Metrics.ClientRoundTrip(ms, _clientTag);
            _services.Registry.Tell(new RegistryProtocol.ConnectionUpdated(RegistryStatus()));
        }
        ClientLog.HeartbeatAnswered(_services.Log, _name, frame.Seq, rtt);
        Publish(new HeartbeatAnswered(_name, frame.Seq, rtt));
    }

    /// <summary>
    /// The one deadline timer: asks the connection's <see cref="HeartbeatDeadlines"/> what is due (a heartbeat
    /// to send, a missed answer, the timeout) and re-arms for the next thing it will have to decide.
    /// </summary>
    private void OnDeadline()
    {
        if (_transport is null) return;
        var now = Now;
        var deadlines = _deadlines!;
        var stateBefore = deadlines.State;
        var verdict = deadlines.Check(now);
        switch (verdict)
        {
            case DeadlineVerdict.TimedOut:
                Disconnect(CloseReason.HeartbeatTimeout, $"no frame from the server for {(now - deadlines.LastLivenessAt).TotalMilliseconds:F0} ms");
                return;
            case DeadlineVerdict.MissedHeartbeat or DeadlineVerdict.MissedHeartbeatSendPing:
                SetState(ClientState.Suspect);
                if (stateBefore != ConnectionState.Suspect)
                {
                    ClientLog.Suspect(_services.Log, _name, deadlines.MissedHeartbeats);
                    PublishLifecycle(new ConnectionLifecycle.StateChanged(RegistryStatus(), ConnectionDirection.Outbound, now));
                }
                else
                {
                    _services.Registry.Tell(new RegistryProtocol.ConnectionUpdated(RegistryStatus()));
                }
                break;
        }
        if (verdict is (DeadlineVerdict.MissedHeartbeatSendPing or DeadlineVerdict.SendHeartbeat) && !SendHeartbeat(now)) return;
        var next = deadlines.NextDeadline() ?? now + _settings.HeartbeatInterval;
        Timers.StartSingleTimer(DeadlineTimer, DeadlineDue.Instance, next > now ? next - now : TimeSpan.Zero);
    }

    /// <summary>The heartbeat interval this client announces (ms, within what a frame can carry).</summary>
    private int AnnouncedIntervalMs => (int)Math.Clamp(_settings.HeartbeatInterval.TotalMilliseconds, 1, int.MaxValue);

    /// <summary>The interval the server last said it accepted (ms); 0 before it said any.</summary>
    private int _acceptedIntervalMs;

    /// <summary>Sends a heartbeat (its seq and send time kept for the round trip); false if the write ended the connection.</summary>
    private bool SendHeartbeat(DateTimeOffset now)
    {
        long? seq = _settings.SendSeq ? ++_nextSeq : null;
        while (_outstanding.Count >= MaxOutstanding) _outstanding.Dequeue();
        _outstanding.Enqueue((seq, Stopwatch.GetTimestamp()));
        var heartbeat = new Frame(FrameType.Heartbeat, now.ToUnixTimeSeconds(), null, seq)
        {
            Interval = _settings.AnnounceInterval ? AnnouncedIntervalMs : null,
        };
        if (!Write(heartbeat)) return false;
        Publish(new HeartbeatSent(_name, seq));
        return true;
    }

    // ---- data ----

    private void OnSend(Send send)
    {
        var frame = new Frame(FrameType.Data, Now.ToUnixTimeSeconds(), send.Data);
        // Frames already waiting go first, so order is kept.
        if (_transport is not null && _buffer.Count == 0 && Write(frame))
        {
            _dataSent++;
            return;
        }
        Buffer(frame, Sender);
    }

    private void Buffer(Frame frame, IActorRef sender)
    {
        switch (_buffer.Offer(frame, out var dropped))
        {
            case OfferOutcome.Buffered:
                return;
            case OfferOutcome.BufferedDroppedOldest:
            case OfferOutcome.DroppedNewest:
                _services.Metrics.ClientFramesDropped.Add(1, _clientTag, new("policy", PolicyName(_buffer.Policy)));
                Publish(new FrameDropped(_name, dropped!.Data ?? "", _buffer.Policy));
                break;
            case OfferOutcome.Rejected:
                _services.Metrics.ClientFramesDropped.Add(1, _clientTag, new("policy", PolicyName(_buffer.Policy)));
                if (!sender.IsNobody())
                    sender.Tell(new SendRejected(_name, frame.Data ?? "", $"buffer full ({_buffer.Capacity} frames) while disconnected"));
                break;
        }
        if (!_overflowLogged)
        {
            _overflowLogged = true;
            ClientLog.Overflow(_services.Log, _name, _buffer.Capacity, PolicyName(_buffer.Policy), _buffer.Dropped + _buffer.Rejected);
        }
    }

    public static string PolicyName(OverflowPolicy policy) => policy switch
    {
        OverflowPolicy.DropOldest => "drop-oldest",
        OverflowPolicy.DropNewest => "drop-newest",
        _ => "fail",
    };

    private void FlushBuffer()
    {
        while (_transport is not null && _buffer.TryPeek(out var frame))
        {
            if (!Write(frame)) return;
            _buffer.RemoveHead();
            _dataSent++;
        }
    }

    /// <summary>Writes one frame; a refused write ends the connection with the transport's reason.</summary>
    private bool Write(Frame frame)
    {
        if (_transport is null) return false;
        if (_transport.Write(frame)) return true;
        DisconnectForWriteFailure();
        return false;
    }

    /// <summary>A refused write ends the connection with the transport's reason: peer-reset for a reset, write-failed only for a server that stopped reading.</summary>
    private void DisconnectForWriteFailure()
    {
        var failure = _transport!.WriteFailure;
        Disconnect(failure.Reason, failure.Detail);
    }

    // ---- disconnecting ----

    private void Disconnect(CloseReason reason, string detail)
    {
        if (_transport is null) return;
        var hint = ReconnectHint();
        LetGo(reason, detail);
        Timers.Cancel(DeadlineTimer);
        Timers.Cancel(StableTimer);
        CancelHomeProbe();
        Publish(new ClientProtocol.Disconnected(_name, reason, detail));
        // A server going away with a hint: to the most preferred other endpoint at the hinted moment; any other
        // end: to the next one round the ranking after the backoff (one endpoint: the same one, as before).
        _current = hint is null ? _ranking.Next(_current) : _ranking.AfterShutdown(_current);
        ScheduleReconnect(reason.NoticeText(detail), hint);
    }

    // ---- going home ----

    /// <summary>Away from home: one connect to home, beside the connection in use (which goes on heartbeating).</summary>
    private void StartHomeProbe()
    {
        if (_transport is null || _current == 0 || _probe is not null) return;
        var probe = ++_probeId;
        var target = _ranking.Ranked[0].ToEndPoint();
        try
        {
            _probe = NewSocket(target);
        }
        catch (SocketException)
        {
            ArmHomeProbe();
            return;
        }
        _probeTimeout = new CancellationTokenSource(_settings.ConnectTimeout);
        _probe.ConnectAsync(target, _probeTimeout.Token).AsTask().PipeTo(Self,
            success: () => new HomeProbeSucceeded(probe),
            failure: _ => new HomeProbeFailed(probe));
    }

    private void ArmHomeProbe()
    {
        if (_settings.HomeReturnInterval is { } interval)
            Timers.StartSingleTimer(HomeProbeTimer, HomeProbeDue.Instance, interval);
    }

    private void OnHomeProbeFailed(HomeProbeFailed failed)
    {
        if (failed.Probe != _probeId || _probe is null) return;
        CancelHomeProbe();
        ArmHomeProbe();
    }

    /// <summary>Home answers: the new connection becomes the client's, and the one away is closed (FIN, as a stop's).</summary>
    private void OnHomeProbeSucceeded(HomeProbeSucceeded succeeded)
    {
        if (succeeded.Probe != _probeId || _probe is null) return;
        var socket = _probe;
        _probe = null;
        _probeTimeout?.Dispose();
        _probeTimeout = null;
        if (_transport is null)
        {
            socket.Dispose();
            return;
        }
        var away = Current.ToString();
        var home = _ranking.Ranked[0].ToString();
        ClientLog.ReturningHome(_services.Log, _name, home, away);
        var detail = $"moving back to its home endpoint {home}";
        LetGo(CloseReason.AdminClosed, detail);
        Timers.Cancel(DeadlineTimer);
        Timers.Cancel(StableTimer);
        Publish(new ClientProtocol.Disconnected(_name, CloseReason.AdminClosed, detail));
        _current = 0;
        _generation++;
        _connecting = socket;
        OnConnectSucceeded(new ConnectSucceeded(_generation));
    }

    private void CancelHomeProbe()
    {
        Timers.Cancel(HomeProbeTimer);
        _probeId++;
        _probeTimeout?.Cancel();
        _probeTimeout?.Dispose();
        _probeTimeout = null;
        _probe?.Dispose();
        _probe = null;
    }

    /// <summary>
    /// The wait the server asked for in its <c>server-shutdown</c> notice on this connection (DESIGN §2); null: none. Only
    /// there: a hint on any other close would let a server that keeps refusing this client hold it in a loop without backoff.
    /// </summary>
    private TimeSpan? ReconnectHint() =>
        _serverNotice is { } notice
        && notice.StartsWith(CloseReason.ServerShutdown.NoticeText(""), StringComparison.Ordinal)
        && CloseReasons.TryReadReconnectHint(notice, out var after)
            ? after
            : null;

    /// <summary>Releases the socket and its relay and publishes the close (registry, meter, monitor: DESIGN §3, "One lifecycle") and logs it.</summary>
    private void LetGo(CloseReason reason, string detail)
    {
        var transport = _transport!;
        var status = RegistryStatus(ConnectionState.Closing);
        var now = Now;
        // FIN first, so the server sees this end close rather than reset (unless input is still unread).
        transport.ShutdownOutput();
        transport.Dispose();
        _transport = null;
        if (_relay is not null)
        {
            Context.Stop(_relay);
            _relay = null;
        }
        // Its socket is released at once (no linger on this side): closed and released together.
        PublishLifecycle(new ConnectionLifecycle.Closed(status, ConnectionDirection.Outbound, reason, detail, now));
        PublishLifecycle(new ConnectionLifecycle.Released(status.Id, ConnectionDirection.Outbound, now));
        ClientLog.Disconnected(_services.Log, _name, _remote ?? Current.ToString(), reason.ToWireName(), detail,
            (now - (_connectedAt ?? now)).TotalSeconds, _bytesIn, transport.BytesOut);
        _connectedAt = null;
        _remote = null;
        _local = null;
    }

    // ---- reporting ----

    private void SetState(ClientState state)
    {
        if (_state == state) return;
        _state = state;
        Publish(new StateChanged(_name, state));
    }

    /// <summary>The outbound connection's lifecycle, published once through the same publisher as the server's connections.</summary>
    private void PublishLifecycle(IConnectionLifecycleEvent lifecycle) =>
        Connections.LifecyclePublisher.Publish(Context.System, _services.Metrics, _services.Log, lifecycle);

    private void Publish(IClientEvent @event)
    {
        foreach (var subscriber in _subscribers) subscriber.Tell(@event);
        if (@event is ILifecycleEvent) Context.System.EventStream.Publish(@event);
    }

    private ClientStatus Status() => new(
        _name, Current.ToString(), _state, _remote, _local, _connectedAt, _backoff.Attempt, _connects, _rttMs, _deadlines?.MissedHeartbeats ?? 0,
        _buffer.Count, _buffer.Capacity, _buffer.Dropped, _buffer.Rejected, _dataSent, _framesReceived);

    private ConnectionStatus RegistryStatus(ConnectionState? state = null) => new(
        _connectionId,
        _remote ?? Current.ToString(),
        _name,
        Protocol,
        state ?? _deadlines!.State,
        _connectedAt ?? Now,
        _deadlines!.LastFrameAt,
        _deadlines.LastHeartbeatAt,
        _deadlines.MissedHeartbeats,
        _rttMs,
        _bytesIn,
        _transport?.BytesOut ?? 0,
        _responses,
        _transport?.KeepAlive ?? KeepAliveStatus.Disabled);

    private static string Show(EndPoint? endpoint) => endpoint switch
    {
        IPEndPoint { Address.IsIPv4MappedToIPv6: true } ip => new IPEndPoint(ip.Address.MapToIPv4(), ip.Port).ToString(),
        null => "unknown",
        _ => endpoint.ToString() ?? "unknown",
    };
}
