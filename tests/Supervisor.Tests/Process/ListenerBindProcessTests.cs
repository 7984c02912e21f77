using System.Net;
using System.Net.Sockets;
using System.Text;
using Xunit;
using Xunit.Abstractions;

namespace Supervisor.Tests.Processes;

/// <summary>
/// Two services on one port: the second, started by mistake, must fail at start-up with its one-line error rather
/// than bind too and take half the new connections (SO_REUSEPORT); a restart must bind at once over the first
/// one's connections in TIME_WAIT.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ListenerBindProcessTests(ITestOutputHelper output)
{
    private static string OnPort(int port) => ServiceProcess.Config($"supervisor.tcp {{ host = \"127.0.0.1\", port = {port} }}");

    [Fact]
    public async Task A_second_service_on_the_port_of_a_running_one_must_exit_1_with_one_line_naming_the_address()
    {
        using var first = ServiceProcess.Start(OnPort(0), output: output);
        var port = await first.WaitForListenerPortAsync(TimeSpan.FromSeconds(30));

        using var second = ServiceProcess.Start(OnPort(port), output: output);
        var code = await second.WaitForExitAsync(TimeSpan.FromSeconds(30));
        if (code != 1) throw second.Failure($"exit code {code?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none within 30 s"}, expected 1 (cannot listen)");
        var error = Assert.Single(second.StandardError);
        Assert.StartsWith($"supervisor: cannot listen on 127.0.0.1:{port} for listener 'tcp'", error, StringComparison.Ordinal);
        Assert.DoesNotContain(second.StandardOutput, l => l.Contains("accepting on", StringComparison.Ordinal));

        // The first one still has every new connection.
        using var peer = await ConnectAsync(port);
        Assert.Contains("\"type\":1", await HeartbeatAsync(peer), StringComparison.Ordinal);
        first.Signal(ChildProcess.SigTerm);
        Assert.Equal(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task A_restarted_service_must_listen_on_its_port_while_the_last_ones_connections_are_in_time_wait()
    {
        int port;
        using (var first = ServiceProcess.Start(OnPort(0), output: output))
        {
            port = await first.WaitForListenerPortAsync(TimeSpan.FromSeconds(30));
            var peers = new List<Socket>();
            try
            {
                for (var i = 0; i < 5; i++)
                {
                    peers.Add(await ConnectAsync(port));
                    await HeartbeatAsync(peers[^1]);
                }
                first.Signal(ChildProcess.SigTerm);
                // Each peer reads its notice, then EOF, and closes: the server closed first, its side waits in TIME_WAIT.
                using var reading = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                var buffer = new byte[4096];
                foreach (var peer in peers)
                    while (await peer.ReceiveAsync(buffer, SocketFlags.None, reading.Token) > 0)
                    {
                    }
            }
            finally
            {
                foreach (var peer in peers) peer.Dispose();
            }
            Assert.Equal(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        }
        var waiting = TimeWaitOn(port);
        output.WriteLine($"{waiting} connections on port {port} in TIME_WAIT");
        Assert.True(waiting > 0, $"no TIME_WAIT connection on port {port}: the test proves nothing");

        using var second = ServiceProcess.Start(OnPort(port), output: output);
        Assert.Equal(port, await second.WaitForListenerPortAsync(TimeSpan.FromSeconds(30)));
        using var again = await ConnectAsync(port);
        Assert.Contains("\"type\":1", await HeartbeatAsync(again), StringComparison.Ordinal);
        second.Signal(ChildProcess.SigTerm);
        Assert.Equal(0, await second.WaitForExitAsync(TimeSpan.FromSeconds(20)));
    }

    private static async Task<Socket> ConnectAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            using var connecting = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await socket.ConnectAsync(IPAddress.Loopback, port, connecting.Token);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends a heartbeat and returns the first line that comes back.</summary>
    private static async Task<string> HeartbeatAsync(Socket socket)
    {
        using var answering = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await socket.SendAsync(Encoding.UTF8.GetBytes("{\"type\":0,\"timestamp\":1,\"seq\":1}\n"), SocketFlags.None, answering.Token);
        var received = new List<byte>();
        var buffer = new byte[1];
        while (await socket.ReceiveAsync(buffer, SocketFlags.None, answering.Token) == 1 && buffer[0] != (byte)'\n') received.Add(buffer[0]);
        return Encoding.UTF8.GetString(received.ToArray());
    }

    /// <summary>Connections in TIME_WAIT (state 06 of <c>/proc/net/tcp</c>) on local port <paramref name="port"/>.</summary>
    private static int TimeWaitOn(int port) => File.ReadAllLines("/proc/net/tcp").Skip(1)
        .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Count(f => f.Length > 3 && f[1].EndsWith($":{port:X4}", StringComparison.Ordinal) && f[3] == "06");
}
