using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Akka.Actor;
using Supervisor.Client;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Tests.Client;
using Supervisor.Tests.Support;
using Supervisor.Tests.WebSockets;
using Supervisor.Transport;
using Xunit.Abstractions;
using static Supervisor.Tests.Hardening.TransportChecks;

namespace Supervisor.Tests.Hardening;

/// <summary>
/// Fault injection at every named point of every transport (<see cref="TransportFaults"/>): whatever is thrown
/// at an await, a send or a timer callback ends that one connection cleanly. Exactly one close line with one
/// reason (internal-error when the fault came first; the reason already decided when the fault hit the
/// close itself), the registry row gone, the socket released (no CLOSE-WAIT once the peer closes), and a
/// bystander's heartbeats still answered.
/// </summary>
public sealed class FaultInjectionTests : IDisposable
{
    private readonly ITestOutputHelper output;
    private readonly TestCertificates _certificates = new();
    private readonly List<Exception> _unobserved = [];

    public FaultInjectionTests(ITestOutputHelper output)
    {
        this.output = output;
        TaskScheduler.UnobservedTaskException += OnUnobserved;
    }

    /// <summary>A task of ours that faulted with nobody looking: the injected fault ended up nowhere.</summary>
    private void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e)
    {
        if (e.Exception.Flatten().InnerExceptions.Any(inner => inner is InjectedFault))
            lock (_unobserved) _unobserved.Add(e.Exception);
    }

    private void AssertNoFaultUnobserved()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        lock (_unobserved) Assert.Empty(_unobserved);
    }

    // Every point is listed here with what drives a connection through it; a point added to the transports
    // and not here fails the coverage check below.
    private static readonly Dictionary<FaultPoint, CloseReason> ReasonAfter = new()
    {
        [FaultPoint.TcpReceiveWait] = CloseReason.InternalError,
        [FaultPoint.TcpReceive] = CloseReason.InternalError,
        [FaultPoint.TcpSend] = CloseReason.InternalError,
        [FaultPoint.TcpSendQueued] = CloseReason.InternalError,
        [FaultPoint.TcpShutdown] = CloseReason.ProtocolError,
        [FaultPoint.TlsHandshake] = CloseReason.InternalError,
        [FaultPoint.TlsReceiveWait] = CloseReason.InternalError,
        [FaultPoint.TlsReceive] = CloseReason.InternalError,
        [FaultPoint.TlsSend] = CloseReason.InternalError,
        [FaultPoint.TlsCloseNotify] = CloseReason.ProtocolError,
        [FaultPoint.WsReceive] = CloseReason.InternalError,
        [FaultPoint.WsSend] = CloseReason.InternalError,
        [FaultPoint.WsSendCompleted] = CloseReason.InternalError,
        [FaultPoint.WsCloseOutput] = CloseReason.ProtocolError,
        [FaultPoint.WsPongCheck] = CloseReason.InternalError,
    };

    // Echoes big enough to fill the kernel's buffers of a peer that does not read, fast enough for the frame limits.
    private const string FloodLimits = "supervisor.tcp.limits { max-frames-per-second = 100000, frame-burst = 100000 }\n"
        + "supervisor.tcp.max-pending-write = 64MiB\n";
    private static readonly string BigData = new('x', 32 * 1024);

    [Fact]
    public void Every_fault_point_of_every_transport_must_be_exercised_here()
    {
        var listed = TransportFaults.Tcp.Concat(TransportFaults.Tls).Concat(TransportFaults.WebSocket).ToHashSet();
        Assert.Equal(Enum.GetValues<FaultPoint>().ToHashSet(), listed);
        Assert.Equal(listed, ReasonAfter.Keys.ToHashSet());
    }

    [Fact]
    public async Task A_fault_at_every_point_of_the_tcp_transport_must_end_only_that_connection_cleanly()
    {
        await using var service = await TestService.StartAsync(FloodLimits);
        using var bystander = await TestPeer.ConnectAsync(service.Port);
        long seq = 0;
        await AssertAnsweredAsync(bystander, ++seq);
        foreach (var point in TransportFaults.Tcp)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = 4096 };
            await socket.ConnectAsync(IPAddress.Loopback, service.Port);
            var remote = socket.LocalEndPoint!.ToString()!;
            using (TransportFaults.Arm(point, remote))
            {
                switch (point)
                {
                    case FaultPoint.TcpSendQueued:
                        // A peer that does not read: echoes pile up until a send has to wait.
                        var frame = Encoding.UTF8.GetBytes(JsonLinesCodec.EncodeToString(new Frame(FrameType.Data, 1, BigData)));
                        for (var i = 0; i < 2000 && !TransportFaults.HasFired(point, remote); i++)
                        {
                            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                            try { await socket.SendAsync(frame, SocketFlags.None, cts.Token); }
                            catch (Exception e) when (e is SocketException or OperationCanceledException) { break; }
                        }
                        break;
                    case FaultPoint.TcpShutdown:
                        await socket.SendAsync("not json\n"u8.ToArray(), SocketFlags.None);
                        break;
                    default:
                        await socket.SendAsync("{\"type\":0,\"timestamp\":1,\"seq\":1}\n"u8.ToArray(), SocketFlags.None);
                        break;
                }
                await AssertEndedCleanlyAsync(service, point, remote, () => socket.Dispose(), service.Port);
            }
            await AssertAnsweredAsync(bystander, ++seq);
        }
        AssertNoFaultUnobserved();
    }

    [Fact]
    public async Task A_fault_at_every_point_of_the_tls_transport_must_end_only_that_connection_cleanly()
    {
        await using var service = await TestService.StartAsync(_certificates.Hocon("supervisor.tcp.tls"));
        var (bystanderSocket, bystander) = await ConnectTlsAsync(service.Port, _certificates);
        using var _ = bystanderSocket;
        await using var __ = bystander;
        var reader = new StreamReader(bystander, Encoding.UTF8);
        var seq = 0;
        async Task BystanderAnswered()
        {
            await bystander.WriteAsync(Encoding.UTF8.GetBytes($"{{\"type\":0,\"seq\":{++seq}}}\n"));
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var line = await reader.ReadLineAsync(cts.Token);
            Assert.Equal(seq, JsonLinesCodec.Decode(Encoding.UTF8.GetBytes(line!)).Frame!.Seq);
        }
        await BystanderAnswered();
        var issued = _certificates.Issued.GetCertHashString();
        foreach (var point in TransportFaults.Tls)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(IPAddress.Loopback, service.Port);
            var remote = socket.LocalEndPoint!.ToString()!;
            var tls = new SslStream(new NetworkStream(socket, ownsSocket: true), false,
                (_, presented, _, _) => presented is not null && presented.GetCertHashString() == issued);
            using (TransportFaults.Arm(point, remote))
            {
                try
                {
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                    await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" }, cts.Token);
                    await tls.WriteAsync(point == FaultPoint.TlsCloseNotify ? "not json\n"u8.ToArray() : "{\"type\":0,\"seq\":1}\n"u8.ToArray());
                }
                catch (Exception e) when (point == FaultPoint.TlsHandshake && e is IOException or System.Security.Authentication.AuthenticationException)
                {
                    // The server ended the handshake: what this point is about.
                }
                await AssertEndedCleanlyAsync(service, point, remote, () => tls.Dispose(), service.Port);
            }
            await BystanderAnswered();
        }
        AssertNoFaultUnobserved();
    }

    [Fact]
    public async Task A_fault_at_every_point_of_the_websocket_transport_must_end_only_that_connection_cleanly()
    {
        await using var service = await TestService.StartAsync(FloodLimits + "supervisor.websocket { ping-interval = 300ms, pong-timeout = 300ms }");
        using var bystander = await TestPeer.ConnectAsync(service.Port);
        long seq = 0;
        await AssertAnsweredAsync(bystander, ++seq);
        foreach (var point in TransportFaults.WebSocket)
        {
            var peer = await SilentWsPeer.HandshakeAsync(service.WebSocketPort);
            var remote = peer.Socket.LocalEndPoint!.ToString()!;
            using (TransportFaults.Arm(point, remote))
            {
                switch (point)
                {
                    case FaultPoint.WsSendCompleted:
                        // Echoes pile up unread until a send has to wait, then the peer reads and the send completes.
                        for (var i = 0; i < 200; i++)
                        {
                            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                            try { await peer.SendMaskedTextAsync(JsonLinesCodec.EncodeToString(new Frame(FrameType.Data, 1, BigData)).TrimEnd('\n'), cts.Token); }
                            catch (Exception e) when (e is SocketException or OperationCanceledException) { break; }
                        }
                        await peer.DiscardUntilClosedAsync(TimeSpan.FromSeconds(10));
                        break;
                    case FaultPoint.WsCloseOutput:
                        await peer.SendMaskedTextAsync("not json", CancellationToken.None);
                        break;
                    case FaultPoint.WsPongCheck:
                        // Nothing to do: the pong deadline's first check comes by itself.
                        break;
                    default:
                        await peer.SendMaskedTextAsync("{\"type\":0,\"timestamp\":1,\"seq\":1}", CancellationToken.None);
                        break;
                }
                await AssertEndedCleanlyAsync(service, point, remote, () => peer.Dispose(), service.WebSocketPort);
            }
            await AssertAnsweredAsync(bystander, ++seq);
        }
        AssertNoFaultUnobserved();
    }

    [Fact]
    public async Task A_fault_in_the_heartbeat_clients_transport_must_end_that_connection_with_one_internal_error_disconnect_and_a_reconnect()
    {
        await using var service = await TestService.StartAsync();
        using var system = ActorSystem.Create("client-faults");
        using var metrics = new SupervisorMetrics();
        var events = new ClientEvents();
        var settings = ClientTestSupport.Fast(service.Port, interval: TimeSpan.FromMilliseconds(100), timeout: TimeSpan.FromSeconds(5),
            minBackoff: TimeSpan.FromMilliseconds(50), maxBackoff: TimeSpan.FromMilliseconds(100));
        var collector = system.ActorOf(Props.Create(() => new ClientEvents.Collector(events)));
        system.ActorOf(HeartbeatClient.Props("faulty", settings, ClientTestSupport.Services(new LogCapture(), metrics), [collector]));
        await events.WaitForAsync<ClientProtocol.Connected>(TimeSpan.FromSeconds(10));
        // The client's transport knows the server as its remote.
        var remote = $"127.0.0.1:{service.Port}";
        var faults = 0;
        foreach (var point in new[] { FaultPoint.TcpReceiveWait, FaultPoint.TcpReceive, FaultPoint.TcpSend })
        {
            using (TransportFaults.Arm(point, remote))
            {
                var disconnected = await events.WaitForAsync<ClientProtocol.Disconnected>(TimeSpan.FromSeconds(10), ++faults);
                output.WriteLine($"{point}: {disconnected.Reason.ToWireName()} ({disconnected.Detail})");
                Assert.True(TransportFaults.HasFired(point, remote));
                Assert.Equal(CloseReason.InternalError, disconnected.Reason);
                Assert.Contains(point.ToString(), disconnected.Detail);
            }
            await events.WaitForAsync<ClientProtocol.Connected>(TimeSpan.FromSeconds(10), faults + 1);
            var answered = events.OfType<ClientProtocol.HeartbeatAnswered>().Count;
            await ClientTestSupport.WaitUntilAsync(() => Task.FromResult(events.OfType<ClientProtocol.HeartbeatAnswered>().Count > answered),
                TimeSpan.FromSeconds(10), $"a heartbeat answered after the reconnect that followed {point}");
        }
        Assert.Equal(faults, events.OfType<ClientProtocol.Disconnected>().Count);
        // Every connection the client let go of is closed on the server too: none left in CLOSE-WAIT there or here.
        await AssertNoCloseWaitAsync(service.Port);
        await system.Terminate();
        AssertNoFaultUnobserved();
    }

    /// <summary>The fault fired, the connection closed once with the expected reason, its row is gone and, once the peer lets go, no socket is left in CLOSE-WAIT.</summary>
    private async Task AssertEndedCleanlyAsync(TestService service, FaultPoint point, string remote, Action closePeer, int port)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!TransportFaults.HasFired(point, remote))
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"the fault at {point} never fired");
            await Task.Delay(10);
        }
        var opened = service.Logs.Lines.Single(l => l.Message.Contains($" opened from {remote} ", StringComparison.Ordinal)).Message;
        var id = opened.Split(' ')[1];
        string[] closes;
        while ((closes = service.Logs.Lines.Select(l => l.Message).Where(m => m.StartsWith($"Connection {id} closed: ", StringComparison.Ordinal)).ToArray()).Length == 0)
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"{point}: connection {id} never closed");
            await Task.Delay(10);
        }
        while ((await service.ConnectionsAsync()).Items.Any(c => c.Id == id))
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"{point}: connection {id} is still in the registry");
            await Task.Delay(10);
        }
        closePeer();
        await AssertNoCloseWaitAsync(port);
        closes = service.Logs.Lines.Select(l => l.Message).Where(m => m.StartsWith($"Connection {id} closed: ", StringComparison.Ordinal)).ToArray();
        output.WriteLine($"{point}: {closes.Single()}");
        Assert.StartsWith($"Connection {id} closed: {ReasonAfter[point].ToWireName()} (", closes.Single());
    }

    public void Dispose()
    {
        TaskScheduler.UnobservedTaskException -= OnUnobserved;
        _certificates.Dispose();
    }
}
