using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Connections;

/// <summary>What the connection must do after a deadline check.</summary>
internal enum DeadlineVerdict
{
    Nothing,
    /// <summary>One more interval passed in silence: the connection is (still) suspect.</summary>
    MissedHeartbeat,
    /// <summary>
    /// As <see cref="MissedHeartbeat"/>, and send a heartbeat: the server's ping (server ping is on), or the
    /// heartbeat of a side that sends its own every interval, which fell due as well.
    /// </summary>
    MissedHeartbeatSendPing,
    /// <summary>Nothing was missed, but this side's own heartbeat is due (a side that sends one every interval).</summary>
    SendHeartbeat,
    /// <summary>Silent for <c>timeout</c> since the last valid frame: close with heartbeat-timeout.</summary>
    TimedOut,
}

/// <summary>
/// The heartbeat decisions of one connection, free of actors and clocks so they can be tested alone.
/// Deadlines are stored, not scheduled per frame: a frame only moves <see cref="LastLivenessAt"/>, and
/// the one deadline timer, when it fires, asks <see cref="Check"/> what is due and when to look next.
/// Both ends use it: the server's connections wait for their peers' heartbeats (a miss is an interval of
/// silence), and the outbound heartbeat client (<see cref="ForOwnHeartbeats"/>) sends its own every
/// interval (a miss is a heartbeat of its own unanswered for an interval); a timeout is the same for both.
/// </summary>
/// <param name="sendsOwnHeartbeats">
/// This side sends a heartbeat every interval, the first at <paramref name="connectedAt"/>, whatever the
/// peer does: <see cref="Check"/> says when (<see cref="DeadlineVerdict.SendHeartbeat"/>).
/// </param>
internal sealed class HeartbeatDeadlines(HeartbeatSettings settings, DateTimeOffset connectedAt, bool sendsOwnHeartbeats = false)
{
    /// <summary>
    /// The heartbeat client's deadlines: it sends a heartbeat every <paramref name="interval"/> from
    /// <paramref name="connectedAt"/> on, is suspect while one has gone unanswered for an interval (no frame
    /// at all since it was sent), and times out <paramref name="timeout"/> after the server's last frame. Any
    /// valid frame proves the server alive. The client does not forgive stalls (<see cref="ForgiveStall"/> is
    /// fed by the server's deadline queue), so the starvation threshold is never read.
    /// </summary>
    public static HeartbeatDeadlines ForOwnHeartbeats(TimeSpan interval, TimeSpan timeout, DateTimeOffset connectedAt) =>
        new(new HeartbeatSettings(Enabled: true, interval, timeout, LivenessMode.AnyFrame, ServerPing: false, StarvationThreshold: TimeSpan.Zero),
            connectedAt, sendsOwnHeartbeats: true);

    /// <summary>When this side's next own heartbeat is due; null for a side that sends none.</summary>
    // Ticks (UTC), 0 for none: a nullable DateTimeOffset is 24 bytes, and every server connection carries these unused.
    private long _nextOwnHeartbeatAtTicks = sendsOwnHeartbeats ? connectedAt.UtcTicks : 0;
    /// <summary>When the oldest own heartbeat sent since the peer's last liveness went out; null when none is unanswered.</summary>
    private long _unansweredSinceTicks;
    private long _nextPingSeq = 1;
    private long? _outstandingPingSeq;
    private DateTimeOffset _outstandingPingSentAt;
    private DateTimeOffset _judgeNotBefore = DateTimeOffset.MinValue;
    /// <summary>The peer's learned heartbeat distribution when the phi detector judges it (a server connection with <c>detector = phi</c>).</summary>
    private readonly PhiAccrual? _phi = sendsOwnHeartbeats || settings.ActivePhi is not { } phi ? null : new PhiAccrual(phi);
    private TimeSpan _suspectAfter = settings.SuspectAfter ?? settings.Interval;
    private TimeSpan _timeoutAfter = settings.Timeout;
    /// <summary>This connection's interval and hard timeout: the listener's, or those derived from the interval its peer announced.</summary>
    private TimeSpan _interval = settings.Interval;
    private TimeSpan _hardTimeout = settings.Timeout;
    /// <summary>The interval the peer announced and the one accepted (ms); 0 while it has announced none.</summary>
    private int _requestedIntervalMs;
    private int _acceptedIntervalMs;
    /// <summary>The peer's last heartbeat (type 0, ticks, 0 for none), and the run of heartbeats that came too fast (<see cref="HeartbeatsTooFast"/>).</summary>
    private long _lastPeerHeartbeatTicks;
    private long _fastSinceTicks;
    private int _fastHeartbeats;

    public DateTimeOffset LastLivenessAt { get; private set; } = connectedAt;
    public DateTimeOffset? LastFrameAt { get; private set; }
    public DateTimeOffset? LastHeartbeatAt { get; private set; }
    public int MissedHeartbeats { get; private set; }
    public ConnectionState State => MissedHeartbeats > 0 ? ConnectionState.Suspect : ConnectionState.Active;
    public double? RttMs { get; private set; }
    /// <summary>How many round trips have been measured; changes each time <see cref="RttMs"/> is set.</summary>
    public long RttSamples { get; private set; }
    public long HeartbeatsReceived { get; private set; }

    /// <summary>This connection's interval: the listener's, or the one accepted from its peer.</summary>
    public TimeSpan Interval => _interval;

    /// <summary>This connection's hard timeout: the listener's, or the one derived from the accepted interval.</summary>
    public TimeSpan Timeout => _hardTimeout;

    /// <summary>What the peer announced and what was accepted; null while it has announced nothing.</summary>
    public NegotiatedHeartbeat? Negotiated => _acceptedIntervalMs == 0
        ? null
        : new NegotiatedHeartbeat(_requestedIntervalMs, _acceptedIntervalMs, _suspectAfter.TotalMilliseconds, _hardTimeout.TotalMilliseconds);

    /// <summary>
    /// The peer announced it heartbeats every <paramref name="requestedMs"/>: accepted within the listener's
    /// <c>heartbeat.negotiation</c> bounds, clamped outside them. The connection's deadlines follow the accepted
    /// interval as the listener's follow its own: timeout and suspect point scaled by accepted / listener interval
    /// (so <c>suspect-after = auto</c> stays interval + min(interval, timeout − interval) / 2 of the accepted one), as
    /// MQTT derives 1.5 × keep-alive from CONNECT. A peer that announces on every heartbeat costs a comparison.
    /// Returns the accepted interval in ms, what the response tells the peer.
    /// </summary>
    public int Negotiate(int requestedMs)
    {
        if (requestedMs == _requestedIntervalMs) return _acceptedIntervalMs;
        var bounds = settings.Negotiation;
        var accepted = (int)Math.Clamp(requestedMs, (long)bounds.MinInterval.TotalMilliseconds, (long)bounds.MaxInterval.TotalMilliseconds);
        _requestedIntervalMs = requestedMs;
        if (accepted == _acceptedIntervalMs) return accepted;
        _acceptedIntervalMs = accepted;
        var scale = accepted / settings.Interval.TotalMilliseconds;
        _interval = TimeSpan.FromMilliseconds(accepted);
        _hardTimeout = TimeSpan.FromMilliseconds(Math.Round(settings.Timeout.TotalMilliseconds * scale));
        _timeoutAfter = _hardTimeout;
        _suspectAfter = TimeSpan.FromMilliseconds(Math.Round((settings.SuspectAfter ?? settings.Interval).TotalMilliseconds * scale));
        if (_phi is not null)
        {
            _phi.FollowInterval(_interval);
            ApplyPhiPoints();
        }
        // A new cadence starts a new judgement of its pace.
        _fastHeartbeats = 0;
        return accepted;
    }

    /// <summary>
    /// The peer announced an interval and then sent <see cref="TooFastRun"/> heartbeats in a row, each less than a
    /// quarter of that interval (the one it announced, not the one it was clamped up to) after the one before (gRPC's too_many_pings): it claims a slow cadence and keeps a fast
    /// one. Honest jitter never brings a heartbeat three quarters of an interval early, and the backlog a stalled
    /// client or a held-up network delivers at once is at most timeout / interval heartbeats (a longer silence is
    /// closed), which the run exceeds.
    /// </summary>
    public bool HeartbeatsTooFast => _fastHeartbeats >= TooFastRun;

    /// <summary>Heartbeats in a row that make a peer too fast: timeout / interval + 3, at least 8.</summary>
    private int TooFastRun => Math.Max(8, (int)(settings.Timeout.Ticks / settings.Interval.Ticks) + 3);

    /// <summary>The mean gap of the run of too-fast heartbeats, in ms, for the close's notice.</summary>
    public double FastHeartbeatGapMs => _fastHeartbeats == 0 ? 0
        : (_lastPeerHeartbeatTicks - _fastSinceTicks) / (double)_fastHeartbeats / TimeSpan.TicksPerMillisecond;

    /// <summary>The interval the peer announced in ms; 0 when it announced none.</summary>
    public int RequestedIntervalMs => _requestedIntervalMs;

    /// <summary>The interval accepted from the peer in ms; 0 when it announced none.</summary>
    public int AcceptedIntervalMs => _acceptedIntervalMs;

    private void CountPace(DateTimeOffset now)
    {
        var last = _lastPeerHeartbeatTicks;
        _lastPeerHeartbeatTicks = now.UtcTicks;
        if (_acceptedIntervalMs == 0 || last == 0) return;
        // Judged against what the peer said, or the accepted interval if that is shorter: a client clamped up from
        // 200 ms that keeps its honest 200 ms pace (it may not read the answer) is not lying about it.
        var saidTicks = Math.Min(_requestedIntervalMs, _acceptedIntervalMs) * TimeSpan.TicksPerMillisecond;
        if ((now.UtcTicks - last) * 4 < saidTicks)
        {
            if (_fastHeartbeats++ == 0) _fastSinceTicks = last;
        }
        else _fastHeartbeats = 0;
    }

    /// <summary>Records a valid frame; returns true if it changed the state (suspect back to active).</summary>
    public bool OnFrame(Frame frame, DateTimeOffset now) => OnFrame(frame.Type, frame.Seq, now);

    /// <summary>Records a valid frame of this type and seq; returns true if it changed the state (suspect back to active).</summary>
    public bool OnFrame(FrameType type, long? frameSeq, DateTimeOffset now)
    {
        LastFrameAt = now;
        var heartbeatTraffic = type is FrameType.Heartbeat or FrameType.HeartbeatResponse;
        if (heartbeatTraffic)
        {
            LastHeartbeatAt = now;
            if (type == FrameType.Heartbeat)
            {
                HeartbeatsReceived++;
                CountPace(now);
                if (_phi is not null) LearnInterval(now);
            }
            if (type == FrameType.HeartbeatResponse && frameSeq is { } seq && seq == _outstandingPingSeq)
            {
                RttMs = (now - _outstandingPingSentAt).TotalMilliseconds;
                RttSamples++;
                _outstandingPingSeq = null;
            }
        }
        if (settings.Liveness == LivenessMode.HeartbeatOnly && !heartbeatTraffic)
            return false;

        LastLivenessAt = now;
        _unansweredSinceTicks = 0;
        var wasSuspect = MissedHeartbeats > 0;
        MissedHeartbeats = 0;
        return wasSuspect;
    }

    /// <summary>
    /// The server stalled for <paramref name="stall"/>: that time is not held against the peer, whose
    /// silence is counted from its last frame plus the stall. Nor is anything judged before the server
    /// has had <c>starvation-threshold</c> to read what the peer sent during the stall: those frames sit
    /// unread in the socket while the deadlines that fell due in the stall fire first, and judging at once
    /// would count a missed heartbeat against every peer (and make the stall look like a mass disconnect).
    /// </summary>
    public void ForgiveStall(TimeSpan stall, DateTimeOffset now)
    {
        var forgiven = LastLivenessAt + stall;
        LastLivenessAt = forgiven < now ? forgiven : now;
        MissedHeartbeats = Math.Min(MissedHeartbeats, MissedBy(now));
        _judgeNotBefore = now + settings.StarvationThreshold;
        _phi?.SkipNextInterval();
    }

    /// <summary>
    /// The phi detector learns the time between the peer's own heartbeats (type 0), the cadence it keeps, not
    /// between any frames: a chatty peer that falls back to heartbeats alone must not look late. Each interval moves
    /// the suspect and close points, never past the hard <c>timeout</c>.
    /// </summary>
    private void LearnInterval(DateTimeOffset now)
    {
        _phi!.OnHeartbeat(now);
        ApplyPhiPoints();
    }

    private void ApplyPhiPoints()
    {
        var close = _phi!.CloseAfter;
        _timeoutAfter = close < _hardTimeout ? close : _hardTimeout;
        var suspect = _phi.SuspectAfter;
        _suspectAfter = suspect < _timeoutAfter ? suspect : _timeoutAfter;
    }

    /// <summary>The phi detector's view of the peer now; null with the fixed timeout.</summary>
    public PhiStatus? PhiStatus(DateTimeOffset now) => _phi is null
        ? null
        : new PhiStatus(Math.Round(_phi.Phi(now - LastLivenessAt), 2), Math.Round(_phi.MeanMs, 1), Math.Round(_phi.StdDeviationMs, 1), _phi.Samples,
            _suspectAfter.TotalMilliseconds, _timeoutAfter.TotalMilliseconds);

    public DeadlineVerdict Check(DateTimeOffset now)
    {
        if (!settings.Enabled) return DeadlineVerdict.Nothing;
        if (now < _judgeNotBefore) return TakeOwnHeartbeat(now) ? DeadlineVerdict.SendHeartbeat : DeadlineVerdict.Nothing;
        var idle = now - LastLivenessAt;
        if (idle >= _timeoutAfter) return DeadlineVerdict.TimedOut;

        var send = TakeOwnHeartbeat(now);
        var missed = MissedBy(now);
        if (missed <= MissedHeartbeats) return send ? DeadlineVerdict.SendHeartbeat : DeadlineVerdict.Nothing;
        MissedHeartbeats = missed;
        return settings.ServerPing || send ? DeadlineVerdict.MissedHeartbeatSendPing : DeadlineVerdict.MissedHeartbeat;
    }

    /// <summary>When <see cref="Check"/> next has something to decide; null when heartbeats are off.</summary>
    public DateTimeOffset? NextDeadline()
    {
        if (!settings.Enabled) return null;
        var next = LastLivenessAt + _timeoutAfter;
        if (MissesCountFrom is { } from)
        {
            // The first miss at the suspect point (one interval with the fixed timeout), one more every interval after.
            var nextMiss = from + _suspectAfter + _interval * MissedHeartbeats;
            if (nextMiss < next) next = nextMiss;
        }
        if (next < _judgeNotBefore) next = _judgeNotBefore;
        // Sending is not judging: a stall's grace does not hold back this side's own heartbeat.
        return _nextOwnHeartbeatAtTicks != 0 && _nextOwnHeartbeatAtTicks < next.UtcTicks ? new DateTimeOffset(_nextOwnHeartbeatAtTicks, TimeSpan.Zero) : next;
    }

    /// <summary>
    /// Missed intervals are counted from the peer's last liveness where the peer is expected to heartbeat (the
    /// server), and from the oldest own heartbeat still unanswered where this side heartbeats (the client; null
    /// while none is: then nothing can be missed before the next one goes out).
    /// </summary>
    private DateTimeOffset? MissesCountFrom => !sendsOwnHeartbeats ? LastLivenessAt
        : _unansweredSinceTicks == 0 ? null : new DateTimeOffset(_unansweredSinceTicks, TimeSpan.Zero);

    private int MissedBy(DateTimeOffset now)
    {
        if (MissesCountFrom is not { } from) return 0;
        var silent = now - from;
        return silent < _suspectAfter ? 0 : 1 + (int)((silent - _suspectAfter).Ticks / _interval.Ticks);
    }

    /// <summary>
    /// True when this side's own heartbeat is due: it is taken as sent now (the caller sends it), and the next
    /// one falls due on the same grid of intervals from the connect, however late this one went out, so a late
    /// timer neither delays the ones after it nor sends a burst of them.
    /// </summary>
    private bool TakeOwnHeartbeat(DateTimeOffset now)
    {
        if (_nextOwnHeartbeatAtTicks == 0 || now.UtcTicks < _nextOwnHeartbeatAtTicks) return false;
        var due = new DateTimeOffset(_nextOwnHeartbeatAtTicks, TimeSpan.Zero);
        var behind = (now - due).Ticks / _interval.Ticks;
        _nextOwnHeartbeatAtTicks = due.UtcTicks + _interval.Ticks * (behind + 1);
        if (_unansweredSinceTicks == 0) _unansweredSinceTicks = now.UtcTicks;
        return true;
    }

    /// <summary>Builds the server's ping and remembers its seq, so the response yields the round-trip time.</summary>
    public Frame NextPing(DateTimeOffset now)
    {
        _outstandingPingSeq = _nextPingSeq++;
        _outstandingPingSentAt = now;
        return new Frame(FrameType.Heartbeat, now.ToUnixTimeSeconds(), null, _outstandingPingSeq);
    }
}
