using System.Diagnostics;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Connections;

/// <summary>Kernel keep-alive on accepted sockets, and resource release under connection churn.</summary>
[Collection(ProcessWideResources.Name)]
public sealed class KeepAliveAndChurnTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Keepalive_options_read_back_from_an_accepted_socket_must_equal_the_configuration()
    {
        await using var service = await TestService.StartAsync(
            "supervisor.tcp { keepalive { enabled = on, idle = 7s, interval = 3s, probes = 4 }\n user-timeout = 5s }");
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await service.WaitForStatsAsync(s => s.Active == 1);
        var status = (await service.ConnectionsAsync()).Items.Single();
        var keepAlive = status.KeepAlive;
        Assert.True(keepAlive.Enabled);
        Assert.Equal(7, keepAlive.IdleSeconds);
        Assert.Equal(3, keepAlive.IntervalSeconds);
        Assert.Equal(4, keepAlive.Probes);
        Assert.Equal(5000, keepAlive.UserTimeoutMs);
        Assert.Empty(keepAlive.Problems);

        // The kernel's own view: ss shows a keepalive timer counting down from the configured idle.
        var localPort = ((System.Net.IPEndPoint)peer.Socket.LocalEndPoint!).Port;
        var ss = await Run("ss", $"-tno state established ( sport = :{service.Port} and dport = :{localPort} )");
        output.WriteLine(ss);
        // ss prints the remaining time as [Nmin][N(sec|.)][NNNms]: "6.988ms" is 6 s 988 ms.
        var timer = System.Text.RegularExpressions.Regex.Match(ss, @"timer:\(keepalive,(?:(\d+)min)?(?:(\d+)(?:sec|\.))?(?:(\d+)ms)?,");
        Assert.True(timer.Success, $"no keepalive timer in: {ss}");
        int Part(int group) => timer.Groups[group].Success ? int.Parse(timer.Groups[group].Value) : 0;
        var seconds = Part(1) * 60 + Part(2) + Part(3) / 1000.0;
        Assert.InRange(seconds, 5, 7);
    }

    [Fact]
    public async Task Web_service_profile_must_set_600s_30s_3_on_accepted_sockets()
    {
        await using var service = await TestService.StartAsync(profile: "web-service");
        using var peer = await TestPeer.ConnectAsync(service.Port);
        await service.WaitForStatsAsync(s => s.Active == 1);
        var keepAlive = (await service.ConnectionsAsync()).Items.Single().KeepAlive;
        Assert.Equal((600, 30, 3), (keepAlive.IdleSeconds, keepAlive.IntervalSeconds, keepAlive.Probes));
        Assert.Null(keepAlive.UserTimeoutMs);
    }

    [Fact]
    public async Task Churn_of_2000_closes_and_200_resets_must_leave_no_connection_and_no_descriptor_behind()
    {
        await using var service = await TestService.StartAsync();
        await Cycle(service.Port, 1, abort: false); // warm up: JIT, pools, epoll registrations
        await service.WaitForStatsAsync(s => s.Active == 0);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var baseline = OpenFiles();

        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Cycle(service.Port, 250, abort: false)));
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Cycle(service.Port, 50, abort: true)));
        var stats = await service.WaitForStatsAsync(s => s.Active == 0 && s.Accepted == 2201, TimeSpan.FromSeconds(30));
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var after = OpenFiles();
        output.WriteLine($"2200 cycles in {clock.ElapsedMilliseconds} ms; open files {baseline} -> {after}; closed: " +
            string.Join(", ", stats.ClosedByReason.Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.Equal(2001, stats.Closed(CloseReason.PeerClosed));
        Assert.Equal(200, stats.Closed(CloseReason.PeerReset));
        Assert.InRange(after, baseline - 5, baseline + 5);
    }

    private static async Task Cycle(int port, int count, bool abort)
    {
        for (var i = 0; i < count; i++)
        {
            var peer = await TestPeer.ConnectAsync(port);
            await peer.SendHeartbeatAsync(i);
            var response = await peer.ReceiveFrameAsync();
            Assert.Equal(i, response!.Seq);
            if (abort) peer.Abort();
            else
            {
                peer.Socket.Shutdown(System.Net.Sockets.SocketShutdown.Both);
                peer.Dispose();
            }
        }
    }

    private static int OpenFiles() => Directory.GetFiles("/proc/self/fd").Length;

    private static async Task<string> Run(string file, string arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var text = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        return text + await process.StandardError.ReadToEndAsync();
    }
}

/// <summary>Tests that measure the whole process (open files, memory) run alone, not beside other classes.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideResources
{
    public const string Name = "process-wide resources";
}
