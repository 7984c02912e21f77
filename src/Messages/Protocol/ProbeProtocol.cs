namespace Supervisor.Messages.Protocol;

public enum ProbeState
{
    /// <summary>Not yet <c>rise</c> successes nor <c>fall</c> failures in a row since start.</summary>
    Unknown,
    Up,
    Down,
}

public interface IProbeMessage;

/// <summary>Outbound dependency probes (DESIGN §4, §5 <c>GET /api/probes</c>).</summary>
public static class ProbeProtocol
{
    /// <summary>Answered with <see cref="Probes"/>.</summary>
    public sealed record GetProbes : IProbeMessage
    {
        public static GetProbes Instance { get; } = new();
    }

    /// <summary>Every configured probe, by name.</summary>
    public sealed record Probes(IReadOnlyList<ProbeStatus> Items);

    /// <summary>One probe as <c>GET /api/probes</c> shows it.</summary>
    /// <param name="Kind"><c>redis</c>, <c>tcp-connect</c> or <c>http-get</c>.</param>
    /// <param name="Endpoint"><c>host:port</c>, or the URL of an http-get probe.</param>
    /// <param name="LastLatencyMs">Duration of the last successful check, null before the first one.</param>
    /// <param name="LastError">What the last failed check said; null after a success.</param>
    /// <param name="Details">Kind-specific figures of the last check, e.g. Redis connection statistics.</param>
    public sealed record ProbeStatus(
        string Name,
        string Kind,
        string Endpoint,
        ProbeState State,
        double? LastLatencyMs,
        int ConsecutiveFailures,
        int ConsecutiveSuccesses,
        string? LastError,
        DateTimeOffset? LastCheckAt,
        DateTimeOffset? StateSince,
        long Checks,
        IReadOnlyDictionary<string, string> Details);

    /// <summary>Published on the EventStream when a probe's state changes (unknown, up, down).</summary>
    public sealed record ProbeStateChanged(ProbeStatus Status, ProbeState Previous);
}

public static class ProbeStates
{
    /// <summary>The name operators see: <c>unknown</c>, <c>up</c>, <c>down</c>.</summary>
    public static string ToWireName(this ProbeState state) => state switch
    {
        ProbeState.Unknown => "unknown",
        ProbeState.Up => "up",
        ProbeState.Down => "down",
        _ => throw new ArgumentOutOfRangeException(nameof(state), state, null),
    };
}
