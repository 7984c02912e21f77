using System.Net;
using System.Net.Sockets;
using Supervisor.Tests.Processes;
using Xunit.Abstractions;

namespace Supervisor.Tests.Hardening;

/// <summary>Memory under hostile input, measured on the service as its own process.</summary>
[Collection(ProcessCollection.Name)]
public sealed class HostileInputTests(ITestOutputHelper output)
{
    private static long RssBytes(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:"));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }

    [Fact]
    public async Task A_peer_streaming_64_MiB_without_a_newline_must_be_cut_off_and_RSS_must_grow_less_than_16_MiB()
    {
        using var service = ServiceProcess.Start(ServiceProcess.Config(), output: output);
        var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(30));

        // Warm up the paths a connection takes (JIT, pools) so the baseline already includes them.
        for (var i = 0; i < 3; i++)
        {
            using var warm = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await warm.ConnectAsync(IPAddress.Loopback, port);
            await warm.SendAsync("{\"type\":0,\"seq\":1}\n"u8.ToArray(), SocketFlags.None);
            await warm.ReceiveAsync(new byte[256], SocketFlags.None);
        }
        await Task.Delay(500);
        var before = RssBytes(service.Pid);

        using var hostile = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await hostile.ConnectAsync(IPAddress.Loopback, port);
        var chunk = new byte[64 * 1024];
        Array.Fill(chunk, (byte)'z');
        long sent = 0;
        var peak = before;
        try
        {
            while (sent < 64L * 1024 * 1024)
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                sent += await hostile.SendAsync(chunk, SocketFlags.None, cts.Token);
                if (sent % (4 * 1024 * 1024) == 0) peak = Math.Max(peak, RssBytes(service.Pid));
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            // Cut off: the server closed the connection (or stopped reading) long before 64 MiB.
        }
        await service.WaitForLineAsync(l => l.Contains("closed: frame-too-large"), TimeSpan.FromSeconds(10), "frame-too-large close");
        await Task.Delay(500);
        var after = RssBytes(service.Pid);
        peak = Math.Max(peak, after);
        output.WriteLine($"sent {sent / 1024} KiB before the cut; RSS {before / 1024} KiB -> peak {peak / 1024} KiB, after {after / 1024} KiB");
        Assert.True(peak - before < 16L * 1024 * 1024, $"RSS grew {(peak - before) / 1024} KiB");
    }
}
