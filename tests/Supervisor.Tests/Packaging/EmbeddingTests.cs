using System.Net.Http;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Supervisor.Connections;
using Supervisor.Hosting;
using Supervisor.Http;
using Supervisor.Messages.Wire;
using Supervisor.Probes;
using Supervisor.Simulation;
using Supervisor.Tests.Http;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Packaging;

/// <summary>
/// The library in an application's own ASP.NET Core host, as an embedder writes it (issue 13, points 4 and 7): its
/// actor system name, its loggers, one options object given to the core's embed call and to the operator package.
/// </summary>
[Collection(OperatorSurfaceCollection.Name)]
public sealed class EmbeddingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_embedder_must_get_supervision_the_hub_and_the_operator_surface_in_its_own_host_and_actor_system()
    {
        var closedPort = Client.ClientTestSupport.FreePort();
        var options = new ConnectionSupervisorOptions
        {
            Host = "127.0.0.1",
            Port = 0,
            HeartbeatInterval = TimeSpan.FromSeconds(1),
            HeartbeatTimeout = TimeSpan.FromSeconds(3),
            Hocon = $$"""
                supervisor.http { host = "127.0.0.1", port = 0 }
                supervisor.websocket { host = "127.0.0.1", port = 0 }
                supervisor.probes.gone { kind = tcp-connect, endpoint = "127.0.0.1:{{closedPort}}", interval = 200ms, timeout = 150ms, rise = 1, fall = 1 }
                """,
        };
        using var logged = new LogCapture();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders().AddProvider(logged);
        builder.Services.AddAkka("my-gateway", akka => akka.WithConnectionSupervisor(options).WithConnectionSupervisorProbes(options));
        builder.Services.AddConnectionSupervisorOperator(options);
        await using var app = builder.Build();
        await app.StartAsync();

        var system = app.Services.GetRequiredService<ActorSystem>();
        Assert.Equal("my-gateway", system.Name);
        var port = app.Services.GetRequiredService<BoundListeners>().Endpoint("tcp").Port;
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{app.Services.GetRequiredService<OperatorEndpoints>().Http!.Port}") };

        using var peer = await TestPeer.ConnectAsync(port);
        await peer.SendHeartbeatAsync(seq: 3);
        Assert.Equal(3, (await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(10)))!.Seq);

        // Pushed by id from outside any handler, through the actor system's hub.
        var id = await WaitForAsync(async () =>
        {
            var stats = await http.GetStringAsync("/api/connections");
            var at = stats.IndexOf("\"id\":\"", StringComparison.Ordinal);
            return at < 0 ? null : stats[(at + 6)..stats.IndexOf('"', at + 6)];
        });
        Assert.True(system.ConnectionHub().Send(id, new Frame(FrameType.Data, 1, "pushed")));
        Assert.Equal("pushed", (await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(10)))!.Data);

        // The operator surface over the same books: the API, the dashboard, /metrics.
        Assert.Contains("\"accepted\":1", await http.GetStringAsync("/api/stats"), StringComparison.Ordinal);
        Assert.Contains("<html", await http.GetStringAsync("/"), StringComparison.OrdinalIgnoreCase);
        var metrics = PrometheusText.Parse(await http.GetStringAsync("/metrics"));
        Assert.Equal(1, metrics.Sum("supervisor_connections_accepted_total"));

        // The probes package, on the same options: its probe on /api/probes, down (nothing listens there).
        await WaitForAsync(async () =>
        {
            var probes = await http.GetStringAsync("/api/probes");
            return probes.Contains("\"name\":\"gone\"", StringComparison.Ordinal) && probes.Contains("\"state\":\"down\"", StringComparison.Ordinal) ? probes : null;
        });

        // The application's own loggers got the supervisor's lines.
        Assert.Contains(logged.Lines, l => l.Message.Contains($"Connection {id} opened from", StringComparison.Ordinal));
        output.WriteLine($"{logged.Lines.Count} lines logged through the embedder's provider; connection {id}");
        await app.StopAsync();
    }

    [Fact]
    public async Task An_embedder_must_run_a_what_if_simulation_of_its_own_options_in_virtual_time()
    {
        var options = new ConnectionSupervisorOptions { HeartbeatInterval = TimeSpan.FromSeconds(1), HeartbeatTimeout = TimeSpan.FromSeconds(3) };
        var report = await SupervisorSimulation.RunAsync(options,
            [
                new PeerGroup(50, new PeerModel(TimeSpan.FromSeconds(1), Jitter: TimeSpan.FromMilliseconds(200))),
                new PeerGroup(5, new PeerModel(TimeSpan.FromSeconds(1), SilentAfter: TimeSpan.FromSeconds(30))),
            ],
            TimeSpan.FromMinutes(2));
        output.WriteLine(report.ToText());
        Assert.Equal(55, report.Peers);
        Assert.Equal(0, report.FalseDisconnects);
        Assert.Equal((5, 5), (report.DeadPeers, report.DeadPeersDetected));
        Assert.InRange(report.DetectionLatency.Max, 2_000, 3_200);
    }

    private static async Task<string> WaitForAsync(Func<Task<string?>> probe)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (await probe() is { } found) return found;
            await Task.Delay(50);
        }
        throw new TimeoutException("not seen within 10 s");
    }
}
