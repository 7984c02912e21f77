using Akka.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Supervisor.Configuration;
using Supervisor.Http;

namespace Supervisor.Hosting;

/// <summary>The command line (DESIGN §6). Exit codes: 0 done, 2 bad arguments or configuration, 1 anything else.</summary>
internal static class SupervisorProgram
{
    public const int ExitOk = 0;
    public const int ExitFailure = 1;
    public const int ExitUsage = 2;

    /// <summary>Runs the command line (<see cref="SupervisorCommandLine"/>): the service by default, or a named command.</summary>
    public static Task<int> RunAsync(string[] args) => SupervisorCommandLine.InvokeAsync(args);

    internal static async Task<int> RunServiceAsync(RunArguments arguments)
    {
        Config config;
        SupervisorSettings settings;
        try
        {
            config = SupervisorConfig.Load(arguments.ConfigFile, arguments.Profile);
            settings = SupervisorConfig.Read(config);
            OperatorConfig.Read(config, settings);
        }
        catch (Exception e) when (e is ConfigurationError or ArgumentException)
        {
            await Console.Error.WriteLineAsync($"supervisor: {e.Message}");
            return ExitUsage;
        }

        // Before anything else opens a descriptor: the soft limit up to the hard one, as Go's runtime does.
        var descriptorLimit = FileDescriptorLimits.RaiseSoftLimit();
        var socketCompletions = Transport.SocketCompletions.Apply(settings);
        BoundListeners listeners;
        try
        {
            listeners = BoundListeners.Bind(settings);
        }
        catch (ListenerBindError e)
        {
            await Console.Error.WriteLineAsync($"supervisor: {e.Message}");
            return ExitFailure;
        }

        using (listeners)
        {
            using var host = CreateHostBuilder(config, settings, listeners).Build();
            var log = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Supervisor");
            log.LogInformation("{SocketCompletions}", socketCompletions);
            var operatorSettings = host.Services.GetService<OperatorSettings>();
            try
            {
                await host.StartAsync();
                await StartupWarmUp.RunAsync(host.Services.GetService<OperatorEndpoints>()?.Http, log, CancellationToken.None);
                WarnOfDescriptors(log, descriptorLimit, settings, operatorSettings);
                await host.WaitForShutdownAsync();
                if (settings.Cluster.Enabled && ClusterFeature.DownedExplanation(host.Services) is { } downed)
                {
                    await Console.Error.WriteLineAsync($"supervisor: {downed}");
                    return ExitFailure;
                }
            }
            catch (IOException e) when (e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException or System.Net.Sockets.SocketException)
            {
                // Kestrel binds the HTTP and WebSocket ports when the host starts: a taken port ends here.
                await Console.Error.WriteLineAsync($"supervisor: {e.Message}");
                return ExitFailure;
            }
        }
        return ExitOk;
    }

    /// <summary>The descriptor limit in force, and one warning when the listeners' max-connections cannot fit under it.</summary>
    private static void WarnOfDescriptors(ILogger log, FileDescriptorLimits.Outcome limit, SupervisorSettings settings, OperatorSettings? operatorSettings)
    {
        var open = FileDescriptorLimits.CountOpen();
        log.LogInformation("{Limit}; {Open} open once started", limit, open?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?");
        if (limit.Soft > 0 && open is { } openNow
            && FileDescriptorLimits.CapacityWarning(FileDescriptorLimits.ConnectionHolders(settings,
                operatorSettings is { WebSocket.Enabled: true } op ? (OperatorEndpoints.WebSocketName, op.WebSocket.Listener.MaxConnections) : null), limit.Soft, openNow) is { } warning)
            log.LogWarning("{Warning}", warning);
    }

    /// <summary>
    /// Logging as the service ships it: one line per event with a UTC timestamp; ASP.NET Core's per-request
    /// lines (five or six Information lines per HTTP request) only from Warning up.
    /// </summary>
    public static IReadOnlyDictionary<string, string?> LoggingDefaults { get; } = new Dictionary<string, string?>
    {
        ["Logging:LogLevel:Default"] = "Information",
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        ["Logging:Console:FormatterName"] = "simple",
        ["Logging:Console:FormatterOptions:SingleLine"] = "true",
        ["Logging:Console:FormatterOptions:TimestampFormat"] = "yyyy-MM-ddTHH:mm:ss.fff ",
        ["Logging:Console:FormatterOptions:UseUtcTimestamp"] = "true",
    };

    /// <summary>
    /// The host of the service, without running it; tests build theirs here too. A web application (Kestrel in
    /// the same host) when <c>supervisor.http</c> or <c>supervisor.websocket</c> is on, else a plain generic host.
    /// </summary>
    public static SupervisorHostBuilder CreateHostBuilder(Config config, SupervisorSettings settings, BoundListeners listeners)
    {
        var builder = SupervisorHostBuilder.Create(OperatorConfig.Read(config, settings).NeedsWebServer);
        builder.Services.AddSystemd();
        builder.Services.Configure<HostOptions>(options => options.ShutdownTimeout = settings.ShutdownCloseTimeout + TimeSpan.FromSeconds(1));
        // Defaults under everything the operator sets (appsettings.json, Logging__... variables): the standard
        // Logging:Console:FormatterName = json works, and so does any level.
        builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource { InitialData = LoggingDefaults });
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole();
        builder.Services.AddSupervisorService(config, settings, listeners);
        return builder;
    }
}

/// <summary>The options of <c>Supervisor [run] [--config FILE] [--profile NAME]</c>.</summary>
internal sealed record RunArguments(string? ConfigFile, string? Profile);
