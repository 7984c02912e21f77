using Supervisor.Messages.Protocol;

namespace Supervisor.Probes;

/// <summary>
/// HAProxy's rise/fall, free of actors and clocks: <c>rise</c> consecutive successes make a probe up,
/// <c>fall</c> consecutive failures make it down; anything less leaves the state as it was (unknown at start).
/// </summary>
internal sealed class ProbeTracker(int rise, int fall)
{
    public ProbeState State { get; private set; } = ProbeState.Unknown;
    public int ConsecutiveSuccesses { get; private set; }
    public int ConsecutiveFailures { get; private set; }

    /// <summary>Counts one check; returns the new state when this check changed it.</summary>
    public ProbeState? Record(bool success)
    {
        if (success)
        {
            ConsecutiveSuccesses++;
            ConsecutiveFailures = 0;
            if (State != ProbeState.Up && ConsecutiveSuccesses >= rise) return State = ProbeState.Up;
        }
        else
        {
            ConsecutiveFailures++;
            ConsecutiveSuccesses = 0;
            if (State != ProbeState.Down && ConsecutiveFailures >= fall) return State = ProbeState.Down;
        }
        return null;
    }
}
