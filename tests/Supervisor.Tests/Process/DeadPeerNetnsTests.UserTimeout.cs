using System.Diagnostics;
using Xunit;

namespace Supervisor.Tests.Processes;

public sealed partial class DeadPeerNetnsTests
{
    [Fact]
    public async Task User_timeout_must_close_a_peer_that_stops_acknowledging_data_in_flight_with_keepalive_failed()
    {
        if (NetnsPair.SkipBecause(NetnsPair.Unavailable(), output)) return;
        using var net = NetnsPair.Create(output);
        // Keep-alive alone would wait 10 minutes and the heartbeat timeout is an hour; the server's pings
        // every 300 ms put data in flight, and TCP_USER_TIMEOUT gives up on it after 2 s.
        using var service = ServiceProcess.Start(ServiceProcess.Config("""
            supervisor {
              tcp {
                host = "0.0.0.0"
                keepalive { enabled = on, idle = 600s }
                user-timeout = 2s
              }
              heartbeat { enabled = on, interval = 300ms, timeout = 1h, server-ping = on }
            }
            """), netns: net.ServerNs, output: output);
        var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20));
        using var peer = StartPeer(net.ServerAddress, port, 0, net.PeerNs);
        await FirstResponse(peer);
        await peer.WaitForLineAsync(l => l.StartsWith("recv {\"type\":0", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "a server ping");
        await Task.Delay(TimeSpan.FromSeconds(3)); // past the user timeout: a live peer acknowledges
        AssertStillOpen(service, peer, "before the link went down");

        net.CutPeerLink();
        var down = Stopwatch.GetTimestamp();
        var closed = await ClosedLine(service, TimeSpan.FromSeconds(10));
        var delay = Stopwatch.GetElapsedTime(down, closed.ReceivedAt);
        output.WriteLine($"closed {Ms(delay)} ms after the link went down: {closed.Text}");
        Assert.Contains("closed: keepalive-failed", closed.Text);
        // Unacknowledged data is given up 2 s after it was first sent; the first ping after the cut
        // leaves within 300 ms, and retransmissions are checked on the RTO timer.
        Assert.InRange(delay, TimeSpan.FromSeconds(1.7), TimeSpan.FromSeconds(4));
    }

    [Fact]
    public async Task A_half_closed_peer_must_be_closed_at_once_with_peer_closed()
    {
        using var service = ServiceProcess.Start(ServiceProcess.Config(), output: output);
        var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20));
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(System.Net.IPAddress.Loopback, port);
        await socket.SendAsync("{\"type\":0,\"seq\":1}\n"u8.ToArray(), System.Net.Sockets.SocketFlags.None);
        socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
        var sent = Stopwatch.GetTimestamp();
        var closed = await ClosedLine(service, TimeSpan.FromSeconds(5));
        output.WriteLine($"closed {Ms(Stopwatch.GetElapsedTime(sent, closed.ReceivedAt))} ms after the FIN: {closed.Text}");
        Assert.Contains("closed: peer-closed", closed.Text);
        Assert.True(Stopwatch.GetElapsedTime(sent, closed.ReceivedAt) < TimeSpan.FromSeconds(1));
        // The response to the heartbeat sent before the FIN still reached the peer.
        var buffer = new byte[256];
        var read = await socket.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None);
        Assert.Contains("\"type\":1", System.Text.Encoding.UTF8.GetString(buffer, 0, read));
    }
}
