using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Akka.Dispatch;
using Akka.Event;

namespace Supervisor.Simulation;

/// <summary>
/// The simulation's scheduler: virtual time that moves only when <see cref="Advance"/> is called, with Akka.TestKit's
/// <c>TestScheduler</c>'s order of work exactly (so a run gives the same report on either), at a fraction of its cost.
/// An hour of 10,000 peers is about 7 million scheduled heartbeats; the TestScheduler kept each as a closure, a delegate
/// and a queue item that lived for an interval of virtual time (tens of steps), which is the worst shape of garbage for
/// the GC: it survived gen0 and was collected in gen1, and the run spent about half its time collecting it. Here
/// work is a struct in a per-instant list reused from a pool, and the simulation's own events
/// (<see cref="Schedule"/>) carry their state without a closure.
/// <para>
/// The order, as TestScheduler's: an advance takes the instants that are due when it starts, earliest first; each
/// instant runs its work in the order it was scheduled, as it stood when that instant began to run. Work scheduled
/// during an advance for its own end (a zero delay) joins that instant if it has not begun yet and waits for the next
/// advance otherwise; work scheduled for an instant while it runs is dropped (a repeating one is re-armed). Callback
/// exceptions propagate. <c>ScheduleOnce(delay, action, cancelable)</c> ignores the cancelable, as TestScheduler does.
/// The TestScheduler comparison test (tests, VirtualClockTests) pins this order down.
/// </para>
/// </summary>
internal sealed class VirtualClock : IScheduler, IAdvancedScheduler
{
    private DateTimeOffset _now = DateTimeOffset.UtcNow;
    private readonly Dictionary<long, List<Work>> _instants = [];
    private readonly PriorityQueue<long, long> _pending = new();
    private readonly Stack<List<Work>> _spare = new();
    private readonly List<long> _due = [];

    /// <summary>Akka creates the scheduler from <c>akka.scheduler.implementation</c> with these arguments (both unused).</summary>
    public VirtualClock(Config schedulerConfig, ILoggingAdapter log)
    {
    }

    public DateTimeOffset Now => _now;
    // Real time, as TestScheduler's (Akka's own monotonic clock is internal to it): virtual time is Now alone.
    public TimeSpan MonotonicClock => Stopwatch.GetElapsedTime(Started);
    public TimeSpan HighResMonotonicClock => Stopwatch.GetElapsedTime(Started);

    private static readonly long Started = Stopwatch.GetTimestamp();
    public IAdvancedScheduler Advanced => this;

    /// <summary>Moves virtual time on by <paramref name="offset"/> and runs the work due by then (see the class's order).</summary>
    public void Advance(TimeSpan offset)
    {
        _now = _now.Add(offset);
        var nowTicks = _now.UtcTicks;
        _due.Clear();
        while (_pending.TryPeek(out var instant, out _) && instant <= nowTicks)
            _due.Add(_pending.Dequeue());
        foreach (var instant in _due)
        {
            var work = _instants[instant];
            // As it stood when the instant began: what is added to it while it runs does not run.
            var count = work.Count;
            for (var i = 0; i < count; i++)
            {
                var item = work[i];
                if (item.Cancelable is { IsCancellationRequested: true }) continue;
                item.Run();
                item.DeliveryCount++;
                work[i] = item;
            }
            _instants.Remove(instant);
            foreach (var item in work)
                if (item.Repeating && item.Cancelable is not { IsCancellationRequested: true })
                    // Re-armed as TestScheduler does: counted afresh, repeating only if it ran.
                    Add(item.Delay, item with { Repeating = item.DeliveryCount > 0, DeliveryCount = 0 });
            work.Clear();
            _spare.Push(work);
        }
    }

    /// <summary>
    /// Calls <paramref name="handler"/>(<paramref name="state"/>, <paramref name="argument"/>) after <paramref name="delay"/>,
    /// in the same order as the rest of the scheduled work, without allocating: the simulation's peers' sends.
    /// </summary>
    public void Schedule(TimeSpan delay, Action<object, long> handler, object state, long argument) =>
        Add(delay, new Work { Handler = handler, State = state, Argument = argument, Delay = delay });

    private void Add(TimeSpan delay, Work work)
    {
        var instant = _now.Add(delay).UtcTicks;
        if (!_instants.TryGetValue(instant, out var list))
        {
            list = _spare.Count > 0 ? _spare.Pop() : [];
            _instants.Add(instant, list);
            _pending.Enqueue(instant, instant);
        }
        list.Add(work);
    }

    public void ScheduleTellOnce(TimeSpan delay, ICanTell receiver, object message, IActorRef sender) =>
        Add(delay, new Work { Receiver = receiver, Message = message, Sender = sender, Delay = delay });

    public void ScheduleTellOnce(TimeSpan delay, ICanTell receiver, object message, IActorRef sender, ICancelable cancelable) =>
        Add(delay, new Work { Receiver = receiver, Message = message, Sender = sender, Cancelable = cancelable, Delay = delay });

    public void ScheduleTellRepeatedly(TimeSpan initialDelay, TimeSpan interval, ICanTell receiver, object message, IActorRef sender) =>
        Add(initialDelay, new Work { Receiver = receiver, Message = message, Sender = sender, Delay = interval, Repeating = true });

    public void ScheduleTellRepeatedly(TimeSpan initialDelay, TimeSpan interval, ICanTell receiver, object message, IActorRef sender,
        ICancelable cancelable) =>
        Add(initialDelay, new Work { Receiver = receiver, Message = message, Sender = sender, Cancelable = cancelable, Delay = interval, Repeating = true });

    public void ScheduleOnce(TimeSpan delay, Action action) => Add(delay, new Work { Action = action, Delay = delay });

    // TestScheduler does not apply the cancelable here, and the simulation's results must not depend on the scheduler.
    public void ScheduleOnce(TimeSpan delay, Action action, ICancelable cancelable) => Add(delay, new Work { Action = action, Delay = delay });

    public void ScheduleRepeatedly(TimeSpan initialDelay, TimeSpan interval, Action action) =>
        Add(initialDelay, new Work { Action = action, Delay = interval, Repeating = true });

    public void ScheduleRepeatedly(TimeSpan initialDelay, TimeSpan interval, Action action, ICancelable cancelable) =>
        Add(initialDelay, new Work { Action = action, Cancelable = cancelable, Delay = interval, Repeating = true });

    // Nor does TestScheduler run IRunnables: nothing in the simulation asks for them.
    public void ScheduleOnce(TimeSpan delay, IRunnable action, ICancelable cancelable) => throw new NotSupportedException();
    public void ScheduleOnce(TimeSpan delay, IRunnable action) => throw new NotSupportedException();
    public void ScheduleRepeatedly(TimeSpan initialDelay, TimeSpan interval, IRunnable action, ICancelable cancelable) => throw new NotSupportedException();
    public void ScheduleRepeatedly(TimeSpan initialDelay, TimeSpan interval, IRunnable action) => throw new NotSupportedException();

    /// <summary>One piece of scheduled work: a message, an action, or a simulation event (handler, state, argument).</summary>
    private struct Work
    {
        public ICanTell? Receiver;
        public object? Message;
        public IActorRef? Sender;
        public Action? Action;
        public Action<object, long>? Handler;
        public object? State;
        public long Argument;
        public ICancelable? Cancelable;
        /// <summary>The delay it was scheduled with; for repeating work, the interval it is re-armed with.</summary>
        public TimeSpan Delay;
        public bool Repeating;
        public int DeliveryCount;

        public readonly void Run()
        {
            if (Message is not null) Receiver!.Tell(Message, Sender);
            else if (Action is not null) Action();
            else Handler!(State!, Argument);
        }
    }
}
