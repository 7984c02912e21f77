namespace Supervisor.Connections;

/// <summary>
/// The settings of a phi accrual failure detector (<c>heartbeat.phi</c>), as Akka's
/// <c>PhiAccrualFailureDetector</c> names them (Hayashibara et al., "The φ Accrual Failure Detector").
/// </summary>
/// <param name="SuspectThreshold">φ at which the connection becomes suspect.</param>
/// <param name="Threshold">φ at which the connection is closed with heartbeat-timeout (always by the hard timeout too).</param>
/// <param name="MaxSampleSize">How many inter-arrival times each connection remembers (4 bytes each).</param>
/// <param name="MinStdDeviation">The least standard deviation assumed, so a metronome-steady peer is not closed on the first late heartbeat.</param>
/// <param name="AcceptableHeartbeatPause">Added to the learned mean: the lateness that is never suspect.</param>
/// <param name="FirstHeartbeatEstimate">The mean assumed before any interval was seen (its deviation a quarter of it).</param>
internal sealed record PhiSettings(
    double SuspectThreshold,
    double Threshold,
    int MaxSampleSize,
    TimeSpan MinStdDeviation,
    TimeSpan AcceptableHeartbeatPause,
    TimeSpan FirstHeartbeatEstimate)
{
    /// <summary>
    /// The pause and the first estimate were <c>auto</c> (the interval): they follow a connection's negotiated interval
    /// as its timeout does, where an explicit value (a mobile listener's 20 s pause) is the network's, kept as set.
    /// </summary>
    public bool PauseFollowsInterval { get; init; }

    /// <inheritdoc cref="PauseFollowsInterval"/>
    public bool EstimateFollowsInterval { get; init; }

    /// <summary>How many deviations past the mean φ reaches <see cref="SuspectThreshold"/>; see <see cref="PhiAccrual.DeviationsAt"/>.</summary>
    public double SuspectDeviations { get; } = PhiAccrual.DeviationsAt(SuspectThreshold);

    /// <summary>How many deviations past the mean φ reaches <see cref="Threshold"/>.</summary>
    public double CloseDeviations { get; } = PhiAccrual.DeviationsAt(Threshold);
}

/// <summary>
/// One connection's phi accrual failure detector: the peer's heartbeat inter-arrival times in a bounded ring, their
/// mean and deviation kept as running sums, and φ(t) = −log10(P(the next heartbeat comes later than t)) under a normal
/// distribution (Akka's logistic approximation of its CDF). A heartbeat costs a ring write and two additions, no
/// allocation.
/// <para>
/// Because the threshold is fixed, the time at which φ crosses it is a closed form: mean + pause + y·σ, with y the
/// number of deviations at which the approximation reaches the threshold, solved once per setting
/// (<see cref="DeviationsAt"/>). So the detector gives the connection a deadline, and the connection keeps one entry
/// in the deadline queue as with a fixed timeout, instead of evaluating φ on a timer.
/// </para>
/// </summary>
internal sealed class PhiAccrual
{
    private readonly PhiSettings _settings;
    private readonly int[] _intervalsMs;
    private int _count;
    private int _next;
    private long _sumMs;
    private long _squaredSumMs;
    private long _lastHeartbeatTicks;
    private bool _skipNextInterval;
    private bool _learnedAny;
    private double _pauseMs;

    public PhiAccrual(PhiSettings settings)
    {
        _settings = settings;
        _intervalsMs = new int[Math.Max(2, settings.MaxSampleSize)];
        _pauseMs = settings.AcceptableHeartbeatPause.TotalMilliseconds;
        Seed(settings.FirstHeartbeatEstimate);
    }

    /// <summary>As Akka: start from the estimate, with a deviation of a quarter of it, as two samples.</summary>
    private void Seed(TimeSpan estimate)
    {
        var mean = (long)estimate.TotalMilliseconds;
        var deviation = mean / 4;
        Add(mean - deviation);
        Add(mean + deviation);
    }

    /// <summary>
    /// The peer's interval was negotiated: an <c>auto</c> pause becomes it, and an <c>auto</c> first estimate is
    /// seeded again from it while nothing real has been learned (the listener's 30 s seeds would otherwise widen a
    /// 5 s peer's deviation for its first max-sample-size heartbeats).
    /// </summary>
    public void FollowInterval(TimeSpan interval)
    {
        if (_settings.PauseFollowsInterval) _pauseMs = interval.TotalMilliseconds;
        if (!_settings.EstimateFollowsInterval || _learnedAny) return;
        _count = _next = 0;
        _sumMs = _squaredSumMs = 0;
        Seed(interval);
    }

    /// <summary>Intervals remembered (the two seeded from the first-heartbeat estimate among them until they are pushed out).</summary>
    public int Samples => _count;

    /// <summary>The mean inter-arrival time learned, ms.</summary>
    public double MeanMs => (double)_sumMs / _count;

    /// <summary>The standard deviation of the inter-arrival time learned, ms (before the minimum is applied).</summary>
    public double StdDeviationMs
    {
        get
        {
            var mean = MeanMs;
            var variance = (double)_squaredSumMs / _count - mean * mean;
            return variance > 0 ? Math.Sqrt(variance) : 0;
        }
    }

    /// <summary>A heartbeat arrived: the time since the one before is learned (unless <see cref="SkipNextInterval"/> said not to).</summary>
    public void OnHeartbeat(DateTimeOffset at)
    {
        if (_lastHeartbeatTicks != 0 && !_skipNextInterval) OnInterval(TimeSpan.FromTicks(at.UtcTicks - _lastHeartbeatTicks));
        _skipNextInterval = false;
        _lastHeartbeatTicks = at.UtcTicks;
    }

    /// <summary>The next interval spans a stall of this process: it says nothing about the peer and is not learned.</summary>
    public void SkipNextInterval() => _skipNextInterval = true;

    /// <summary>Records the time between two heartbeats.</summary>
    public void OnInterval(TimeSpan interval)
    {
        // Clamped so the squared sum cannot overflow (an hour is far beyond any heartbeat interval).
        var ms = (long)Math.Clamp(interval.TotalMilliseconds, 0, 3_600_000);
        _learnedAny = true;
        Add(ms);
    }

    private void Add(long ms)
    {
        if (_count == _intervalsMs.Length)
        {
            long oldest = _intervalsMs[_next];
            _sumMs -= oldest;
            _squaredSumMs -= oldest * oldest;
        }
        else
        {
            _count++;
        }
        _intervalsMs[_next] = (int)ms;
        _next = (_next + 1) % _intervalsMs.Length;
        _sumMs += ms;
        _squaredSumMs += ms * ms;
    }

    private double AdjustedMeanMs => MeanMs + _pauseMs;

    private double AdjustedStdDeviationMs => Math.Max(StdDeviationMs, _settings.MinStdDeviation.TotalMilliseconds);

    /// <summary>How long after the last heartbeat φ reaches the suspect threshold.</summary>
    public TimeSpan SuspectAfter => TimeSpan.FromMilliseconds(AdjustedMeanMs + _settings.SuspectDeviations * AdjustedStdDeviationMs);

    /// <summary>How long after the last heartbeat φ reaches the close threshold.</summary>
    public TimeSpan CloseAfter => TimeSpan.FromMilliseconds(AdjustedMeanMs + _settings.CloseDeviations * AdjustedStdDeviationMs);

    /// <summary>φ when the last heartbeat came <paramref name="sinceLastHeartbeat"/> ago.</summary>
    public double Phi(TimeSpan sinceLastHeartbeat) =>
        PhiOf(sinceLastHeartbeat.TotalMilliseconds, AdjustedMeanMs, AdjustedStdDeviationMs);

    /// <summary>Akka's φ: −log10 of the logistic approximation of the normal distribution's upper tail.</summary>
    internal static double PhiOf(double timeDiffMs, double meanMs, double stdDeviationMs)
    {
        var y = (timeDiffMs - meanMs) / stdDeviationMs;
        var e = Math.Exp(-y * (1.5976 + 0.070566 * y * y));
        return timeDiffMs > meanMs ? -Math.Log10(e / (1.0 + e)) : -Math.Log10(1.0 - 1.0 / (1.0 + e));
    }

    /// <summary>
    /// The y (deviations past the mean) at which φ equals <paramref name="threshold"/>: the root of
    /// 0.070566·y³ + 1.5976·y = −ln(p / (1 − p)) with p = 10^−threshold, by Newton's method (the left side only grows).
    /// </summary>
    internal static double DeviationsAt(double threshold)
    {
        if (threshold <= 0) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "a phi threshold is above 0");
        var p = Math.Pow(10, -threshold);
        var target = -Math.Log(p / (1 - p));
        var y = target / 1.5976;
        for (var i = 0; i < 50; i++)
        {
            var f = 0.070566 * y * y * y + 1.5976 * y - target;
            var slope = 3 * 0.070566 * y * y + 1.5976;
            var step = f / slope;
            y -= step;
            if (Math.Abs(step) < 1e-12) break;
        }
        return y;
    }
}
