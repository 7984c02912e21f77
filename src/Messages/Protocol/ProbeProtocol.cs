namespace Supervisor.Messages.Protocol;

/// <summary>A dependency probe's verdict, with HAProxy's rise/fall hysteresis (DESIGN §4).</summary>
public enum ProbeState
{
    /// <summary>Not yet <c>rise</c> successes nor <c>fall</c> failures in a row since start.</summary>
    Unknown,
    /// <summary><c>rise</c> checks in a row succeeded; it stays up until <c>fall</c> checks in a row fail.</summary>
    Up,
    /// <summary><c>fall</c> checks in a row failed; it stays down (and the monitor's <c>probe-down:NAME</c> alert stands) until <c>rise</c> checks in a row succeed.</summary>
    Down,
}

/// <summary>The questions the probes actor accepts (<see cref="ProbeProtocol"/>).</summary>
public interface IProbeMessage;

/// <summary>Outbound dependency probes (DESIGN §4, §5 <c>GET /api/probes</c>).</summary>
public static class ProbeProtocol
{
    /// <summary>Answered with <see cref="Probes"/>.</summary>
    public sealed record GetProbes : IProbeMessage
    {
        /// <summary>The message's one instance; it carries nothing.</summary>
        public static GetProbes Instance { get; } = new();
    }

    /// <summary>Every configured probe, by name.</summary>
    public sealed record Probes(IReadOnlyList<ProbeStatus> Items);

    /// <summary>One probe as <c>GET /api/probes</c> shows it.</summary>
    /// <param name="Name">The probe's name in configuration (<c>supervisor.probes.NAME</c>).</param>
    /// <param name="Kind"><c>redis</c>, <c>tcp-connect</c> or <c>http-get</c>.</param>
    /// <param name="Endpoint"><c>host:port</c>, or the URL of an http-get probe.</param>
    /// <param name="State">Unknown, up or down.</param>
    /// <param name="LastLatencyMs">Duration of the last successful check, null before the first one.</param>
    /// <param name="ConsecutiveFailures">Failed checks in a row up to the last one; 0 after a success.</param>
    /// <param name="ConsecutiveSuccesses">Successful checks in a row up to the last one; 0 after a failure.</param>
    /// <param name="LastError">What the last failed check said; null after a success.</param>
    /// <param name="LastCheckAt">When the last check finished; null before the first.</param>
    /// <param name="StateSince">When the probe last changed state (became up or down); null while it has stayed unknown.</param>
    /// <param name="Checks">Checks finished since start.</param>
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
    /// <param name="Status">The probe after the change; its <c>State</c> is the new state.</param>
    /// <param name="Previous">The state it left.</param>
    public sealed record ProbeStateChanged(ProbeStatus Status, ProbeState Previous);
}

/// <summary>Helpers over <see cref="ProbeState"/>.</summary>
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
