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
    public async Task The_sample_built_from_the_packages_must_answer_heartbeats_relay_to_its_room_push_by_id_close_a_silent_peer_and_speak_binary_by_configuration()
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

        // JSON lines, the default: heartbeats, the room, the greeting pushed by id from outside the handler, the silent close.
        using (var gateway = await StartGatewayAsync(build, "json-lines"))
        {
            using var alice = await TestPeer.ConnectAsync(gateway.Port);
            var aliceId = await GreetedAsync(alice);
            using var bob = await TestPeer.ConnectAsync(gateway.Port);
            var bobId = await GreetedAsync(bob);

            await alice.SendFrameAsync(new Frame(FrameType.Data, 1, "hello room"));
            foreach (var member in new[] { alice, bob })
            {
                var relayed = await member.ReceiveFrameAsync(TimeSpan.FromSeconds(10));
                Assert.Equal(FrameType.Data, relayed!.Type);
                Assert.Equal($"#1 {aliceId}: hello room", relayed.Data);
            }

            // Bob leaves; the room goes on without him.
            bob.Dispose();
            await gateway.Process.WaitForLineAsync(l => l.Contains($"Connection {bobId} closed", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "bob's close");
            await alice.SendFrameAsync(new Frame(FrameType.Data, 1, "still here?"));
            Assert.Equal($"#2 {aliceId}: still here?", (await alice.ReceiveFrameAsync(TimeSpan.FromSeconds(10)))!.Data);

            // Silent from here: the sample's 3 s heartbeat timeout closes it, with the reason, and the socket ends.
            var silentFrom = Stopwatch.GetTimestamp();
            var last = await alice.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(30));
            output.WriteLine($"closed {Stopwatch.GetElapsedTime(silentFrom).TotalSeconds:F2} s after the last frame");
            var notice = Assert.Single(last);
            Assert.Equal(FrameType.ErrorNotice, notice.Type);
            Assert.StartsWith("heartbeat-timeout: ", notice.Data);
            await gateway.Process.WaitForLineAsync(l => l.Contains($"Connection {aliceId} closed: heartbeat-timeout", StringComparison.Ordinal), TimeSpan.FromSeconds(10),
                "the close line in the gateway's own log");
        }

        // The same sample over the binary codec, by configuration only.
        using (var gateway = await StartGatewayAsync(build, "binary"))
        {
            using var peer = await TestPeer.ConnectAsync(gateway.Port, "binary");
            var id = await GreetedAsync(peer);
            await peer.SendFrameAsync(new Frame(FrameType.Data, 1, "hello in binary"));
            Assert.Equal($"#1 {id}: hello in binary", (await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(10)))!.Data);
        }
    }

    private sealed record Gateway(ChildProcess Process, int Port) : IDisposable
    {
        public void Dispose() => Process.Dispose();
    }

    private async Task<Gateway> StartGatewayAsync(string build, string codec)
    {
        var process = new ChildProcess($"chat-gateway-{codec}", "dotnet", [Path.Combine(build, "out", "ChatGateway.dll"), "--port=0", $"--codec={codec}"], output: output);
        var listening = await process.WaitForLineAsync(l => AcceptingLine().IsMatch(l), TimeSpan.FromSeconds(60), "'Listener tcp accepting on ...'");
        // The greeter subscribes to the hub when the host has started every service.
        await process.WaitForLineAsync(l => l.Contains("Application started", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "the host started");
        return new Gateway(process, int.Parse(AcceptingLine().Match(listening.Text).Groups["port"].Value, CultureInfo.InvariantCulture));
    }

    /// <summary>A heartbeat answered, and the greeting the sample pushes by id from outside its handler; returns the id.</summary>
    private static async Task<string> GreetedAsync(TestPeer peer)
    {
        await peer.SendHeartbeatAsync(seq: 7);
        string? id = null;
        var answered = false;
        while (id is null || !answered)
        {
            var frame = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(10)) ?? throw new InvalidOperationException("the gateway closed the connection");
            if (frame.Type == FrameType.HeartbeatResponse && frame.Seq == 7) answered = true;
            else if (frame.Type == FrameType.Data && frame.Data!.StartsWith("welcome ", StringComparison.Ordinal)) id = frame.Data["welcome ".Length..];
            else throw new InvalidOperationException($"unexpected {frame}");
        }
        return id;
    }

    [GeneratedRegex(@"Listener tcp accepting on (?<host>\S+):(?<port>\d+)")]
    private static partial Regex AcceptingLine();
}
