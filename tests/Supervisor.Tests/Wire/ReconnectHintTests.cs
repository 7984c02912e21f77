using Supervisor.Connections;
using Supervisor.Messages.Wire;
using Xunit;

namespace Supervisor.Tests.Wire;

/// <summary>The reconnect hint of a <c>server-shutdown</c> notice (DESIGN §2): its text, how it is read, how the moments are spread.</summary>
public sealed class ReconnectHintTests
{
    [Fact]
    public void A_hint_must_end_the_notice_text_in_whole_milliseconds_and_be_read_back_from_it()
    {
        var notice = CloseReason.ServerShutdown.NoticeText(CloseReasons.WithReconnectHint("the server is shutting down", TimeSpan.FromMilliseconds(1234.9)));
        Assert.Equal("server-shutdown: the server is shutting down; reconnect-after=1234ms", notice);
        Assert.True(CloseReasons.TryReadReconnectHint(notice, out var after));
        Assert.Equal(TimeSpan.FromMilliseconds(1234), after);
        // As the heartbeat client quotes it, after its own detail.
        Assert.True(CloseReasons.TryReadReconnectHint($"the server closed the connection; the server said: {notice}", out after));
        Assert.Equal(TimeSpan.FromMilliseconds(1234), after);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("server-shutdown: the server is shutting down")]
    [InlineData("server-shutdown: reconnect-after=ms")]
    [InlineData("server-shutdown: reconnect-after=12s")]
    [InlineData("server-shutdown: reconnect-after=-5ms")]
    [InlineData("server-shutdown: reconnect-after=99999999999ms")]
    public void Text_without_a_well_formed_hint_must_have_none(string? notice) =>
        Assert.False(CloseReasons.TryReadReconnectHint(notice, out _));

    [Fact]
    public void Moments_must_be_one_per_equal_slot_of_the_window_in_no_fixed_order()
    {
        var random = new Random(16);
        var spread = TimeSpan.FromSeconds(5);
        var delays = ReconnectHints.Spread(1000, spread, random);
        var sorted = delays.Order().ToArray();
        for (var i = 0; i < sorted.Length; i++)
            Assert.InRange(sorted[i], TimeSpan.FromMilliseconds(5 * i), TimeSpan.FromMilliseconds(5 * i + 4));
        Assert.NotEqual(sorted, delays);
        Assert.Empty(ReconnectHints.Spread(0, spread, random));
        Assert.All(Enumerable.Range(0, 100).Select(_ => ReconnectHints.Any(spread, random)), d => Assert.InRange(d, TimeSpan.Zero, spread));
    }
}
