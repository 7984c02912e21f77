using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.TestKit;
using Supervisor.Simulation;

namespace Supervisor.Tests.Monitoring;

/// <summary>
/// The simulation's clock replaced Akka.TestKit's TestScheduler for speed (bench/README, issue 16); a run must give the
/// same report on it, so it must run the same work at the same instants in the same order. Both clocks get the same
/// random script (work scheduled from work, zero delays landing on the instant being run, cancelled and repeating work,
/// advances on and off the grid) and must leave the same trace.
/// </summary>
public sealed class VirtualClockTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Virtual_clock_must_run_scheduled_work_at_the_same_instants_in_the_same_order_as_the_TestScheduler(int seed)
    {
        var testScheduler = new TestScheduler(ConfigurationFactory.Empty, NoLogger.Instance);
        var expected = Trace(testScheduler, testScheduler.Advance, (delay, run) => testScheduler.ScheduleOnce(delay, run), seed);
        var clock = new VirtualClock(ConfigurationFactory.Empty, NoLogger.Instance);
        var actual = Trace(clock, clock.Advance, (delay, run) => clock.Schedule(delay, (state, _) => ((Action)state)(), run, 0), seed);

        Assert.True(expected.Count > 300, $"the script ran only {expected.Count} pieces of work");
        Assert.Equal(expected, actual);
    }

    /// <param name="simulationEvent">How the simulation schedules its peers' sends on this clock.</param>
    private static List<string> Trace(IScheduler scheduler, Action<TimeSpan> advance, Action<TimeSpan, Action> simulationEvent, int seed)
    {
        var trace = new List<string>();
        var random = new Random(seed);
        var start = scheduler.Now;
        var next = 0;
        var repeating = new Dictionary<int, (ICancelable Cancelable, int Left)>();
        Recorder recorder = null!; // (assigned before any work runs: planning work plans tells to it)

        void Ran(int id, int depth)
        {
            trace.Add($"{id}@{(scheduler.Now - start).Ticks}");
            if (repeating.TryGetValue(id, out var r) && (r = r with { Left = r.Left - 1 }).Left == 0) r.Cancelable.Cancel();
            else if (repeating.ContainsKey(id)) repeating[id] = r;
            if (depth < 3)
                for (var i = random.Next(4); i > 0; i--)
                    Plan(depth + 1);
        }

        TimeSpan Delay() => random.Next(5) switch
        {
            0 => TimeSpan.Zero, // lands on the instant being run, or on the advance's end
            1 => TimeSpan.FromMilliseconds(100),
            2 => TimeSpan.FromMilliseconds(random.Next(0, 1000)),
            3 => TimeSpan.FromTicks(random.Next(1, 10)),
            _ => TimeSpan.FromMilliseconds(100 * random.Next(1, 10)),
        };

        void Plan(int depth)
        {
            var id = next++;
            var delay = Delay();
            var cancelable = new Cancelable(scheduler);
            switch (random.Next(8))
            {
                case 0:
                    scheduler.Advanced.ScheduleOnce(delay, () => Ran(id, depth));
                    break;
                case 1:
                    // TestScheduler ignores this cancelable: the trace shows whether the clock does too.
                    scheduler.Advanced.ScheduleOnce(delay, () => Ran(id, depth), cancelable);
                    if (random.Next(2) == 0) cancelable.Cancel();
                    break;
                case 2:
                    scheduler.ScheduleTellOnce(delay, recorder, new Planned(id, depth), ActorRefs.NoSender);
                    break;
                case 3:
                    scheduler.ScheduleTellOnce(delay, recorder, new Planned(id, depth), ActorRefs.NoSender, cancelable);
                    if (random.Next(2) == 0) cancelable.Cancel();
                    break;
                case 4:
                    repeating[id] = (cancelable, random.Next(1, 5));
                    scheduler.ScheduleTellRepeatedly(delay, TimeSpan.FromMilliseconds(100 * random.Next(0, 4)), recorder, new Planned(id, 3), ActorRefs.NoSender, cancelable);
                    break;
                case 5:
                    repeating[id] = (cancelable, random.Next(1, 5));
                    scheduler.Advanced.ScheduleRepeatedly(delay, TimeSpan.FromMilliseconds(100 * random.Next(0, 4)), () => Ran(id, 3), cancelable);
                    break;
                default:
                    simulationEvent(delay, () => Ran(id, depth));
                    break;
            }
        }

        recorder = new Recorder(message => Ran(message.Id, message.Depth));
        for (var i = 0; i < 60; i++) Plan(0);
        for (var step = 0; step < 200; step++)
        {
            advance(random.Next(6) switch
            {
                0 => TimeSpan.Zero,
                1 => TimeSpan.FromMilliseconds(50),
                2 => TimeSpan.FromMilliseconds(250),
                3 => TimeSpan.FromSeconds(1),
                _ => TimeSpan.FromMilliseconds(100),
            });
            if (random.Next(4) == 0) Plan(0);
        }
        return trace;
    }

    private sealed record Planned(int Id, int Depth);

    private sealed class Recorder(Action<Planned> ran) : ICanTell
    {
        public void Tell(object message, IActorRef sender) => ran((Planned)message);
    }
}
