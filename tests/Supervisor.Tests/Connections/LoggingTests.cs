using Microsoft.Extensions.Logging;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Connections;

public sealed class LoggingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_connection_must_log_one_information_line_when_it_opens_and_one_when_it_closes_and_none_per_heartbeat()
    {
        await using var service = await TestService.StartAsync();
        using (var peer = await TestPeer.ConnectAsync(service.Port))
        {
            for (var seq = 0; seq < 20; seq++)
            {
                await peer.SendHeartbeatAsync(seq);
                await peer.ReceiveFrameAsync();
            }
        }
        await service.WaitForStatsAsync(s => s.Active == 0 && s.Accepted == 1);
        await Task.Delay(200); // logging is asynchronous in Akka

        var connectionLines = service.Logs.Lines
            .Where(l => l.Level >= LogLevel.Information && l.Message.Contains("Connection c1"))
            .ToArray();
        foreach (var line in connectionLines) output.WriteLine($"{line.Level}: {line.Message}");
        Assert.Equal(2, connectionLines.Length);
        Assert.Contains("Connection c1 opened from 127.0.0.1:", connectionLines[0].Message);
        Assert.Contains("Connection c1 closed: peer-closed", connectionLines[1].Message);
        Assert.All(connectionLines, l => Assert.Equal(LogLevel.Information, l.Level));
        Assert.DoesNotContain(service.Logs.Lines, l => l.Level >= LogLevel.Information && l.Message.Contains("heartbeat seq"));
    }
}
