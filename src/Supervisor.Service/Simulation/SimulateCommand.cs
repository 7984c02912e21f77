using System.Globalization;
using Akka.Configuration;
using Supervisor.Configuration;
using Supervisor.Hosting;

namespace Supervisor.Simulation;

/// <summary>
/// <c>Supervisor simulate --profile NAME --peers N --loss P --jitter D --duration T [--silent F --silent-at T]
/// [--stall-at T --stall D] [--config FILE] [--seed S]</c>: a what-if run of a profile against simulated
/// peers in virtual time, printing false disconnects, detection latency and alerts. By default 1 % of the
/// peers die for good half-way through, so detection latency is always measured.
/// </summary>
internal static class SimulateCommand
{
    /// <summary>The options as typed (values checked here, so each error names its option).</summary>
    public sealed record Arguments(string? ConfigFile, string? Profile, string? Peers, string? Seed, string? Loss, string? Silent,
        string? Jitter, string? Duration, string? SilentAt, string? StallAt, string? Stall);

    public static async Task<int> RunAsync(Arguments args)
    {
        int peers, seed;
        double loss, silent;
        TimeSpan jitter, duration;
        TimeSpan? silentAt, stallAt, stall;
        SupervisorSettings settings;
        try
        {
            peers = args.Peers is { } p ? PositiveInt("--peers", p) : 1000;
            seed = args.Seed is { } s ? PositiveInt("--seed", s) : 1;
            loss = args.Loss is { } l ? Fraction("--loss", l) : 0;
            silent = args.Silent is { } f ? Fraction("--silent", f) : 0.01;
            jitter = args.Jitter is { } j ? Duration("--jitter", j, allowZero: true) : TimeSpan.Zero;
            duration = args.Duration is { } d ? Duration("--duration", d) : TimeSpan.FromMinutes(10);
            silentAt = args.SilentAt is { } sa ? Duration("--silent-at", sa, allowZero: true) : null;
            stallAt = args.StallAt is { } ta ? Duration("--stall-at", ta, allowZero: true) : null;
            stall = args.Stall is { } st ? Duration("--stall", st) : null;
            settings = SupervisorConfig.Read(SupervisorConfig.Load(args.ConfigFile, args.Profile));
        }
        catch (Exception e) when (e is ConfigurationError or ArgumentException)
        {
            await Console.Error.WriteLineAsync($"supervisor: {e.Message}");
            return SupervisorProgram.ExitUsage;
        }

        if (settings.Listeners.Count == 0)
        {
            await Console.Error.WriteLineAsync("supervisor: bad configuration: supervisor.tcp.enabled: no listener to simulate");
            return SupervisorProgram.ExitUsage;
        }
        var listener = settings.Listeners[0];
        var model = new PeerModel(listener.Heartbeat.Interval, jitter, loss);
        var dying = (int)Math.Round(peers * silent);
        var groups = new List<PeerGroup> { new(peers - dying, model) };
        if (dying > 0) groups.Add(new PeerGroup(dying, model with { SilentAfter = silentAt ?? duration / 2 }));
        var stalls = stallAt is { } at ? new[] { new ServerStall(at, stall ?? TimeSpan.FromSeconds(5)) } : [];

        Console.WriteLine($"simulating {peers} peers on listener '{listener.Name}' (profile {listener.Profile}: heartbeat {listener.Heartbeat.Interval.ToHocon()}/{listener.Heartbeat.Timeout.ToHocon()}), " +
            $"loss {loss:P1}, jitter {jitter.ToHocon()}, {duration} of virtual time");
        var report = await Simulation.RunAsync(new SimulationOptions(listener, settings.Monitor, groups, duration, Stalls: stalls, Seed: seed));
        Console.Write(report.ToText());
        return SupervisorProgram.ExitOk;
    }

    private static int PositiveInt(string option, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n : throw new ArgumentException($"bad arguments: {option} {value} is not a positive integer");

    private static double Fraction(string option, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var p) && p is >= 0 and <= 1
            ? p : throw new ArgumentException($"bad arguments: {option} {value} is not a fraction between 0 and 1");

    private static TimeSpan Duration(string option, string value, bool allowZero = false)
    {
        TimeSpan parsed;
        try
        {
            parsed = ConfigurationFactory.ParseString($"d = {value}").GetTimeSpan("d", null, allowInfinite: false);
        }
        catch (Exception)
        {
            throw new ArgumentException($"bad arguments: {option} {value} is not a duration such as 30s or 1h");
        }
        if (parsed < TimeSpan.Zero || (!allowZero && parsed == TimeSpan.Zero))
            throw new ArgumentException($"bad arguments: {option} {value} must be a positive duration");
        return parsed;
    }
}
