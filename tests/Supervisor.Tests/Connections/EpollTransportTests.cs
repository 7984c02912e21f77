using System.Net;
using System.Net.Sockets;
using System.Text;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Supervisor.Transport;
using static Supervisor.Tests.Hardening.TransportChecks;

namespace Supervisor.Tests.Connections;

/// <summary>
/// The epoll transport's own parts, driven directly: a heartbeat answered, the framing limit's notice, a peer's FIN
/// closing the socket (no CLOSE-WAIT), backpressure stopping the reads, and the loops' end. Every other socket-level
/// test runs on it too, since it is the default on Linux (<c>tcp.transport = auto</c>); with
/// <c>SUPERVISOR_TEST_TCP_TRANSPORT=sockets</c> they run against .NET's engine instead (DESIGN §2).
/// </summary>
public sealed class EpollTransportTests : TestKit
{
    private const string Epoll = "supervisor.tcp.transport = epoll\n";

    private static IEnumerable<string> LoopThreads() =>
        Directory.EnumerateDirectories("/proc/self/task")
            .Select(task => { try { return File.ReadAllText(Path.Combine(task, "comm")).Trim(); } catch (IOException) { return ""; } })
            .Where(name => name.StartsWith("epoll-loop-", StringComparison.Ordinal));

    [Fact]
    public async Task A_heartbeat_must_be_answered_over_the_epoll_transport_and_the_loops_must_end_with_the_service()
    {
        if (!OperatingSystem.IsLinux()) return;
        var service = await TestService.StartAsync(Epoll);
        await using (service)
        {
            Assert.Contains(service.Logs.Lines, l => l.Message.StartsWith("listener tcp: transport epoll (", StringComparison.Ordinal));
            using var peer = await TestPeer.ConnectAsync(service.Port);
            await peer.SendHeartbeatAsync(seq: 7);
            var answer = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(FrameType.HeartbeatResponse, answer!.Type);
            Assert.Equal(7, answer.Seq);
            Assert.NotEmpty(LoopThreads());
        }
        // The connection supervisor owns the loops: stopped with the actor system, no loop thread is left. (Not when the
        // whole suite runs on epoll: other services' loops then run beside this one's, and this class's other tests
        // check the loops' end on a group of their own.)
        if (Environment.GetEnvironmentVariable(TestService.TransportVariable) is { Length: > 0 }) return;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (LoopThreads().Any() && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Empty(LoopThreads());
    }

    [Fact]
    public async Task A_frame_over_the_limit_must_get_its_notice_and_a_fin_and_a_peers_fin_must_leave_no_close_wait()
    {
        if (!OperatingSystem.IsLinux()) return;
        await using var service = await TestService.StartAsync(Epoll + "supervisor.tcp.max-frame-length = 64B");
        using (var peer = await TestPeer.ConnectAsync(service.Port))
        {
            await peer.SendAsync($"{{\"type\":2,\"timestamp\":1,\"data\":\"{new string('x', 100)}\"}}\n");
            var frames = await peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(10));
            var notice = Assert.Single(frames);
            Assert.Equal(FrameType.ErrorNotice, notice.Type);
            Assert.StartsWith("frame-too-large", notice.Data);
        }
        // A peer that sends a heartbeat and its FIN: answered, then the server closes its side too.
        var closer = await TestPeer.ConnectAsync(service.Port);
        await closer.SendHeartbeatAsync(seq: 1);
        Assert.Equal(FrameType.HeartbeatResponse, (await closer.ReceiveFrameAsync(TimeSpan.FromSeconds(10)))!.Type);
        closer.Socket.Shutdown(SocketShutdown.Send);
        Assert.Null(await closer.ReceiveFrameAsync(TimeSpan.FromSeconds(10)));
        closer.Dispose();
        var stats = await service.WaitForStatsAsync(s => s.Closed(CloseReason.PeerClosed) == 1 && s.Closed(CloseReason.FrameTooLarge) == 1);
        Assert.Equal(0, stats.Active);
        await AssertNoCloseWaitAsync(service.Port);
    }

    /// <summary>
    /// The gate, on a real socket pair and one loop: paused, the loop leaves the input in the kernel (the frames the
    /// owner sees stop) however much more the peer sends; resumed, the loop reads what waited without a new edge.
    /// Disposing the group ends its thread, closes its epoll and eventfd, and tells an owner still registered.
    /// </summary>
    [Fact]
    public void Pausing_reads_must_leave_input_in_the_kernel_and_resuming_must_read_it_and_the_loops_end_must_be_told()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(listener.LocalEndPoint!);
        var server = listener.Accept();
        var group = new EpollLoopGroup(1);
        var owner = CreateTestProbe();
        var transport = new EpollTransport(server, group.Next(), 1024, 64 * 1024, KeepAliveStatus.Disabled);
        transport.Start(owner.Ref);

        var line = Encoding.UTF8.GetBytes("{\"type\":0,\"timestamp\":1}\n");
        client.Send(line);
        Assert.Equal(1, TakeAll(owner, transport));

        transport.Inbound.PauseReading();
        for (var i = 0; i < 5; i++) client.Send(line);
        // Nothing is read while paused: no frame is announced, and the bytes wait in the server's receive queue.
        owner.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(5 * line.Length, server.Available);

        transport.Inbound.ResumeReading();
        var taken = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (taken < 5 && DateTime.UtcNow < deadline) taken += TakeAll(owner, transport);
        Assert.Equal(5, taken);

        // The peer's FIN ends the input, told once.
        client.Shutdown(SocketShutdown.Send);
        var ended = owner.FishForMessage<TransportEvents.InputEnded>(_ => true, TimeSpan.FromSeconds(10));
        Assert.Equal(CloseReason.PeerClosed, ended.Reason);

        // A second connection left registered when the loops end: its owner is told, its socket closed.
        using var other = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        other.Connect(listener.LocalEndPoint!);
        var otherOwner = CreateTestProbe();
        var orphan = new EpollTransport(listener.Accept(), group.Loops[0], 1024, 64 * 1024, KeepAliveStatus.Disabled);
        orphan.Start(otherOwner.Ref);
        transport.Dispose();
        group.Dispose();
        Assert.False(group.Loops[0].Running);
        Assert.True(group.Loops[0].DescriptorsClosed);
        var told = otherOwner.ExpectMsg<TransportEvents.InputEnded>(TimeSpan.FromSeconds(10));
        Assert.Equal(CloseReason.InternalError, told.Reason);
        other.ReceiveTimeout = 10_000;
        Assert.Equal(0, other.Receive(new byte[16]));
        orphan.Dispose();
    }

    /// <summary>Waits for the next FramesReady and takes every frame queued; the count taken.</summary>
    private static int TakeAll(Akka.TestKit.TestProbe owner, EpollTransport transport)
    {
        owner.ExpectMsg<TransportEvents.FramesReady>(TimeSpan.FromSeconds(10));
        transport.Inbound.BeginTaking();
        var taken = 0;
        while (transport.Inbound.TryTake(out _)) taken++;
        return taken;
    }
}
