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
    /// <summary>As <see cref="MissedHeartbeat"/>, and server ping is on: send a heartbeat.</summary>
    MissedHeartbeatSendPing,
    /// <summary>Silent for <c>timeout</c> since the last valid frame: close with heartbeat-timeout.</summary>
    TimedOut,
}

/// <summary>
/// The heartbeat decisions of one connection, free of actors and clocks so they can be tested alone.
/// Deadlines are stored, not scheduled per frame: a frame only moves <see cref="LastLivenessAt"/>, and
/// the one deadline timer, when it fires, asks <see cref="Check"/> what is due and when to look next.
/// </summary>
internal sealed class HeartbeatDeadlines(HeartbeatSettings settings, DateTimeOffset connectedAt)
{
    private long _nextPingSeq = 1;
    private long? _outstandingPingSeq;
    private DateTimeOffset _outstandingPingSentAt;
    private DateTimeOffset _judgeNotBefore = DateTimeOffset.MinValue;

    public DateTimeOffset LastLivenessAt { get; private set; } = connectedAt;
    public DateTimeOffset? LastFrameAt { get; private set; }
    public DateTimeOffset? LastHeartbeatAt { get; private set; }
    public int MissedHeartbeats { get; private set; }
    public ConnectionState State => MissedHeartbeats > 0 ? ConnectionState.Suspect : ConnectionState.Active;
    public double? RttMs { get; private set; }
    /// <summary>How many round trips have been measured; changes each time <see cref="RttMs"/> is set.</summary>
    public long RttSamples { get; private set; }
    public long HeartbeatsReceived { get; private set; }

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
            if (type == FrameType.Heartbeat) HeartbeatsReceived++;
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
        MissedHeartbeats = Math.Min(MissedHeartbeats, (int)((now - LastLivenessAt).Ticks / settings.Interval.Ticks));
        _judgeNotBefore = now + settings.StarvationThreshold;
    }

    public DeadlineVerdict Check(DateTimeOffset now)
    {
        if (!settings.Enabled || now < _judgeNotBefore) return DeadlineVerdict.Nothing;
        var idle = now - LastLivenessAt;
        if (idle >= settings.Timeout) return DeadlineVerdict.TimedOut;

        var missed = (int)(idle.Ticks / settings.Interval.Ticks);
        if (missed <= MissedHeartbeats) return DeadlineVerdict.Nothing;
        MissedHeartbeats = missed;
        return settings.ServerPing ? DeadlineVerdict.MissedHeartbeatSendPing : DeadlineVerdict.MissedHeartbeat;
    }

    /// <summary>When <see cref="Check"/> next has something to decide; null when heartbeats are off.</summary>
    public DateTimeOffset? NextDeadline()
    {
        if (!settings.Enabled) return null;
        var nextMiss = LastLivenessAt + settings.Interval * (MissedHeartbeats + 1);
        var timeout = LastLivenessAt + settings.Timeout;
        var next = nextMiss < timeout ? nextMiss : timeout;
        return next < _judgeNotBefore ? _judgeNotBefore : next;
    }

    /// <summary>Builds the server's ping and remembers its seq, so the response yields the round-trip time.</summary>
    public Frame NextPing(DateTimeOffset now)
    {
        _outstandingPingSeq = _nextPingSeq++;
        _outstandingPingSentAt = now;
        return new Frame(FrameType.Heartbeat, now.ToUnixTimeSeconds(), null, _outstandingPingSeq);
    }
}
