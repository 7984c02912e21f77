using Supervisor.Connections;
using Xunit;

namespace Supervisor.Tests.Connections;

public sealed class PhiAccrualTests
{
    private static PhiSettings Settings(int samples = 16, double minStdMs = 100, double pauseMs = 0, double firstMs = 1000) =>
        new(SuspectThreshold: 3, Threshold: 8, samples, TimeSpan.FromMilliseconds(minStdMs), TimeSpan.FromMilliseconds(pauseMs),
            TimeSpan.FromMilliseconds(firstMs));

    [Theory]
    [InlineData(1.0)]
    [InlineData(3.0)]
    [InlineData(8.0)]
    [InlineData(10.0)]
    [InlineData(16.0)]
    public void The_closed_form_deadline_must_be_where_phi_reaches_the_threshold(double threshold)
    {
        var y = PhiAccrual.DeviationsAt(threshold);
        Assert.Equal(threshold, PhiAccrual.PhiOf(1000 + y * 150, 1000, 150), 9);
        Assert.True(PhiAccrual.PhiOf(1000 + (y - 0.01) * 150, 1000, 150) < threshold);
    }

    [Fact]
    public void It_must_learn_the_mean_and_deviation_and_forget_beyond_its_history()
    {
        var phi = new PhiAccrual(Settings(samples: 4));
        // Seeded from the first-heartbeat estimate: 750 and 1250 ms.
        Assert.Equal(1000, phi.MeanMs, 9);
        Assert.Equal(250, phi.StdDeviationMs, 9);
        foreach (var ms in new[] { 1800, 2200, 1800, 2200 }) phi.OnInterval(TimeSpan.FromMilliseconds(ms));
        // The seeds are pushed out of a 4-interval history.
        Assert.Equal(4, phi.Samples);
        Assert.Equal(2000, phi.MeanMs, 9);
        Assert.Equal(200, phi.StdDeviationMs, 9);
    }

    [Fact]
    public void A_steady_peer_gets_a_tight_deadline_and_a_jittery_one_a_wider_one()
    {
        var steady = new PhiAccrual(Settings());
        var jittery = new PhiAccrual(Settings());
        var random = new Random(7);
        for (var i = 0; i < 16; i++)
        {
            steady.OnInterval(TimeSpan.FromMilliseconds(2000 + random.Next(-20, 21)));
            jittery.OnInterval(TimeSpan.FromMilliseconds(2000 + random.Next(-800, 801)));
        }
        // Steady: the minimum deviation (100 ms) applies; φ = 8 is 5.26 deviations past the mean.
        Assert.InRange(steady.CloseAfter.TotalMilliseconds, 2000 + 5.1 * 100, 2000 + 5.4 * 100);
        Assert.True(jittery.CloseAfter > steady.CloseAfter + TimeSpan.FromSeconds(1), $"jittery {jittery.CloseAfter}, steady {steady.CloseAfter}");
        Assert.True(steady.SuspectAfter < steady.CloseAfter);
    }

    [Fact]
    public void Phi_must_grow_with_silence_and_the_pause_must_move_the_deadline_later()
    {
        var phi = new PhiAccrual(Settings(pauseMs: 500));
        for (var i = 0; i < 16; i++) phi.OnInterval(TimeSpan.FromSeconds(1));
        var previous = -1.0;
        foreach (var ms in new[] { 1000, 1300, 1500, 1600, 1800, 2500 })
        {
            var value = phi.Phi(TimeSpan.FromMilliseconds(ms));
            Assert.True(value > previous, $"phi at {ms} ms: {value}, before: {previous}");
            previous = value;
        }
        Assert.Equal(8, phi.Phi(phi.CloseAfter), 4); // the deadline is rounded to whole ticks
        Assert.Equal(3, phi.Phi(phi.SuspectAfter), 4);
        Assert.True(phi.SuspectAfter > TimeSpan.FromMilliseconds(1500), "the acceptable pause is never suspect");
    }

    [Fact]
    public void A_heartbeat_must_allocate_nothing()
    {
        var phi = new PhiAccrual(Settings());
        phi.OnInterval(TimeSpan.FromSeconds(1));
        _ = phi.CloseAfter;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            phi.OnInterval(TimeSpan.FromMilliseconds(1000 + i % 50));
            _ = phi.CloseAfter;
            _ = phi.SuspectAfter;
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void A_threshold_must_be_above_zero() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => PhiAccrual.DeviationsAt(0));
}
