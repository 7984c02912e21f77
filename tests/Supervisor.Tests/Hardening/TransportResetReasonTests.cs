using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Xunit.Abstractions;
using static Supervisor.Tests.Hardening.TransportChecks;

namespace Supervisor.Tests.Hardening;

/// <summary>
/// Close reasons that tell the truth (issue 12): a peer's RST is peer-reset wherever it lands (the TLS
/// handshake, a read, a send), never protocol-error or write-failed; a stalled TLS handshake ends at
/// <c>tcp.tls.handshake-timeout</c>.
/// </summary>
public sealed class TransportResetReasonTests(ITestOutputHelper output) : IDisposable
{
    private readonly TestCertificates _certificates = new();

    [Fact]
    public async Task A_reset_during_the_tls_handshake_must_count_as_peer_reset_not_protocol_error()
    {
        await using var service = await TestService.StartAsync(_certificates.Hocon("supervisor.tcp.tls"));
        const int peers = 20;
        for (var i = 0; i < peers; i++)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, service.Port);
            await socket.SendAsync(PartialClientHello, SocketFlags.None);
            // Let the server's handshake read the partial record and wait for the rest.
            await service.WaitForStatsAsync(s => s.Active == 1);
            await Task.Delay(50);
            Reset(socket);
            await service.WaitForStatsAsync(s => s.Active == 0);
        }
        var stats = await service.WaitForStatsAsync(s => s.ClosedByReason.Values.Sum() == peers);
        output.WriteLine(string.Join(", ", stats.ClosedByReason.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.Equal(peers, stats.Closed(CloseReason.PeerReset));
        Assert.Equal(0, stats.Closed(CloseReason.ProtocolError));
        Assert.Contains(service.Logs.Lines, l => l.Message.Contains(" closed: peer-reset (connection reset by peer)", StringComparison.Ordinal));
        await AssertNoCloseWaitAsync(service.Port);
        await AssertRegistryRowsAsync(service, 0);
    }

    [Fact]
    public async Task A_reset_right_after_a_frame_must_count_as_peer_reset_never_write_failed()
    {
        await using var service = await TestService.StartAsync("supervisor.tcp.limits.max-connections-per-address = 1000");
        using var bystander = await TestPeer.ConnectAsync(service.Port);
        await AssertAnsweredAsync(bystander, 1);
        const int peers = 300;
        await Parallel.ForAsync(0, peers, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (_, _) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(IPAddress.Loopback, service.Port);
            await socket.SendAsync("{\"type\":0,\"timestamp\":1,\"seq\":1}\n"u8.ToArray(), SocketFlags.None);
            Reset(socket);
        });
        var stats = await service.WaitForStatsAsync(s => s.ClosedByReason.Values.Sum() == peers, TimeSpan.FromSeconds(30));
        output.WriteLine(string.Join(", ", stats.ClosedByReason.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.Equal(0, stats.Closed(CloseReason.WriteFailed));
        Assert.Equal(peers, stats.Closed(CloseReason.PeerReset));
        await AssertRegistryRowsAsync(service, 1);
        await AssertNoCloseWaitAsync(service.Port);
        await AssertAnsweredAsync(bystander, 2);
    }

    [Fact]
    public async Task A_reset_right_after_a_frame_over_tls_must_count_as_peer_reset_never_write_failed()
    {
        await using var service = await TestService.StartAsync(_certificates.Hocon("supervisor.tcp.tls"));
        const int peers = 30;
        for (var i = 0; i < peers; i++)
        {
            var (socket, tls) = await ConnectTlsAsync(service.Port, _certificates);
            await tls.WriteAsync("{\"type\":0,\"timestamp\":1,\"seq\":1}\n"u8.ToArray());
            Reset(socket);
        }
        var stats = await service.WaitForStatsAsync(s => s.ClosedByReason.Values.Sum() == peers, TimeSpan.FromSeconds(30));
        output.WriteLine(string.Join(", ", stats.ClosedByReason.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.Equal(0, stats.Closed(CloseReason.WriteFailed));
        Assert.Equal(peers, stats.Closed(CloseReason.PeerReset));
        await AssertNoCloseWaitAsync(service.Port);
    }

    [Fact]
    public async Task A_reset_of_an_idle_tls_connection_must_count_as_peer_reset_and_leave_nothing_behind()
    {
        // The storm's case: the reset lands while the server waits for the next record. The server's TLS socket
        // reports the error as a value (its read returns no bytes), so the reset must still be told from a close.
        await using var service = await TestService.StartAsync(_certificates.Hocon("supervisor.tcp.tls"));
        const int peers = 30;
        var connected = new List<Socket>();
        for (var i = 0; i < peers; i++)
        {
            var (socket, tls) = await ConnectTlsAsync(service.Port, _certificates);
            await tls.WriteAsync("{\"type\":0,\"timestamp\":1,\"seq\":1}\n"u8.ToArray());
            var answer = new byte[256];
            Assert.True(await tls.ReadAsync(answer) > 0);
            connected.Add(socket);
        }
        await service.WaitForStatsAsync(s => s.Active == peers);
        await Task.Delay(100);
        foreach (var socket in connected) Reset(socket);
        var stats = await service.WaitForStatsAsync(s => s.ClosedByReason.Values.Sum() == peers, TimeSpan.FromSeconds(30));
        output.WriteLine(string.Join(", ", stats.ClosedByReason.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.Equal(peers, stats.Closed(CloseReason.PeerReset));
        Assert.Contains(service.Logs.Lines, l => l.Message.Contains(" closed: peer-reset (connection reset by peer)", StringComparison.Ordinal));
        await AssertNoCloseWaitAsync(service.Port);
        await AssertRegistryRowsAsync(service, 0);

        // And a peer that closes (FIN) is still peer-closed.
        var (closing, closingTls) = await ConnectTlsAsync(service.Port, _certificates);
        await closingTls.WriteAsync("{\"type\":0,\"timestamp\":1,\"seq\":1}\n"u8.ToArray());
        Assert.True(await closingTls.ReadAsync(new byte[256]) > 0);
        closing.Shutdown(SocketShutdown.Send);
        await service.WaitForStatsAsync(s => s.Closed(CloseReason.PeerClosed) == 1);
        closingTls.Dispose();
    }

    [Fact]
    public async Task A_tls_handshake_that_stalls_must_be_closed_at_the_configured_handshake_timeout_as_first_frame_timeout()
    {
        var hocon = _certificates.Hocon("supervisor.tcp.tls") + "\nsupervisor.tcp.tls.handshake-timeout = 500ms";
        await using var service = await TestService.StartAsync(hocon);
        using var stalled = await TestPeer.ConnectAsync(service.Port);
        var clock = Stopwatch.StartNew();
        await stalled.SendAsync(PartialClientHello);

        var buffer = new byte[256];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var read = await stalled.Socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        var elapsed = clock.Elapsed;
        output.WriteLine($"stalled handshake closed after {elapsed.TotalMilliseconds:F0} ms ({read} bytes read)");
        Assert.Equal(0, read);
        Assert.InRange(elapsed, TimeSpan.FromMilliseconds(450), TimeSpan.FromSeconds(3));
        var stats = await service.WaitForStatsAsync(s => s.Closed(CloseReason.FirstFrameTimeout) == 1 && s.Active == 0);
        Assert.Equal(1, stats.ClosedByReason.Values.Sum());
        Assert.Contains(service.Logs.Lines, l => l.Message.Contains("TLS handshake not completed within tcp.tls.handshake-timeout (500ms)", StringComparison.Ordinal));
        await AssertNoCloseWaitAsync(service.Port);
    }

    [Fact]
    public void The_tls_handshake_timeout_must_default_to_10s_and_be_read_per_listener_and_a_bad_one_must_name_its_key()
    {
        static Supervisor.Configuration.SupervisorSettings Read(string hocon) =>
            Supervisor.Configuration.SupervisorConfig.Read(Supervisor.Configuration.SupervisorConfig.Build(hocon, null));
        var settings = Read("supervisor.listeners.slow { port = 9001, tls.handshake-timeout = 30s }");
        Assert.Equal(TimeSpan.FromSeconds(10), settings.Listeners.Single(l => l.Name == "tcp").TlsHandshakeTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), settings.Listeners.Single(l => l.Name == "slow").TlsHandshakeTimeout);
        var error = Assert.Throws<Supervisor.Configuration.ConfigurationError>(() => Read("supervisor.tcp.tls.handshake-timeout = 0s"));
        Assert.Equal("supervisor.tcp.tls.handshake-timeout", error.Key);
    }

    public void Dispose() => _certificates.Dispose();
}
