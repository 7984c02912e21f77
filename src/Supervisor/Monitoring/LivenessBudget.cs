using Supervisor.Configuration;

namespace Supervisor.Monitoring;

/// <summary>
/// The worst-case time each layer takes to find a dead peer on one listener, and the combinations of
/// settings that quietly defeat one another. Logged at start-up so a profile's real behaviour is visible.
/// </summary>
internal sealed record LivenessBudget(
    string Listener,
    string Profile,
    TimeSpan? Heartbeat,
    TimeSpan? KeepAlive,
    TimeSpan? UserTimeout,
    IReadOnlyList<string> Warnings)
{
    public static LivenessBudget Of(ListenerSettings listener)
    {
        var prefix = listener.Name == "tcp" ? "supervisor" : $"supervisor.listeners.{listener.Name}";
        var tcp = listener.Name == "tcp" ? "supervisor.tcp" : prefix;
        var hb = listener.Heartbeat;
        var ka = listener.KeepAlive;
        TimeSpan? heartbeat = hb.Enabled ? hb.Timeout : null;
        TimeSpan? keepAlive = ka.Enabled ? ka.Idle + ka.Interval * ka.Probes : null;
        var warnings = new List<string>();

        if (hb.Enabled && hb.Timeout < hb.Interval * 2)
            warnings.Add($"{prefix}.heartbeat.timeout = {hb.Timeout.ToHocon()} is under 2 x {prefix}.heartbeat.interval = {hb.Interval.ToHocon()}: one late or lost heartbeat closes a healthy peer");
        if (!hb.Enabled && !ka.Enabled && listener.KeepAlive.UserTimeout is null)
            warnings.Add($"{prefix}.heartbeat.enabled = off and {tcp}.keepalive.enabled = off: a peer that vanishes without FIN or RST is never detected");
        if (ka.UserTimeout is { } user && keepAlive is { } span && user < span)
            warnings.Add($"{tcp}.user-timeout = {user.ToHocon()} is shorter than the keep-alive span {span.ToHocon()} ({tcp}.keepalive idle + interval x probes): the user timeout also ends keep-alive probing early");
        if (hb.ServerPing && hb.Liveness == LivenessMode.HeartbeatOnly)
            warnings.Add($"{prefix}.heartbeat.server-ping = on with {prefix}.heartbeat.liveness = heartbeat-only: the server's own pings keep a peer alive that sends nothing else");
        if (hb.Enabled && keepAlive is { } kaSpan && kaSpan < hb.Timeout)
            warnings.Add($"{tcp}.keepalive gives up after {kaSpan.ToHocon()}, before {prefix}.heartbeat.timeout = {hb.Timeout.ToHocon()}: keepalive-failed will be reported for peers the heartbeat was meant to judge");
        if (hb.Enabled && hb.StarvationThreshold >= hb.Timeout - hb.Interval)
            warnings.Add($"{prefix}.heartbeat.starvation-threshold = {hb.StarvationThreshold.ToHocon()} is not below timeout - interval: a slow server may close peers it should have forgiven");

        return new LivenessBudget(listener.Name, listener.Profile, heartbeat, keepAlive, ka.UserTimeout, warnings);
    }

    public string Describe() =>
        $"Liveness budget of listener {Listener} (profile {Profile}): dead peer found by heartbeat within {Show(Heartbeat)}, " +
        $"by kernel keep-alive within {Show(KeepAlive)} (plus retransmission time for unacknowledged data), " +
        $"by TCP_USER_TIMEOUT within {Show(UserTimeout)} of unacknowledged data";

    private static string Show(TimeSpan? span) => span is { } s ? s.ToHocon() : "never (off)";
}
