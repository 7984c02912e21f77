using Supervisor.Connections;
using Supervisor.Messages.Protocol;
using Xunit;

namespace Supervisor.Tests.Connections;

/// <summary>The cause of a silent peer's death, on raw tcp_info values: every branch, the uncertain ones included.</summary>
public sealed class SilenceClassifierTests
{
    /// <summary>An established socket, idle: nothing in flight, last data and last ACK as given (ms ago), RTO 204 ms.</summary>
    private static TcpInfo Info(long lastData, long lastAck, long unacked = 0, int retransmits = 0, int probes = 0, double rto = 204, string state = "established") =>
        new(state, retransmits, probes, rto, RttMs: 0.1, RttVarMs: 0.05, unacked, Lost: 0, TotalRetrans: retransmits, SendCongestionWindow: 10,
            LastDataSentMs: lastData, LastDataReceivedMs: lastData, LastAckReceivedMs: lastAck);

    private static SilenceVerdict Classify(TcpInfo? info) => SilenceClassifier.Classify(info);

    [Fact]
    public void Without_TCP_INFO_the_cause_is_unknown()
    {
        var verdict = Classify(null);
        Assert.Equal(SilenceCause.Unknown, verdict.Cause);
        Assert.Contains("not available", verdict.Evidence);
    }

    [Fact]
    public void A_socket_that_is_not_established_is_unknown_and_says_its_state()
    {
        var verdict = Classify(Info(3000, 100, state: "close-wait"));
        Assert.Equal(SilenceCause.Unknown, verdict.Cause);
        Assert.Contains("close-wait", verdict.Evidence);
    }

    [Fact]
    public void A_frozen_peer_whose_kernel_answers_probes_is_peer_hung()
    {
        // The peer's last data 5 s ago; its kernel answered a keep-alive probe 400 ms ago.
        var verdict = Classify(Info(lastData: 5000, lastAck: 400));
        Assert.Equal(SilenceCause.PeerHung, verdict.Cause);
        Assert.Equal("cause peer-hung: the peer's TCP acknowledged 400 ms ago, 4600 ms after its last data; nothing unacknowledged", verdict.DetailSuffix);
    }

    [Fact]
    public void A_ping_acknowledged_after_the_peer_fell_silent_with_a_newer_one_in_flight_is_peer_hung()
    {
        var verdict = Classify(Info(lastData: 3000, lastAck: 1000, unacked: 1));
        Assert.Equal(SilenceCause.PeerHung, verdict.Cause);
        Assert.Contains("1 segment in flight for less than an RTO", verdict.Evidence);
    }

    [Fact]
    public void The_ACK_of_our_answer_to_the_peer_s_last_frame_proves_nothing()
    {
        // Acknowledged 499 ms after its last data: a delayed ACK of our heartbeat response, within the margin.
        Assert.Equal(SilenceCause.Silent, Classify(Info(lastData: 3000, lastAck: 3000 - SilenceClassifier.AckAfterDataMarginMs + 1)).Cause);
        Assert.Equal(SilenceCause.PeerHung, Classify(Info(lastData: 3000, lastAck: 3000 - SilenceClassifier.AckAfterDataMarginMs)).Cause);
    }

    [Fact]
    public void Nothing_in_flight_and_no_ACK_since_the_peer_s_data_is_silent()
    {
        var verdict = Classify(Info(lastData: 3000, lastAck: 2990));
        Assert.Equal(SilenceCause.Silent, verdict.Cause);
        Assert.Contains("cannot tell", verdict.Evidence);
    }

    [Fact]
    public void A_ping_retransmitted_without_an_ACK_is_path_dead()
    {
        // Sent 2 s ago, retransmitted 3 times (RTO backed off 204 -> 1632 ms), no ACK for 3 s.
        var verdict = Classify(Info(lastData: 3000, lastAck: 3000, unacked: 1, retransmits: 3, rto: 1632));
        Assert.Equal(SilenceCause.PathDead, verdict.Cause);
        Assert.Equal("cause path-dead: 1 segment unacknowledged after 3 retransmissions, no ACK for 3000 ms (RTO 1632 ms)", verdict.DetailSuffix);
    }

    [Fact]
    public void Retransmitting_while_ACKs_still_arrive_is_contradictory_and_unknown()
    {
        // A retransmission, yet an ACK 10 ms ago (duplicate ACKs of a lossy but live path).
        var verdict = Classify(Info(lastData: 3000, lastAck: 10, unacked: 2, retransmits: 1, rto: 408));
        Assert.Equal(SilenceCause.Unknown, verdict.Cause);
        Assert.StartsWith("contradictory", verdict.Evidence);
    }

    [Fact]
    public void Data_in_flight_for_less_than_an_RTO_without_an_ACK_since_the_peer_s_data_is_too_early_to_tell()
    {
        var verdict = Classify(Info(lastData: 1000, lastAck: 1000, unacked: 1));
        Assert.Equal(SilenceCause.Unknown, verdict.Cause);
        Assert.Contains("too early to tell", verdict.Evidence);
    }

    [Fact]
    public void Keep_alive_probes_unanswered_are_path_dead()
    {
        var verdict = Classify(Info(lastData: 4000, lastAck: 2500, probes: 2));
        Assert.Equal(SilenceCause.PathDead, verdict.Cause);
        Assert.Equal("cause path-dead: 2 keep-alive probes unanswered, no ACK for 2500 ms", verdict.DetailSuffix);
    }

    [Fact]
    public void Probes_counted_unanswered_with_a_fresh_ACK_are_contradictory_and_unknown()
    {
        var verdict = Classify(Info(lastData: 4000, lastAck: 5, probes: 3));
        Assert.Equal(SilenceCause.Unknown, verdict.Cause);
        Assert.StartsWith("contradictory", verdict.Evidence);
    }

    [Fact]
    public void One_probe_out_is_not_yet_an_answer_either_way()
    {
        // A live peer's kernel answers within a round trip; until then the one probe out proves nothing.
        var verdict = Classify(Info(lastData: 4000, lastAck: 1000, probes: 1));
        Assert.Equal(SilenceCause.Unknown, verdict.Cause);
        Assert.Contains("not answered yet", verdict.Evidence);
    }
}
