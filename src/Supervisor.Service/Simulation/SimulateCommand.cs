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
        string? Jitter, string? Duration, string? SilentAt, string? StallAt, string? Stall)
    {
        /// <summary>fixed, phi, or compare (both side by side); default: the listener's heartbeat.detector.</summary>
        public string? Detector { get; init; }
        /// <summary>For compare: the fixed timeouts to try, comma-separated; default the listener's heartbeat.timeout.</summary>
        public string? FixedTimeouts { get; init; }
        /// <summary>Fraction of the peers that are jittery, and their jitter.</summary>
        public string? Jittery { get; init; }
        public string? JitteryJitter { get; init; }
        /// <summary>Fraction of the peers that go through handovers, how often, and how long (e.g. 10s-20s).</summary>
        public string? Handover { get; init; }
        public string? HandoverEvery { get; init; }
        public string? HandoverLength { get; init; }
    }

    public static async Task<int> RunAsync(Arguments args)
    {
        int peers, seed;
        double loss, silent, jittery, handover;
        TimeSpan jitter, duration, handoverEvery, handoverShortest, handoverLongest;
        TimeSpan? silentAt, stallAt, stall, jitteryJitter;
        IReadOnlyList<TimeSpan> fixedTimeouts;
        string detector;
        SupervisorSettings settings;
        try
        {
            detector = args.Detector ?? "configured";
            if (detector is not ("configured" or "fixed" or "phi" or "compare"))
                throw new ArgumentException($"bad arguments: --detector {detector} is not one of fixed, phi, compare");
            fixedTimeouts = args.FixedTimeouts is { } ft ? ft.Split(',', StringSplitOptions.TrimEntries).Select(t => Duration("--fixed-timeouts", t)).ToArray() : [];
            jittery = args.Jittery is { } jf ? Fraction("--jittery", jf) : 0;
            jitteryJitter = args.JitteryJitter is { } jj ? Duration("--jittery-jitter", jj) : null;
            handover = args.Handover is { } hf ? Fraction("--handover", hf) : 0;
            handoverEvery = args.HandoverEvery is { } he ? Duration("--handover-every", he) : TimeSpan.FromMinutes(5);
            (handoverShortest, handoverLongest) = args.HandoverLength is { } hl ? Range("--handover-length", hl) : (TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(20));
            if (jittery + handover > 1)
                throw new ArgumentException($"bad arguments: --jittery {jittery} and --handover {handover} add up to more than 1");
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
        if (detector is "fixed" or "phi")
            listener = listener with { Heartbeat = listener.Heartbeat with { Detector = detector == "phi" ? SilenceDetector.Phi : SilenceDetector.Fixed } };
        var steady = new PeerModel(listener.Heartbeat.Interval, jitter, loss);
        // Each population loses its share of peers half-way (or at --silent-at), so every kind of peer dies.
        var groups = new List<PeerGroup>();
        void Population(int count, PeerModel model)
        {
            var dying = (int)Math.Round(count * silent);
            if (count - dying > 0) groups.Add(new PeerGroup(count - dying, model));
            if (dying > 0) groups.Add(new PeerGroup(dying, model with { SilentAfter = silentAt ?? duration / 2 }));
        }
        var jitteryCount = (int)Math.Round(peers * jittery);
        var handoverCount = (int)Math.Round(peers * handover);
        Population(peers - jitteryCount - handoverCount, steady);
        Population(jitteryCount, steady with { Jitter = jitteryJitter ?? listener.Heartbeat.Interval / 2 });
        Population(handoverCount, steady with { Handovers = new Handovers(handoverEvery, handoverShortest, handoverLongest) });
        var stalls = stallAt is { } at ? new[] { new ServerStall(at, stall ?? TimeSpan.FromSeconds(5)) } : [];

        Console.WriteLine($"simulating {peers} peers on listener '{listener.Name}' (profile {listener.Profile}: heartbeat {listener.Heartbeat.Interval.ToHocon()}/{listener.Heartbeat.Timeout.ToHocon()}), " +
            $"loss {loss:P1}, jitter {jitter.ToHocon()}" +
            (jitteryCount > 0 ? $", {jitteryCount} jittery ({(jitteryJitter ?? listener.Heartbeat.Interval / 2).ToHocon()})" : "") +
            (handoverCount > 0 ? $", {handoverCount} with handovers ({handoverShortest.ToHocon()}-{handoverLongest.ToHocon()} about every {handoverEvery.ToHocon()})" : "") +
            $", {duration} of virtual time");
        try
        {
            if (detector == "compare")
            {
                var comparison = await Simulation.CompareAsync(listener, settings.Monitor, groups, duration, fixedTimeouts, seed, logging: null);
                Console.Write(comparison.ToText());
                return SupervisorProgram.ExitOk;
            }
        }
        catch (ConfigurationError e)
        {
            await Console.Error.WriteLineAsync($"supervisor: {e.Message}");
            return SupervisorProgram.ExitUsage;
        }
        var report = await Simulation.RunAsync(new SimulationOptions(listener, settings.Monitor, groups, duration, Stalls: stalls, Seed: seed));
        Console.Write(report.ToText());
        return SupervisorProgram.ExitOk;
    }

    private static (TimeSpan Shortest, TimeSpan Longest) Range(string option, string value)
    {
        var parts = value.Split('-', 2);
        var shortest = Duration(option, parts[0]);
        var longest = parts.Length == 2 ? Duration(option, parts[1]) : shortest;
        return longest >= shortest ? (shortest, longest) : throw new ArgumentException($"bad arguments: {option} {value} ends before it starts");
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
