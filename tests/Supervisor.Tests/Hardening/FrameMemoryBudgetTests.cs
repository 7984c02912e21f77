using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Supervisor.Configuration;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Supervisor.Transport;
using Xunit.Abstractions;

namespace Supervisor.Tests.Hardening;

/// <summary>
/// <c>limits.pending-frame-memory</c>: what unfinished frames hold across the process is bounded; past the
/// budget the connections holding the largest are closed with <c>frame-too-large</c>, and nobody else notices.
/// </summary>
[Collection(Connections.ProcessWideResources.Name)]
public sealed class FrameMemoryBudgetTests(ITestOutputHelper output)
{
    private const int Budget = 1024 * 1024;

    [Fact]
    public async Task Past_the_budget_the_largest_unfinished_frames_must_be_closed_with_frame_too_large_and_no_other_connection()
    {
        await using var service = await TestService.StartAsync("supervisor.limits.pending-frame-memory = 1MiB");
        var memory = service.Services.GetRequiredService<PendingFrameMemory>();
        var bystanders = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => TestPeer.ConnectAsync(service.Port)));
        // 20 peers hold 5,000-byte unfinished frames (a pooled 16 KiB buffer each, 320 KiB together) ...
        var small = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => TestPeer.ConnectAsync(service.Port)));
        foreach (var peer in small) await peer.SendAsync(UnfinishedDataFrame(5_000));
        await WaitUntil(() => memory.Held >= 20 * 5_000, "the small unfinished frames to be held");
        // ... then 16 peers hold 40,000-byte ones (64 KiB buffers): together 1.3 MiB, past the 1 MiB budget.
        var large = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => TestPeer.ConnectAsync(service.Port)));
        foreach (var peer in large) await peer.SendAsync(UnfinishedDataFrame(40_000));

        var closed = (await Task.WhenAll(large.Select(async peer =>
        {
            try
            {
                var notice = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(3));
                Assert.Null(await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(5)));
                return notice?.Data ?? "closed without a notice";
            }
            catch (TimeoutException)
            {
                // Not among the largest needed to get back under the budget: it keeps its frame.
                return null;
            }
        }))).OfType<string>().ToList();
        output.WriteLine($"{closed.Count} of {large.Length} large holders closed; held now {memory.Held} of {memory.Budget} bytes; first notice: {closed.FirstOrDefault()}");

        Assert.NotEmpty(closed);
        Assert.True(closed.Count < large.Length, "every large holder was closed, not only enough of the largest");
        Assert.All(closed, notice =>
        {
            Assert.StartsWith("frame-too-large: an unfinished frame held ", notice);
            Assert.Contains("limits.pending-frame-memory (1048576 bytes)", notice);
        });
        await WaitUntil(() => memory.Held <= Budget, "the held memory to be back under the budget");

        // Every small holder is untouched: it finishes its frame and gets its echo; bystanders are answered.
        foreach (var peer in small)
        {
            await peer.SendAsync("tail\"}\n");
            var echo = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
            Assert.Equal(FrameType.Data, echo?.Type);
            Assert.EndsWith("tail", echo!.Data);
        }
        foreach (var peer in bystanders)
        {
            await peer.SendHeartbeatAsync(7);
            Assert.Equal(7, (await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(5)))?.Seq);
        }
        var stats = await service.WaitForStatsAsync(s => s.ClosedByReason.GetValueOrDefault("frame-too-large") == closed.Count);
        Assert.Equal(bystanders.Length + small.Length + large.Length - closed.Count, stats.Active);

        foreach (var peer in bystanders.Concat(small).Concat(large)) peer.Dispose();
        await WaitUntil(() => memory.Held == 0, "every unfinished frame to be released once the peers left");
    }

    [Fact]
    public void The_budget_must_be_read_from_the_configuration_with_a_production_default()
    {
        Assert.Equal(256L * 1024 * 1024, SupervisorConfig.Read(SupervisorConfig.Build("", null)).PendingFrameMemory);
        Assert.Equal(1024 * 1024, SupervisorConfig.Read(SupervisorConfig.Build("supervisor.limits.pending-frame-memory = 1MiB", null)).PendingFrameMemory);
        var error = Assert.Throws<ConfigurationError>(() =>
            SupervisorConfig.Read(SupervisorConfig.Build("supervisor.limits.pending-frame-memory = lots", null)));
        Assert.Contains("supervisor.limits.pending-frame-memory", error.Message);
    }

    /// <summary>A data frame without its end: <c>{"type":2,"timestamp":1,"data":"xxx…</c>, no closing quote, no newline.</summary>
    private static byte[] UnfinishedDataFrame(int length)
    {
        const string head = "{\"type\":2,\"timestamp\":1,\"data\":\"";
        return Encoding.ASCII.GetBytes(head + new string('x', length - head.Length));
    }

    private static async Task WaitUntil(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"waited 10 s for {what}");
            await Task.Delay(20);
        }
    }
}
