using System.Net;
using System.Net.Sockets;
using Supervisor.Configuration;
using Supervisor.Connections;
using Supervisor.Tests.Support;

namespace Supervisor.Tests.Connections;

/// <summary>
/// How a listener binds: SO_REUSEADDR alone, so that a restart binds over the old connections' TIME_WAIT while a
/// second listener on the same port is refused (with SO_REUSEPORT too, as .NET's <c>ReuseAddress</c> sets on Linux,
/// it would bind and take half the new connections); and how it accepts: a burst larger than one turn is all served.
/// </summary>
[Collection(ProcessWideResources.Name)]
public sealed class ListenerBindTests
{
    private static ListenerSettings Loopback(int port = 0) =>
        SupervisorConfig.Read(SupervisorConfig.Build($"supervisor.tcp {{ host = \"127.0.0.1\", port = {port} }}", null)).Listeners.Single(l => l.Name == "tcp");

    [Fact]
    public void A_second_listener_on_a_port_that_is_listened_on_must_fail_to_bind()
    {
        using var first = TcpListenerActor.Bind(Loopback());
        var port = ((IPEndPoint)first.LocalEndPoint!).Port;

        var refused = Assert.Throws<SocketException>(() => TcpListenerActor.Bind(Loopback(port)).Dispose());
        Assert.Equal(SocketError.AddressAlreadyInUse, refused.SocketErrorCode);
        // The kernel's view of the option: SO_REUSEADDR on, SO_REUSEPORT off.
        Assert.Equal(1, Option(first, 2));
        Assert.Equal(0, Option(first, 15));
    }

    [Fact]
    public async Task A_listener_must_bind_again_at_once_while_connections_of_the_last_one_are_in_time_wait()
    {
        var listener = TcpListenerActor.Bind(Loopback());
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using (var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await peer.ConnectAsync(IPAddress.Loopback, port);
            using (var accepted = await listener.AcceptAsync())
            {
                // The server closes first, as at shutdown: its side of the connection goes to TIME_WAIT.
                accepted.Shutdown(SocketShutdown.Send);
                Assert.Equal(0, await peer.ReceiveAsync(new byte[1], SocketFlags.None));
            }
            peer.Shutdown(SocketShutdown.Send);
        }
        listener.Dispose();
        Assert.True(await TimeWaitOnAsync(port), $"no TIME_WAIT connection on local port {port}: the test proves nothing");

        using var again = TcpListenerActor.Bind(Loopback(port));
        Assert.Equal(port, ((IPEndPoint)again.LocalEndPoint!).Port);
    }

    [Fact]
    public async Task A_burst_of_connects_larger_than_one_accept_turn_must_all_be_served()
    {
        const int burst = TcpListenerActor.MaxAcceptsPerTurn * 4 + 7;
        await using var service = await TestService.StartAsync();
        var peers = await Task.WhenAll(Enumerable.Range(0, burst).Select(_ => TestPeer.ConnectAsync(service.Port)));
        try
        {
            await Task.WhenAll(peers.Select((p, i) => p.SendHeartbeatAsync(i)));
            var answers = await Task.WhenAll(peers.Select(p => p.ReceiveFrameAsync(TimeSpan.FromSeconds(20))));
            Assert.All(answers.Select((a, i) => (a, i)), x => Assert.Equal((long?)x.i, x.a?.Seq));
            await service.WaitForStatsAsync(s => s.Active == burst);
        }
        finally
        {
            foreach (var peer in peers) peer.Dispose();
        }
    }

    private static int Option(Socket socket, int name)
    {
        var value = new byte[4];
        socket.GetRawSocketOption(1, name, value);
        return BitConverter.ToInt32(value);
    }

    /// <summary>Whether <c>/proc/net/tcp</c> lists a TIME_WAIT (state 06) connection on local port <paramref name="port"/>.</summary>
    private static async Task<bool> TimeWaitOnAsync(int port)
    {
        var local = $":{port:X4} ";
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var lines = await File.ReadAllLinesAsync("/proc/net/tcp");
            if (lines.Skip(1).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Any(f => f.Length > 3 && f[1].EndsWith(local.TrimEnd(), StringComparison.Ordinal) && f[3] == "06"))
                return true;
            await Task.Delay(20);
        }
        return false;
    }
}
