using System.CommandLine;
using Supervisor.Client;
using Supervisor.Simulation;

namespace Supervisor.Hosting;

/// <summary>
/// The executable's commands (DESIGN §6) on System.CommandLine: <c>--help</c> (also <c>-h</c> and the word
/// <c>help</c>) on every command, <c>--version</c>. A usage error is one stderr line and exit 2, as a bad
/// configuration is; help and version exit 0.
/// </summary>
internal static class SupervisorCommandLine
{
    public static async Task<int> InvokeAsync(string[] args)
    {
        // "Supervisor help" and "Supervisor help simulate" as people type them.
        if (args is ["help", .. var rest])
            args = [.. rest, "--help"];
        var root = Build();
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            await Console.Error.WriteLineAsync($"supervisor: bad arguments: {parsed.Errors[0].Message} (see --help)");
            return SupervisorProgram.ExitUsage;
        }
        // No termination handling of its own (it would end a SIGTERM with exit 143): the host's coordinated
        // shutdown answers SIGTERM and exits 0.
        return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }

    public static RootCommand Build()
    {
        var root = new RootCommand("Connection supervisor: heartbeats, dead-peer detection and alerts for long-lived TCP connections. " +
                                   "Without a command, runs the service.");
        AddRun(root, root);
        var run = new Command("run", "Run the service (the default command).");
        AddRun(run, root);
        root.Subcommands.Add(run);
        root.Subcommands.Add(Simulate());
        root.Subcommands.Add(Status());
        root.Subcommands.Add(Client());
        return root;
    }

    private static Option<string> ConfigOption(string description) => new("--config") { Description = description, HelpName = "FILE" };

    private static Option<string> ProfileOption() => new("--profile")
    {
        Description = "Scenario profile under the file: web-service, realtime-game, iot-device, database-connection.",
        HelpName = "NAME",
    };

    private static void AddRun(Command command, RootCommand root)
    {
        var config = ConfigOption("HOCON file layered over the profile and the defaults (hocon/supervisor.conf documents every key).");
        var profile = ProfileOption();
        command.Options.Add(config);
        command.Options.Add(profile);
        command.SetAction((result, _) => SupervisorProgram.RunServiceAsync(new RunArguments(result.GetValue(config), result.GetValue(profile))));
    }

    private static Command Simulate()
    {
        var command = new Command("simulate", "What-if run of a profile against simulated peers in virtual time: false disconnects, detection latency, alerts.");
        var config = ConfigOption("HOCON file, as for the service.");
        var profile = ProfileOption();
        var peers = Value("--peers", "N", "Simulated peers (default 1000).");
        var loss = Value("--loss", "P", "Fraction of heartbeats lost, 0-1 (default 0).");
        var jitter = Value("--jitter", "D", "Heartbeat jitter, a duration such as 500ms (default 0).");
        var duration = Value("--duration", "T", "Virtual time to run, e.g. 1h (default 10m).");
        var silent = Value("--silent", "F", "Fraction of peers that die for good (default 0.01).");
        var silentAt = Value("--silent-at", "T", "When they die (default half-way).");
        var stallAt = Value("--stall-at", "T", "When the server stalls (default: no stall).");
        var stall = Value("--stall", "D", "How long the server stalls (default 5s).");
        var seed = Value("--seed", "S", "Random seed, a positive integer (default 1).");
        var detector = Value("--detector", "NAME", "fixed, phi, or compare (both side by side); default the profile's heartbeat.detector.");
        var fixedTimeouts = Value("--fixed-timeouts", "T1,T2", "With compare: the fixed timeouts to try (default the profile's heartbeat.timeout).");
        var jittery = Value("--jittery", "F", "Fraction of peers with a poor link (default 0).");
        var jitteryJitter = Value("--jittery-jitter", "D", "Their jitter (default half the interval).");
        var handover = Value("--handover", "F", "Fraction of mobile peers that go through handovers (default 0).");
        var handoverEvery = Value("--handover-every", "T", "Mean time between a mobile peer's handovers (default 5m).");
        var handoverLength = Value("--handover-length", "D1-D2", "How long a handover holds the link up (default 10s-20s).");
        foreach (var option in new[] { config, profile, peers, loss, jitter, duration, silent, silentAt, stallAt, stall, seed, detector,
                     fixedTimeouts, jittery, jitteryJitter, handover, handoverEvery, handoverLength })
            command.Options.Add(option);
        command.SetAction((result, _) => SimulateCommand.RunAsync(new SimulateCommand.Arguments(
            result.GetValue(config), result.GetValue(profile), result.GetValue(peers), result.GetValue(seed), result.GetValue(loss),
            result.GetValue(silent), result.GetValue(jitter), result.GetValue(duration), result.GetValue(silentAt),
            result.GetValue(stallAt), result.GetValue(stall))
        {
            Detector = result.GetValue(detector),
            FixedTimeouts = result.GetValue(fixedTimeouts),
            Jittery = result.GetValue(jittery),
            JitteryJitter = result.GetValue(jitteryJitter),
            Handover = result.GetValue(handover),
            HandoverEvery = result.GetValue(handoverEvery),
            HandoverLength = result.GetValue(handoverLength),
        }));
        return command;
    }

    private static Command Status()
    {
        var command = new Command("status", "Totals, suspect connections, probes and alerts of a running service, from its HTTP API.");
        var url = Value("--url", "URL", $"The service's API (default {StatusCommand.DefaultUrl}).");
        var config = ConfigOption("Find the API in the service's own configuration file instead of --url.");
        var json = new Option<bool>("--json") { Description = "One JSON object instead of tables." };
        var watch = new Option<bool>("--watch") { Description = $"Print again every {StatusCommand.WatchEvery.TotalSeconds:0} s until Ctrl+C." };
        foreach (var option in new Option[] { url, config, json, watch }) command.Options.Add(option);
        command.SetAction((result, _) => StatusCommand.RunAsync(new StatusCommand.Arguments(
            result.GetValue(url), result.GetValue(config), result.GetValue(json), result.GetValue(watch))));
        return command;
    }

    private static Command Client()
    {
        var command = new Command("client", "The source document's heartbeat client, supervised: prints what it receives, sends typed lines as data, survives restarts.");
        // Required, but checked by the command, whose message names the form the value takes.
        var addr = Value("--addr", "HOST:PORT", "The server to connect to (required).");
        var interval = Value("--interval", "D", "Heartbeat interval (default supervisor.client.heartbeat.interval, 30s).");
        var timeout = Value("--timeout", "D", "Silence before the server is dropped (default three intervals).");
        var codec = Value("--codec", "NAME", "Wire format, as the server listener's codec: json-lines or binary (default supervisor.client.codec, json-lines).");
        var config = ConfigOption("HOCON file whose supervisor.client keys apply.");
        foreach (var option in new[] { addr, interval, timeout, codec, config }) command.Options.Add(option);
        command.SetAction((result, _) => ClientCommand.RunAsync(new ClientCommand.Arguments(
            result.GetValue(addr), result.GetValue(interval), result.GetValue(timeout), result.GetValue(config), result.GetValue(codec))));
        return command;
    }

    /// <summary>An option taking one value, checked by its command so that its error names it.</summary>
    private static Option<string> Value(string name, string helpName, string description) =>
        new(name) { Description = description, HelpName = helpName };
}
