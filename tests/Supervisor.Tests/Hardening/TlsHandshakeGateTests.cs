using System.Net;
using System.Net.Sockets;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Xunit.Abstractions;
using static Supervisor.Tests.Hardening.TransportChecks;

namespace Supervisor.Tests.Hardening;

/// <summary>
/// <c>tcp.tls.max-handshakes-in-progress</c>: handshakes beyond the limit wait, oldest first, within their handshake
/// timeout; a peer that leaves while it waits is let go without a handshake.
/// </summary>
public sealed class TlsHandshakeGateTests(ITestOutputHelper output) : IDisposable
{
    private readonly TestCertificates _certificates = new();

    private Task<TestService> StartAsync() =>
        TestService.StartAsync(_certificates.Hocon("supervisor.tcp.tls") + "\nsupervisor.tcp.tls.max-handshakes-in-progress = 1");

    /// <summary>A handshake begun and stalled (it holds its place in the gate once it has one).</summary>
    private static async Task<Socket> StallAsync(TestService service, int active)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, service.Port);
        await socket.SendAsync(PartialClientHello, SocketFlags.None);
        await service.WaitForStatsAsync(s => s.Active == active);
        return socket;
    }

    [Fact]
    public async Task With_one_handshake_in_progress_allowed_the_next_must_wait_for_it_and_then_be_served()
    {
        await using var service = await StartAsync();
        var staller = await StallAsync(service, active: 1);
        await Task.Delay(100); // its handshake has the gate

        var second = ConnectTlsAsync(service.Port, _certificates);
        var first = await Task.WhenAny(second, Task.Delay(TimeSpan.FromMilliseconds(700)));
        Assert.NotSame(second, first); // still waiting for the gate

        Reset(staller);
        var (socket, tls) = await second.WaitAsync(TimeSpan.FromSeconds(10));
        using (socket)
        await using (tls)
        {
            await tls.WriteAsync("{\"type\":0,\"timestamp\":1,\"seq\":7}\n"u8.ToArray());
            Assert.True(await tls.ReadAsync(new byte[256]) > 0);
        }
        var stats = await service.WaitForStatsAsync(s => s.Closed(CloseReason.PeerReset) == 1);
        output.WriteLine(string.Join(", ", stats.ClosedByReason.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key}={kv.Value}")));
    }

    [Fact]
    public async Task A_peer_that_leaves_while_its_handshake_waits_must_be_closed_as_peer_closed_without_a_handshake()
    {
        await using var service = await StartAsync();
        var staller = await StallAsync(service, active: 1);
        await Task.Delay(100);
        // It sent the start of its hello and gave up (FIN) while waiting.
        var leaver = await StallAsync(service, active: 2);
        leaver.Shutdown(SocketShutdown.Send);
        await Task.Delay(200);

        Reset(staller);
        var stats = await service.WaitForStatsAsync(s => s.Closed(CloseReason.PeerClosed) == 1 && s.Closed(CloseReason.PeerReset) == 1 && s.Active == 0);
        output.WriteLine(string.Join(", ", stats.ClosedByReason.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.Contains(service.Logs.Lines, l => l.Message.Contains(" closed: peer-closed (peer left before its TLS handshake began", StringComparison.Ordinal));
        // The server sent it nothing (no ServerHello), then closed.
        var buffer = new byte[256];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        Assert.Equal(0, await leaver.ReceiveAsync(buffer, SocketFlags.None, cts.Token));
        leaver.Dispose();
        await AssertNoCloseWaitAsync(service.Port);
    }

    [Fact]
    public void The_handshake_limit_must_be_off_by_default_auto_must_be_128_a_core_a_number_must_be_read_per_listener_and_0_must_name_its_key()
    {
        static Supervisor.Configuration.SupervisorSettings Read(string hocon) =>
            Supervisor.Configuration.SupervisorConfig.Read(Supervisor.Configuration.SupervisorConfig.Build(hocon, null));
        var settings = Read("""
            supervisor.listeners.edge { port = 9001, tls.max-handshakes-in-progress = auto }
            supervisor.listeners.slow { port = 9002, tls.max-handshakes-in-progress = 5000 }
            """);
        Assert.Null(settings.Listeners.Single(l => l.Name == "tcp").TlsMaxHandshakesInProgress);
        Assert.Null(settings.Listeners.Single(l => l.Name == "tcp").TlsHandshakeGate);
        Assert.Equal(128 * Environment.ProcessorCount, settings.Listeners.Single(l => l.Name == "edge").TlsMaxHandshakesInProgress);
        Assert.Equal(5000, settings.Listeners.Single(l => l.Name == "slow").TlsMaxHandshakesInProgress);
        Assert.Same(settings.Listeners.Single(l => l.Name == "slow").TlsHandshakeGate, settings.Listeners.Single(l => l.Name == "slow").TlsHandshakeGate);
        var error = Assert.Throws<Supervisor.Configuration.ConfigurationError>(() => Read("supervisor.tcp.tls.max-handshakes-in-progress = 0"));
        Assert.Equal("supervisor.tcp.tls.max-handshakes-in-progress", error.Key);
    }

    public void Dispose() => _certificates.Dispose();
}
