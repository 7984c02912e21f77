using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Supervisor.Configuration;
using Supervisor.Connections;
using Supervisor.Hosting;
using Supervisor.Http;
using Supervisor.Messages.Protocol;
using Supervisor.Registry;

namespace Supervisor.Tests.Support;

/// <summary>
/// The real service, in process, wired exactly as Program.cs wires it, on a loopback port the kernel picks.
/// </summary>
public sealed class TestService : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly BoundListeners _listeners;

    private TestService(IHost host, BoundListeners listeners, LogCapture logs)
    {
        _host = host;
        _listeners = listeners;
        Logs = logs;
        var registry = host.Services.GetRequiredService<ActorRegistry>();
        Registry = registry.Get<ConnectionRegistry>();
        Connections = registry.Get<ConnectionSupervisor>();
        System = host.Services.GetRequiredService<ActorSystem>();
        Monitor = registry.Get<Supervisor.Monitoring.MonitorActor>();
    }

    public IServiceProvider Services => _host.Services;
    public IActorRef Monitor { get; }

    public LogCapture Logs { get; }
    public IActorRef Registry { get; }
    public IActorRef Connections { get; }
    public ActorSystem System { get; }
    public int Port => _listeners.Endpoint("tcp").Port;
    public int PortOf(string listener) => _listeners.Endpoint(listener).Port;

    /// <summary>The bound port of the operator HTTP surface (forced to loopback port 0 in tests).</summary>
    public int HttpPort => _host.Services.GetService<OperatorEndpoints>()?.Http?.Port
        ?? throw new InvalidOperationException("supervisor.http is off in this test service");

    /// <summary>The bound port of the WebSocket listener (forced to loopback port 0 in tests).</summary>
    public int WebSocketPort => _host.Services.GetService<OperatorEndpoints>()?.WebSocket?.Port
        ?? throw new InvalidOperationException("supervisor.websocket is off in this test service");

    /// <summary><c>http://127.0.0.1:HttpPort/</c>.</summary>
    public Uri HttpBase => new($"http://127.0.0.1:{HttpPort}/");

    /// <summary>Stops the host (as SIGTERM would) without disposing it; <see cref="DisposeAsync"/> still runs.</summary>
    public Task StopAsync() => _host.StopAsync(TimeSpan.FromSeconds(10));

    /// <summary>
    /// Set to <c>sockets</c> (or <c>epoll</c>) to run every test service's TCP listeners on that transport
    /// (<c>tcp.transport</c>; unset, the default <c>auto</c>: epoll on Linux): how the socket-level test classes are run
    /// against .NET's socket engine on demand (docs/DESIGN.md, "The epoll transport"). Unset in CI.
    /// </summary>
    public const string TransportVariable = "SUPERVISOR_TEST_TCP_TRANSPORT";

    /// <param name="hocon">Operator HOCON layered over the loopback, port-0 test listener.</param>
    public static async Task<TestService> StartAsync(string hocon = "", string? profile = null, Action<IServiceCollection>? services = null)
    {
        var transport = Environment.GetEnvironmentVariable(TransportVariable) is { Length: > 0 } chosen
            ? $"supervisor.tcp.transport = {chosen}\n" : "";
        var config = SupervisorConfig.Build(
            transport
            + "supervisor.tcp { host = \"127.0.0.1\", port = 0 }\n"
            + "supervisor.http { host = \"127.0.0.1\", port = 0 }\n"
            + "supervisor.websocket { host = \"127.0.0.1\", port = 0 }\n"
            + hocon, profile);
        var settings = SupervisorConfig.Read(config);
        var listeners = BoundListeners.Bind(settings);
        var logs = new LogCapture();
        var builder = SupervisorProgram.CreateHostBuilder(config, settings, listeners);
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        services?.Invoke(builder.Services);
        var host = builder.Build();
        await host.StartAsync();
        return new TestService(host, listeners, logs);
    }

    public Task<RegistryProtocol.Stats> StatsAsync() =>
        Registry.Ask<RegistryProtocol.Stats>(RegistryProtocol.GetStats.Instance, TimeSpan.FromSeconds(5));

    public Task<RegistryProtocol.Connections> ConnectionsAsync() =>
        Registry.Ask<RegistryProtocol.Connections>(RegistryProtocol.GetConnections.Instance, TimeSpan.FromSeconds(5));

    /// <summary>Fresh status of one live connection, asked of the connection actor itself.</summary>
    public async Task<ConnectionStatus?> LiveStatusAsync(string id) =>
        (await Connections.Ask<RegistryProtocol.ConnectionFound>(new ConnectionCommands.GetStatus(id), TimeSpan.FromSeconds(5))).Status;

    /// <summary>Polls the registry until the condition holds; fails with the last stats otherwise.</summary>
    public async Task<RegistryProtocol.Stats> WaitForStatsAsync(Func<RegistryProtocol.Stats, bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        RegistryProtocol.Stats stats;
        while (!condition(stats = await StatsAsync()))
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"registry never reached the condition; last: active={stats.Active} accepted={stats.Accepted} closed={string.Join(",", stats.ClosedByReason.Select(kv => $"{kv.Key}={kv.Value}"))}");
            await Task.Delay(20);
        }
        return stats;
    }

    private bool _disposed;

    /// <summary>Stops the service; a second call (a test that stops it early, then leaves its scope) does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        await _host.StopAsync(TimeSpan.FromSeconds(10));
        _host.Dispose();
        _listeners.Dispose();
    }
}
