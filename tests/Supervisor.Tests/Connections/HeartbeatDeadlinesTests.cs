using Supervisor.Configuration;
using Supervisor.Connections;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Tests.Connections;

/// <summary>
/// The heartbeat decisions both ends share, free of actors and clocks: the server's connections (a miss is an
/// interval of the peer's silence) and the outbound client (it heartbeats every interval itself, and a miss is
/// one of its heartbeats unanswered for an interval).
/// </summary>
public sealed class HeartbeatDeadlinesTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(500);

    private static DateTimeOffset At(double ms) => T0 + TimeSpan.FromMilliseconds(ms);

    private static HeartbeatDeadlines Server(bool serverPing = false) =>
        new(new HeartbeatSettings(true, Interval, Timeout, LivenessMode.AnyFrame, serverPing, TimeSpan.FromMilliseconds(50)), T0);

    private static HeartbeatDeadlines Client() => HeartbeatDeadlines.ForOwnHeartbeats(Interval, Timeout, T0);

    [Fact]
    public void Server_deadlines_must_count_a_miss_per_interval_of_silence_ping_if_told_and_time_out_after_the_last_frame()
    {
        var server = Server(serverPing: true);
        Assert.Equal(At(100), server.NextDeadline());
        Assert.Equal(DeadlineVerdict.Nothing, server.Check(At(99)));
        Assert.Equal(DeadlineVerdict.MissedHeartbeatSendPing, server.Check(At(100)));
        Assert.Equal((1, ConnectionState.Suspect), (server.MissedHeartbeats, server.State));
        Assert.Equal(DeadlineVerdict.Nothing, server.Check(At(150)));
        Assert.Equal(At(200), server.NextDeadline());

        Assert.True(server.OnFrame(FrameType.Data, null, At(220)));
        Assert.Equal((0, ConnectionState.Active), (server.MissedHeartbeats, server.State));
        Assert.Equal(At(320), server.NextDeadline());
        // Never its own heartbeat: nothing is due until an interval of silence.
        Assert.Equal(DeadlineVerdict.Nothing, server.Check(At(300)));

        var quiet = Server();
        Assert.Equal(DeadlineVerdict.MissedHeartbeat, quiet.Check(At(250)));
        Assert.Equal(2, quiet.MissedHeartbeats);
        Assert.Equal(At(300), quiet.NextDeadline());
        quiet.Check(At(400));
        Assert.Equal(At(500), quiet.NextDeadline());
        Assert.Equal(DeadlineVerdict.TimedOut, quiet.Check(At(500)));
    }

    [Fact]
    public void Server_deadlines_must_forgive_a_stall_and_judge_only_once_the_backlog_could_be_read()
    {
        var server = Server();
        server.OnFrame(FrameType.Heartbeat, null, At(0));
        // The process stalled 400 ms: due at 100, told at 480.
        server.ForgiveStall(TimeSpan.FromMilliseconds(380), At(480));
        Assert.Equal(At(380), server.LastLivenessAt);
        Assert.Equal(DeadlineVerdict.Nothing, server.Check(At(480)));
        Assert.Equal(At(530), server.NextDeadline());
        Assert.Equal(DeadlineVerdict.MissedHeartbeat, server.Check(At(530)));
        Assert.Equal(1, server.MissedHeartbeats);
    }

    [Fact]
    public void Client_deadlines_must_send_at_once_then_every_interval_on_the_same_grid_however_late_the_timer()
    {
        var client = Client();
        Assert.Equal(T0, client.NextDeadline());
        Assert.Equal(DeadlineVerdict.SendHeartbeat, client.Check(T0));
        Assert.Equal(At(100), client.NextDeadline());
        Assert.Equal(DeadlineVerdict.Nothing, client.Check(At(60)));
        client.OnFrame(FrameType.HeartbeatResponse, 1, At(2));

        // A timer 30 ms late sends late, but the next is still due at 200, not at 230.
        Assert.Equal(DeadlineVerdict.SendHeartbeat, client.Check(At(130)));
        Assert.Equal(At(200), client.NextDeadline());
        client.OnFrame(FrameType.HeartbeatResponse, 2, At(131));

        // A timer 2.5 intervals late sends one heartbeat, not a burst of three, and keeps the grid.
        client.OnFrame(FrameType.Data, null, At(420));
        Assert.Equal(DeadlineVerdict.SendHeartbeat, client.Check(At(450)));
        Assert.Equal(At(500), client.NextDeadline());
        Assert.Equal(DeadlineVerdict.Nothing, client.Check(At(499)));
        Assert.Equal(ConnectionState.Active, client.State);
    }

    [Fact]
    public void Client_deadlines_must_not_suspect_a_server_that_answers_each_heartbeat_within_the_interval_though_its_frames_are_an_interval_apart()
    {
        var client = Client();
        // Each heartbeat answered 80 ms after it went out; the timer 10 ms late every other time, so the
        // server's frames are up to 110 ms apart: more than an interval of silence, never an unanswered heartbeat.
        for (var n = 0; n < 20; n++)
        {
            var sentAt = At(n * 100 + (n % 2 == 0 ? 0 : 10));
            Assert.Equal(DeadlineVerdict.SendHeartbeat, client.Check(sentAt));
            Assert.Equal(DeadlineVerdict.Nothing, client.Check(sentAt + TimeSpan.FromMilliseconds(79)));
            Assert.False(client.OnFrame(FrameType.HeartbeatResponse, n + 1, sentAt + TimeSpan.FromMilliseconds(80)));
        }
        Assert.Equal((0, ConnectionState.Active), (client.MissedHeartbeats, client.State));
    }

    [Fact]
    public void Client_deadlines_must_suspect_a_heartbeat_unanswered_for_an_interval_recover_on_any_frame_and_time_out_after_the_last_one()
    {
        var client = Client();
        Assert.Equal(DeadlineVerdict.SendHeartbeat, client.Check(T0));
        // Unanswered for an interval: suspect, and the next heartbeat goes out with the same verdict.
        Assert.Equal(DeadlineVerdict.MissedHeartbeatSendPing, client.Check(At(100)));
        Assert.Equal((1, ConnectionState.Suspect), (client.MissedHeartbeats, client.State));
        Assert.Equal(DeadlineVerdict.MissedHeartbeatSendPing, client.Check(At(200)));
        Assert.Equal(2, client.MissedHeartbeats);

        // Any valid frame proves the server alive: active again, and no miss until a heartbeat goes unanswered.
        Assert.True(client.OnFrame(FrameType.Data, null, At(250)));
        Assert.Equal((0, ConnectionState.Active), (client.MissedHeartbeats, client.State));
        Assert.Equal(At(300), client.NextDeadline());
        Assert.Equal(DeadlineVerdict.SendHeartbeat, client.Check(At(300)));
        Assert.Equal(At(400), client.NextDeadline());

        // The heartbeat sent at 300 was the first unanswered one: misses at 400, 500, 600, ...
        Assert.Equal(DeadlineVerdict.MissedHeartbeatSendPing, client.Check(At(400)));
        Assert.Equal(DeadlineVerdict.MissedHeartbeatSendPing, client.Check(At(500)));
        Assert.Equal(DeadlineVerdict.MissedHeartbeatSendPing, client.Check(At(600)));
        Assert.Equal(3, client.MissedHeartbeats);
        Assert.Equal(DeadlineVerdict.MissedHeartbeatSendPing, client.Check(At(700)));
        // Timed out 500 ms after the last frame (250), whatever is due at the same time.
        Assert.Equal(At(750), client.NextDeadline());
        Assert.Equal(DeadlineVerdict.TimedOut, client.Check(At(750)));
    }

    [Fact]
    public void Client_deadlines_must_count_an_unanswered_heartbeat_from_when_it_went_out()
    {
        var client = Client();
        client.Check(T0);
        client.OnFrame(FrameType.HeartbeatResponse, 1, At(1));
        // Sent 40 ms late: a whole interval for its answer, till 240, though the next one goes out at 200.
        Assert.Equal(DeadlineVerdict.SendHeartbeat, client.Check(At(140)));
        Assert.Equal(At(200), client.NextDeadline());
        Assert.Equal(DeadlineVerdict.SendHeartbeat, client.Check(At(200)));
        Assert.Equal(At(240), client.NextDeadline());
        Assert.Equal(DeadlineVerdict.MissedHeartbeat, client.Check(At(240)));
        Assert.Equal(ConnectionState.Suspect, client.State);
        Assert.Equal(At(300), client.NextDeadline());
    }

    private static HeartbeatDeadlines PhiServer(TimeSpan interval, TimeSpan timeout) =>
        new(new HeartbeatSettings(true, interval, timeout, LivenessMode.AnyFrame, false, TimeSpan.FromSeconds(1))
        {
            Detector = SilenceDetector.Phi,
            Phi = new PhiSettings(SuspectThreshold: 3, Threshold: 8, MaxSampleSize: 32, MinStdDeviation: TimeSpan.FromMilliseconds(100),
                AcceptableHeartbeatPause: interval, FirstHeartbeatEstimate: interval),
        }, T0);

    /// <summary>Feeds heartbeats at the given gaps (ms) from T0; returns when the last one came.</summary>
    private static DateTimeOffset Heartbeats(HeartbeatDeadlines deadlines, IEnumerable<double> gapsMs)
    {
        var at = T0;
        foreach (var gap in gapsMs)
        {
            at += TimeSpan.FromMilliseconds(gap);
            deadlines.OnFrame(FrameType.Heartbeat, null, at);
        }
        return at;
    }

    [Fact]
    public void Phi_must_close_a_steady_peer_soon_after_its_cadence_and_a_jittery_one_later_never_past_the_timeout()
    {
        var interval = TimeSpan.FromSeconds(2);
        var timeout = TimeSpan.FromSeconds(30);
        var random = new Random(3);
        var steady = PhiServer(interval, timeout);
        var last = Heartbeats(steady, Enumerable.Range(0, 40).Select(_ => 2000 + random.NextDouble() * 40 - 20));
        // Learned: 2 s ± ~12 ms, so min-std (100 ms) applies: suspect at 2 + 2 (pause) + 2.3 x 0.1 s, closed at 2 + 2 + 5.26 x 0.1 s.
        var status = steady.PhiStatus(last)!;
        Assert.InRange(status.MeanMs, 1990, 2010);
        Assert.InRange(status.CloseAfterMs, 4450, 4600);
        var suspectAt = steady.NextDeadline()!.Value;
        Assert.Equal(status.SuspectAfterMs, (suspectAt - last).TotalMilliseconds, 0.01);
        Assert.Equal(DeadlineVerdict.Nothing, steady.Check(suspectAt - TimeSpan.FromMilliseconds(1)));
        Assert.Equal(DeadlineVerdict.MissedHeartbeat, steady.Check(suspectAt));
        Assert.Equal(ConnectionState.Suspect, steady.State);
        var closeAt = steady.NextDeadline()!.Value;
        Assert.Equal(status.CloseAfterMs, (closeAt - last).TotalMilliseconds, 0.01);
        Assert.Equal(DeadlineVerdict.TimedOut, steady.Check(closeAt));
        Assert.True(steady.PhiStatus(closeAt)!.Phi >= 7.99);

        var jittery = PhiServer(interval, timeout);
        last = Heartbeats(jittery, Enumerable.Range(0, 40).Select(_ => 2000 + random.NextDouble() * 2000 - 1000));
        var jitteryStatus = jittery.PhiStatus(last)!;
        Assert.True(jitteryStatus.CloseAfterMs > status.CloseAfterMs + 1500, $"jittery closes after {jitteryStatus.CloseAfterMs} ms, steady after {status.CloseAfterMs} ms");
        Assert.Equal(DeadlineVerdict.Nothing, jittery.Check(last + TimeSpan.FromMilliseconds(status.CloseAfterMs)));

        // A peer that once stalled 60 s has a deviation that would carry it past the timeout: the timeout holds.
        var stalled = PhiServer(interval, timeout);
        last = Heartbeats(stalled, [.. Enumerable.Repeat(2000.0, 10), 60_000, .. Enumerable.Repeat(2000.0, 10)]);
        Assert.Equal(timeout.TotalMilliseconds, stalled.PhiStatus(last)!.CloseAfterMs);
        Assert.Equal(DeadlineVerdict.TimedOut, stalled.Check(last + timeout));
    }

    [Fact]
    public void Phi_with_auto_pause_and_estimate_must_follow_a_negotiated_interval()
    {
        // A 30 s / 90 s listener with pause and first estimate auto; the peer announces 5 s on its first heartbeat.
        var interval = TimeSpan.FromSeconds(30);
        var deadlines = new HeartbeatDeadlines(new HeartbeatSettings(true, interval, TimeSpan.FromSeconds(90), LivenessMode.AnyFrame, false, TimeSpan.FromSeconds(1))
        {
            Detector = SilenceDetector.Phi,
            Phi = new PhiSettings(SuspectThreshold: 3, Threshold: 8, MaxSampleSize: 64, MinStdDeviation: TimeSpan.FromMilliseconds(200),
                AcceptableHeartbeatPause: interval, FirstHeartbeatEstimate: interval) { PauseFollowsInterval = true, EstimateFollowsInterval = true },
            Negotiation = new HeartbeatNegotiation(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10)),
        }, T0);
        Assert.Equal(5000, deadlines.Negotiate(5000));
        var last = Heartbeats(deadlines, Enumerable.Repeat(5000.0, 4));
        // Seeded from 5 s (3.75 s and 6.25 s) with a 5 s pause: mean 5 s, deviation ~0.72 s, closed ~14.1 s after the
        // last heartbeat. The listener's seeds (22.5 s, 37.5 s) and 30 s pause would have held it to the derived 15 s cap.
        var status = deadlines.PhiStatus(last)!;
        Assert.Equal(5000, status.MeanMs, 1);
        Assert.InRange(status.CloseAfterMs, 13_000, 14_500);
        Assert.True(status.CloseAfterMs < deadlines.Timeout.TotalMilliseconds);
    }

    [Fact]
    public void Phi_must_not_learn_the_interval_that_spans_a_stall_of_the_server()
    {
        var interval = TimeSpan.FromSeconds(1);
        var deadlines = PhiServer(interval, TimeSpan.FromSeconds(10));
        var last = Heartbeats(deadlines, Enumerable.Repeat(1000.0, 20));
        var before = deadlines.PhiStatus(last)!;
        // The server stalls 5 s; the peer's heartbeats of that time arrive together when it resumes.
        var resumed = last + TimeSpan.FromSeconds(5);
        deadlines.ForgiveStall(TimeSpan.FromSeconds(5), resumed);
        deadlines.OnFrame(FrameType.Heartbeat, null, resumed);
        deadlines.OnFrame(FrameType.Heartbeat, null, resumed + TimeSpan.FromSeconds(1));
        var after = deadlines.PhiStatus(resumed + TimeSpan.FromSeconds(1))!;
        Assert.Equal(before.MeanMs, after.MeanMs, 1);
        Assert.Equal(before.CloseAfterMs, after.CloseAfterMs, 1);
    }

    [Fact]
    public void The_fixed_detector_must_have_no_phi_status() =>
        Assert.Null(Server().PhiStatus(T0));
}
