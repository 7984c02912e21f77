using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Processes;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Packaging;

/// <summary>
/// samples/ChatGateway, built against the packed packages from a folder feed (not the projects), run as its own
/// process with its own host and actor system, and driven over a real socket (issue 13, point 8).
/// </summary>
[Collection(PackedFeedCollection.Name)]
public sealed partial class ChatGatewaySampleTests(PackedFeed feed, ITestOutputHelper output)
{
    [Fact]
    public async Task The_sample_built_from_the_packages_must_answer_heartbeats_run_its_handler_and_close_a_silent_peer_with_heartbeat_timeout()
    {
        var build = Path.Combine(feed.Folder, "chat-gateway");
        // Offline: the fresh packages from the feed, everything else from the machine's package cache used as a feed;
        // a private packages folder, so that no older ConnectionSupervisor 0.13.0 already extracted is taken instead.
        var cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                    ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var started = Stopwatch.GetTimestamp();
        var (code, text) = PackedFeed.Run(PackedFeed.RepositoryRoot, TimeSpan.FromMinutes(5), "dotnet", "build",
            Path.Combine(PackedFeed.RepositoryRoot, "samples", "ChatGateway", "ChatGateway.csproj"), "-c", PackedFeed.Configuration, "-nologo",
            "--source", feed.Folder, "--source", cache, $"-p:RestorePackagesPath={Path.Combine(build, "packages")}", "-o", Path.Combine(build, "out"));
        output.WriteLine($"sample built in {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s");
        Assert.True(code == 0, $"dotnet build of the sample exited {code}:\n{text}");
        // The core package only, and its runtime tuning (buildTransitive) taken by the sample's opt-in.
        Assert.True(File.Exists(Path.Combine(build, "out", "ConnectionSupervisor.dll")));
        Assert.False(File.Exists(Path.Combine(build, "out", "Akka.Cluster.dll")));
        Assert.False(File.Exists(Path.Combine(build, "out", "StackExchange.Redis.dll")));
        Assert.Contains("\"System.Threading.ThreadPool.UnfairSemaphoreSpinLimit\": 0", File.ReadAllText(Path.Combine(build, "out", "ChatGateway.runtimeconfig.json")));

        using var gateway = new ChildProcess("chat-gateway", "dotnet", [Path.Combine(build, "out", "ChatGateway.dll"), "--port=0"], output: output);
        var listening = await gateway.WaitForLineAsync(l => AcceptingLine().IsMatch(l), TimeSpan.FromSeconds(60), "'Listener tcp accepting on ...'");
        var port = int.Parse(AcceptingLine().Match(listening.Text).Groups["port"].Value, CultureInfo.InvariantCulture);

        using var peer = await TestPeer.ConnectAsync(port);
        await peer.SendHeartbeatAsync(seq: 7);
        var response = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((FrameType.HeartbeatResponse, 7L), (response!.Type, response.Seq));

        await peer.SendFrameAsync(new Frame(FrameType.Data, 1, "hello room"));
        var relayed = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(FrameType.Data, relayed!.Type);
        Assert.Matches(@"^#1 c\d+: hello room$", relayed.Data);

        // Silent from here: the sample's 3 s heartbeat timeout closes it, with the reason, and the socket ends.
        var silentFrom = Stopwatch.GetTimestamp();
        var last = await peer.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(30));
        output.WriteLine($"closed {Stopwatch.GetElapsedTime(silentFrom).TotalSeconds:F2} s after the last frame");
        var notice = Assert.Single(last);
        Assert.Equal(FrameType.ErrorNotice, notice.Type);
        Assert.StartsWith("heartbeat-timeout: ", notice.Data);
        await gateway.WaitForLineAsync(l => l.Contains("closed: heartbeat-timeout", StringComparison.Ordinal), TimeSpan.FromSeconds(10),
            "the close line in the gateway's own log");
    }

    [GeneratedRegex(@"Listener tcp accepting on (?<host>\S+):(?<port>\d+)")]
    private static partial Regex AcceptingLine();
}
