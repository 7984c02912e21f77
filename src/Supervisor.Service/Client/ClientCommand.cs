using System.Globalization;
using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Supervisor.Configuration;
using Supervisor.Hosting;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;

namespace Supervisor.Client;

/// <summary>
/// <c>Supervisor client --addr HOST:PORT [--interval 30s] [--timeout D] [--codec json-lines|binary] [--config FILE]</c> (DESIGN §6): the
/// source document's heartbeat client, supervised. It sends heartbeats, prints every heartbeat, response and
/// data frame it sees (one line each, stdout), sends each line typed on stdin as a data frame, and keeps going
/// across server restarts: disconnects and the reconnect backoff are printed too. Runs until SIGINT or SIGTERM
/// (exit 0). <c>--interval</c> without <c>--timeout</c> sets the timeout to three intervals (the source
/// document's 30 s / 90 s); other client keys come from <c>supervisor.client</c> in the <c>--config</c> file.
/// </summary>
internal static class ClientCommand
{
    public const string ClientName = "client";

    /// <summary>The options as typed (durations checked here, so each error names its option).</summary>
    public sealed record Arguments(string? Addr, string? Interval, string? Timeout, string? ConfigFile, string? Codec = null);

    public static async Task<int> RunAsync(Arguments args)
    {
        ClientSettings settings;
        try
        {
            settings = ParseSettings(args);
        }
        catch (Exception e) when (e is ConfigurationError or ArgumentException)
        {
            await Console.Error.WriteLineAsync($"supervisor: {e.Message}");
            return SupervisorProgram.ExitUsage;
        }

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = false, Args = Http.SupervisorHostBuilder.HostArgs });
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff ";
            console.UseUtcTimestamp = true;
        });
        builder.Logging.AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Services.AddSingleton(provider => new SupervisorMetrics(provider.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        builder.Services.AddAkka("supervisor-client", (akka, _) => akka
            .ConfigureLoggers(loggers =>
            {
                loggers.LogLevel = Akka.Event.LogLevel.WarningLevel;
                loggers.LogConfigOnStart = false;
                loggers.ClearLoggers();
                loggers.AddLoggerFactory();
            })
            .AddHeartbeatClient(ClientName, settings)
            .WithActors((system, registry) =>
            {
                var client = registry.Get<HeartbeatClient>();
                var printer = system.ActorOf(Props.Create(() => new ClientPrinter(Console.Out)), "printer");
                client.Tell(new ClientProtocol.Subscribe(printer));
            }));

        using var host = builder.Build();
        Console.WriteLine($"heartbeat client to {settings.Endpoint} every {settings.HeartbeatInterval.ToHocon()} (timeout {settings.HeartbeatTimeout.ToHocon()}, codec {settings.Codec.Name}); lines typed here are sent as data frames");
        await host.StartAsync();
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        var client = host.Services.GetRequiredService<ActorRegistry>().Get<HeartbeatClient>();
        _ = Task.Run(() => ForwardStandardInputAsync(client, lifetime.ApplicationStopping));
        await host.WaitForShutdownAsync();
        return SupervisorProgram.ExitOk;
    }

    /// <summary>The effective settings: <c>supervisor.client</c> of the layered config, then the options.</summary>
    public static ClientSettings ParseSettings(Arguments args)
    {
        var addr = args.Addr ?? throw new ArgumentException("bad arguments: --addr HOST:PORT is required");
        TimeSpan? interval = args.Interval is { } i ? Duration("--interval", i) : null;
        TimeSpan? timeout = args.Timeout is { } t ? Duration("--timeout", t) : null;

        var config = SupervisorConfig.Load(args.ConfigFile, null);
        var settings = ClientSettings.Read(config.GetConfig(ClientSettings.Path), ClientSettings.Path).WithEndpoint(addr, "--addr");
        if (interval is { } every)
            settings = settings with { HeartbeatInterval = every, HeartbeatTimeout = timeout ?? every * 3 };
        else if (timeout is { } silentFor)
            settings = settings with { HeartbeatTimeout = silentFor };
        if (args.Codec is { } codecName)
        {
            if (!FrameCodecs.TryGet(codecName, out var codec))
                throw new ArgumentException($"bad arguments: --codec {codecName} is not one of {string.Join(", ", FrameCodecs.Names)}");
            settings = settings with { Codec = codec };
        }
        if (settings.HeartbeatTimeout <= settings.HeartbeatInterval)
            throw new ConfigurationError("--timeout", $"{settings.HeartbeatTimeout.ToHocon()} must be greater than the interval {settings.HeartbeatInterval.ToHocon()}");
        return settings;
    }

    private static TimeSpan Duration(string option, string value)
    {
        TimeSpan parsed;
        try
        {
            parsed = ConfigurationFactory.ParseString($"d = \"{value}\"").GetTimeSpan("d", null, allowInfinite: false);
        }
        catch (Exception)
        {
            throw new ArgumentException($"bad arguments: {option} {value} is not a duration such as 30s or 200ms");
        }
        return parsed > TimeSpan.Zero ? parsed : throw new ArgumentException($"bad arguments: {option} {value} must be a positive duration");
    }

    private static async Task ForwardStandardInputAsync(IActorRef client, CancellationToken stopping)
    {
        try
        {
            while (await Console.In.ReadLineAsync(stopping) is { } line)
            {
                if (line.Length > 0) client.Tell(new ClientProtocol.Send(line));
            }
        }
        catch (OperationCanceledException)
        {
            // Shutting down.
        }
    }
}

/// <summary>Prints a client's events, one line each, like the source document's client (<c>收到心跳响应</c>, <c>收到数据</c>).</summary>
internal sealed class ClientPrinter : ReceiveActor
{
    public ClientPrinter(TextWriter output)
    {
        void Print(string text) => output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {text}");

        Receive<ClientProtocol.Connected>(e => Print($"connected to {e.Remote} from {e.Local}"));
        Receive<ClientProtocol.HeartbeatSent>(e => Print($"sent heartbeat{Seq(e.Seq)}"));
        Receive<ClientProtocol.HeartbeatAnswered>(e => Print($"heartbeat response{Seq(e.Seq)}{(e.RttMs is { } rtt ? $" rtt {rtt.ToString("0.00", CultureInfo.InvariantCulture)} ms" : "")}"));
        Receive<ClientProtocol.ServerPinged>(e => Print($"answered server ping{Seq(e.Seq)}"));
        Receive<ClientProtocol.FrameReceived>(e => Print(e.Frame.Type == FrameType.ErrorNotice ? $"error notice: {e.Frame.Data}" : $"data: {e.Frame.Data}"));
        Receive<ClientProtocol.StateChanged>(e =>
        {
            if (e.State == ClientState.Suspect) Print("server suspect: last heartbeat unanswered for an interval");
        });
        Receive<ClientProtocol.Disconnected>(e => Print($"disconnected: {e.Reason.ToWireName()} ({e.Detail})"));
        Receive<ClientProtocol.Reconnecting>(e => Print(
            $"reconnecting in {e.Delay.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture)} ms ({(e.AsServerAsked ? "when the server asked" : $"attempt {e.Attempt}")}){(e.LastError is null ? "" : $": {e.LastError}")}"));
        Receive<ClientProtocol.FrameDropped>(e => Print($"dropped while disconnected: {e.Data}"));
        ReceiveAny(_ => { });
    }

    private static string Seq(long? seq) => seq is { } s ? $" seq {s}" : "";
}
