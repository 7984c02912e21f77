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
public static class SimulateCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        string? configFile = null, profile = null;
        int peers = 1000, seed = 1;
        double loss = 0, silent = 0.01;
        TimeSpan jitter = TimeSpan.Zero, duration = TimeSpan.FromMinutes(10);
        TimeSpan? silentAt = null;
        TimeSpan? stallAt = null, stall = null;
        SupervisorSettings settings;
        try
        {
            for (var i = 0; i < args.Length; i++)
            {
                var option = args[i];
                var value = RunArguments.Value(args, ++i, option);
                switch (option)
                {
                    case "--config": configFile = value; break;
                    case "--profile": profile = value; break;
                    case "--peers": peers = PositiveInt(option, value); break;
                    case "--seed": seed = PositiveInt(option, value); break;
                    case "--loss": loss = Fraction(option, value); break;
                    case "--silent": silent = Fraction(option, value); break;
                    case "--jitter": jitter = Duration(option, value, allowZero: true); break;
                    case "--duration": duration = Duration(option, value); break;
                    case "--silent-at": silentAt = Duration(option, value, allowZero: true); break;
                    case "--stall-at": stallAt = Duration(option, value, allowZero: true); break;
                    case "--stall": stall = Duration(option, value); break;
                    default:
                        throw new ArgumentException($"bad arguments: unknown option '{option}' (known: --config, --profile, --peers, --loss, --jitter, --duration, --silent, --silent-at, --stall-at, --stall, --seed)");
                }
            }
            settings = SupervisorConfig.Read(SupervisorConfig.Load(configFile, profile));
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
