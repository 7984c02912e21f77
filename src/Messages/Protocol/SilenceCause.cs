namespace Supervisor.Messages.Protocol;

/// <summary>
/// Why a silent peer went quiet, as the kernel's view of its socket (TCP_INFO) tells it: read when the connection
/// turns suspect and when it is closed with <c>heartbeat-timeout</c> (DESIGN §3, "Cause of death").
/// </summary>
public enum SilenceCause
{
    /// <summary>The peer's TCP stack still acknowledges (an ACK arrived after its last data), but its application says nothing.</summary>
    PeerHung,
    /// <summary>Our data, or our keep-alive probes, go unacknowledged: the path (or the peer's host) is gone.</summary>
    PathDead,
    /// <summary>Nothing in flight and no keep-alive answer since the peer's last data: the kernel cannot tell yet.</summary>
    Silent,
    /// <summary>No TCP_INFO here (another platform, a WebSocket without a socket), or evidence that contradicts itself.</summary>
    Unknown,
}

/// <summary>The silence causes' names and list.</summary>
public static class SilenceCauses
{
    /// <summary>Every cause, in declaration order (the rows of <c>closedByCause</c>, zeros included).</summary>
    public static IReadOnlyList<SilenceCause> All { get; } = Enum.GetValues<SilenceCause>();

    /// <summary>The name operators see in close details, logs, metrics (label <c>cause</c>) and the HTTP API, e.g. <c>peer-hung</c>.</summary>
    public static string ToWireName(this SilenceCause cause) => cause switch
    {
        SilenceCause.PeerHung => "peer-hung",
        SilenceCause.PathDead => "path-dead",
        SilenceCause.Silent => "silent",
        SilenceCause.Unknown => "unknown",
        _ => throw new ArgumentOutOfRangeException(nameof(cause), cause, null),
    };
}
