using System.Globalization;
using Supervisor.Messages.Protocol;

namespace Supervisor.Connections;

/// <summary>A <see cref="SilenceCause"/> and the kernel's figures that made it, in words for the close detail.</summary>
internal readonly record struct SilenceVerdict(SilenceCause Cause, string Evidence)
{
    /// <summary>What follows <c>no valid frame for N ms</c> in a heartbeat-timeout's detail: <c>cause peer-hung: …</c>.</summary>
    public string DetailSuffix => $"cause {Cause.ToWireName()}: {Evidence}";
}

/// <summary>
/// Tells from the kernel's view of a silent peer's socket (TCP_INFO) why it is silent (DESIGN §3, "Cause of death").
/// Pure, so every branch is tested on raw values; the connection reads TCP_INFO only when it turns suspect, at each
/// further missed interval and at the heartbeat-timeout close, never on the heartbeat path. Where the figures do not
/// settle it, the answer is <see cref="SilenceCause.Unknown"/> with the reason, not a guess.
/// </summary>
internal static class SilenceClassifier
{
    /// <summary>
    /// How much later than the peer's last data an ACK must come to prove its stack alive after its application fell
    /// silent. The peer acknowledges our answer to its last frame right after that frame (a delayed ACK: at most
    /// 200 ms on Linux, 500 ms allowed by RFC 1122), which proves nothing about the time since.
    /// </summary>
    public const long AckAfterDataMarginMs = 500;

    public static SilenceVerdict Classify(TcpInfo? info)
    {
        if (info is null)
            return new(SilenceCause.Unknown, "TCP_INFO is not available for this socket");
        if (info.State != "established")
            return new(SilenceCause.Unknown, $"the socket is in state {info.State}");

        var lastAck = info.LastAckReceivedMs;
        var lastData = info.LastDataReceivedMs;
        var rto = info.RtoMs;

        // Our data is in flight and an RTO expired without an ACK: retransmitting into silence. tcpi_rto is backed off
        // once per retransmission, so the ACK is compared with the RTO the first retransmission waited.
        if (info.Unacked > 0 && info.Retransmits > 0)
        {
            var firstRto = rto / (1 << Math.Min(info.Retransmits, 30));
            return lastAck >= firstRto
                ? new(SilenceCause.PathDead,
                    $"{Plural(info.Unacked, "segment")} unacknowledged after {Plural(info.Retransmits, "retransmission")}, no ACK for {lastAck} ms (RTO {Ms(rto)} ms)")
                : new(SilenceCause.Unknown,
                    $"contradictory: retransmitting {Plural(info.Unacked, "segment")}, yet an ACK came {lastAck} ms ago (first RTO {Ms(firstRto)} ms)");
        }

        // Keep-alive probes: any ACK resets the count, so a second probe means the first went unanswered for a
        // whole TCP_KEEPINTVL (at least 1 s, and longer than any RTO the kernel keeps for a live path).
        if (info.Probes >= 2)
            return lastAck >= rto
                ? new(SilenceCause.PathDead, $"{Plural(info.Probes, "keep-alive probe")} unanswered, no ACK for {lastAck} ms")
                : new(SilenceCause.Unknown, $"contradictory: {Plural(info.Probes, "keep-alive probe")} counted unanswered, yet an ACK came {lastAck} ms ago");
        if (info.Probes == 1)
            return new(SilenceCause.Unknown, $"a keep-alive probe is out and not answered yet (last ACK {lastAck} ms ago, last data {lastData} ms ago)");

        if (lastData >= lastAck && lastData - lastAck >= AckAfterDataMarginMs)
            return new(SilenceCause.PeerHung, info.Unacked > 0
                ? $"the peer's TCP acknowledged {lastAck} ms ago, {lastData - lastAck} ms after its last data; {Plural(info.Unacked, "segment")} in flight for less than an RTO"
                : $"the peer's TCP acknowledged {lastAck} ms ago, {lastData - lastAck} ms after its last data; nothing unacknowledged");

        if (info.Unacked > 0)
            return new(SilenceCause.Unknown,
                $"{Plural(info.Unacked, "segment")} in flight for less than an RTO ({Ms(rto)} ms) and no ACK since the peer's last data: too early to tell");

        return new(SilenceCause.Silent, $"nothing in flight and no ACK since the peer's last data {lastData} ms ago; the kernel cannot tell yet");
    }

    private static string Ms(double ms) => ms.ToString("F0", CultureInfo.InvariantCulture);

    private static string Plural(long n, string thing) => n == 1 ? $"1 {thing}" : $"{n} {thing}s";
}
