using Supervisor.Messages.Wire;
using Xunit;

namespace Supervisor.Tests.Support;

/// <summary>What a peer of a service shutting down with the shipped defaults is told (DESIGN §2, the reconnect hint).</summary>
internal static class ShutdownNotices
{
    /// <summary>The shipped <c>shutdown.reconnect-hint.spread</c>.</summary>
    public static readonly TimeSpan DefaultSpread = TimeSpan.FromSeconds(5);

    /// <summary>Asserts the notice is exactly the shutdown text with a hint inside the window; returns the hint.</summary>
    public static TimeSpan AssertHinted(string? notice, TimeSpan? spread = null)
    {
        Assert.NotNull(notice);
        Assert.Matches(@"^server-shutdown: the server is shutting down; reconnect-after=\d+ms$", notice);
        Assert.True(CloseReasons.TryReadReconnectHint(notice, out var after), notice);
        Assert.InRange(after, TimeSpan.Zero, (spread ?? DefaultSpread) - TimeSpan.FromMilliseconds(1));
        return after;
    }
}
