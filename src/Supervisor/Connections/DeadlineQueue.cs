using Akka.Actor;
using Akka.Event;

namespace Supervisor.Connections;

/// <summary>
/// The heartbeat deadlines of every connection in one actor system, instead of an Akka timer per
/// connection. A connection publishes its next deadline after every frame (<see cref="Deadline.Set"/>:
/// a volatile write when the deadline only moves later, which is what a frame does), and the queue
/// tells the connection its message only when a published deadline has really passed. A peer that
/// heartbeats steadily therefore costs no timer message, no re-arm and no allocation per heartbeat;
/// a stale queue entry is moved to the newer deadline by the queue itself (Kestrel stores deadlines
/// and compares them the same way).
/// <para>
/// With Akka's own real-time scheduler the queue waits on a thread of its own and checks at most
/// every <see cref="Resolution"/>, so a deadline is acted on within about that much of its time. With
/// any other scheduler (the TestKit's virtual-time scheduler in tests and simulations) it schedules
/// its checks on that scheduler, so virtual time drives it exactly as it drives actor timers.
/// </para>
/// </summary>
internal sealed class DeadlineQueue : IExtension
{
    /// <summary>How often, at most, the real-time queue wakes up to look for due deadlines.</summary>
    public static readonly TimeSpan Resolution = TimeSpan.FromMilliseconds(5);

    private readonly object _lock = new();
    private readonly PriorityQueue<Deadline, long> _queue = new();
    private readonly IScheduler _scheduler;
    private readonly Thread? _thread;
    // Virtual time: the instants a check is scheduled at. The first check at an instant takes every deadline due by then,
    // so a second one there would find nothing; yet each check that ran scheduled the next, and the duplicates grew
    // without bound (a 10,000-peer simulated hour ran hundreds of empty checks per step by its end, issue 16).
    private readonly HashSet<long>? _checksScheduled;
    private readonly EventStream _events;
    private long _wakeAt = long.MaxValue;   // real time: when the thread wakes next; else: the earliest scheduled check
    private bool _stopped;

    public static DeadlineQueue Get(ActorSystem system) => system.WithExtension<DeadlineQueue, DeadlineQueueProvider>();

    public DeadlineQueue(ExtendedActorSystem system)
    {
        _scheduler = system.Scheduler;
        _events = system.EventStream;
        if (_scheduler is HashedWheelTimerScheduler)
        {
            _thread = new Thread(Run) { IsBackground = true, Name = "supervisor-deadlines" };
            _thread.Start();
            system.RegisterOnTermination(Stop);
        }
        else
        {
            _checksScheduled = [];
        }
    }

    private long NowTicks => _scheduler.Now.UtcTicks;

    /// <summary>A deadline that tells <paramref name="owner"/> <paramref name="message"/> when it passes; not armed yet.</summary>
    public Deadline Register(IActorRef owner, object message) => new(this, owner, message);

    /// <summary>Live deadlines and stale entries held now (for tests and benchmarks).</summary>
    public int Count
    {
        get { lock (_lock) return _queue.Count; }
    }

    internal void Enqueue(Deadline deadline, long dueTicks)
    {
        lock (_lock)
        {
            if (_stopped) return;
            _queue.Enqueue(deadline, dueTicks);
            deadline.QueuedAt = dueTicks;
            deadline.Queued = true;
            if (dueTicks >= _wakeAt) return;
            if (_thread is not null) Monitor.Pulse(_lock);
            else ScheduleCheck(dueTicks);
        }
    }

    internal void Remove(Deadline deadline)
    {
        // Its queue entry stays until its time and is dropped then as stale.
        lock (_lock) deadline.Queued = false;
    }

    /// <summary>Takes every deadline that is due at <paramref name="now"/>; moves the entries whose deadline moved later.</summary>
    /// <param name="wokeLateTicks">How much later than it meant to the queue woke up: the process stalled, and
    /// every deadline taken now fell due in the stall or before it, however late it is itself.</param>
    private void TakeDue(long now, List<Deadline> due, long wokeLateTicks)
    {
        while (_queue.TryPeek(out var deadline, out var key) && key <= now)
        {
            _queue.Dequeue();
            if (!deadline.Queued || key != deadline.QueuedAt) continue; // superseded entry
            var current = Volatile.Read(ref deadline.DueTicks);
            if (current > now)
            {
                _queue.Enqueue(deadline, current);
                deadline.QueuedAt = current;
                continue;
            }
            deadline.Queued = false;
            deadline.QueueLateTicks = Math.Max(0, wokeLateTicks);
            due.Add(deadline);
        }
    }

    private void Run()
    {
        var due = new List<Deadline>();
        var lastWake = 0L;
        var meantToWakeAt = long.MaxValue;
        while (true)
        {
            lock (_lock)
            {
                while (true)
                {
                    if (_stopped) return;
                    var now = NowTicks;
                    // Each wake's lateness is told once: the loop comes round again without waiting after it fires.
                    var wokeLate = now - meantToWakeAt;
                    meantToWakeAt = long.MaxValue;
                    if (wokeLate >= ProcessStalled.NoticeAbove.Ticks)
                        _events.Publish(new ProcessStalled(TimeSpan.FromTicks(wokeLate), new DateTimeOffset(now, TimeSpan.Zero)));
                    if (now - lastWake >= Resolution.Ticks)
                    {
                        lastWake = now;
                        TakeDue(now, due, wokeLate);
                        if (due.Count > 0) break;
                    }
                    var next = _queue.TryPeek(out _, out var key) ? key : now + TimeSpan.TicksPerSecond;
                    _wakeAt = Math.Max(next, lastWake + Resolution.Ticks);
                    var waitMs = Math.Clamp((int)Math.Ceiling((_wakeAt - now) / (double)TimeSpan.TicksPerMillisecond), 1, 1000);
                    meantToWakeAt = now + waitMs * TimeSpan.TicksPerMillisecond;
                    Monitor.Wait(_lock, waitMs);
                    _wakeAt = long.MinValue; // awake: no pulse needed until it waits again
                }
            }
            Fire(due);
        }
    }

    private void ScheduleCheck(long dueTicks)
    {
        _wakeAt = dueTicks;
        var at = Math.Max(dueTicks, NowTicks);
        if (!_checksScheduled!.Add(at)) return;
        _scheduler.Advanced.ScheduleOnce(TimeSpan.FromTicks(at - NowTicks), () => OnScheduledCheck(at));
    }

    private void OnScheduledCheck(long scheduledAt)
    {
        var due = new List<Deadline>();
        lock (_lock)
        {
            _checksScheduled!.Remove(scheduledAt);
            var meantToRunAt = _wakeAt;
            _wakeAt = long.MaxValue;
            TakeDue(NowTicks, due, NowTicks - meantToRunAt);
        }
        Fire(due);
        lock (_lock)
        {
            if (!_stopped && _queue.TryPeek(out _, out var key) && key < _wakeAt) ScheduleCheck(key);
        }
    }

    private static void Fire(List<Deadline> due)
    {
        foreach (var deadline in due)
            deadline.Owner.Tell(deadline.Message, ActorRefs.NoSender);
        due.Clear();
    }

    private void Stop()
    {
        lock (_lock)
        {
            _stopped = true;
            _queue.Clear();
            Monitor.Pulse(_lock);
        }
    }

    private sealed class DeadlineQueueProvider : ExtensionIdProvider<DeadlineQueue>
    {
        public override DeadlineQueue CreateExtension(ExtendedActorSystem system) => new(system);
    }
}

/// <summary>
/// One connection's deadline in the <see cref="DeadlineQueue"/>. Only its owner calls <see cref="Set"/>
/// and <see cref="Cancel"/>; the queue reads the published deadline. When the queue tells the owner, the
/// deadline is disarmed until the owner sets it again, so a told owner always re-arms.
/// </summary>
internal sealed class Deadline
{
    private readonly DeadlineQueue _queue;

    internal Deadline(DeadlineQueue queue, IActorRef owner, object message)
    {
        _queue = queue;
        Owner = owner;
        Message = message;
    }

    internal IActorRef Owner { get; }
    internal object Message { get; }

    /// <summary>The deadline most recently set, UTC ticks; written by the owner, read by the queue.</summary>
    internal long DueTicks;

    /// <summary>
    /// How late the queue itself woke up to fire this deadline the last time (UTC ticks; 0 when on time):
    /// a process stall, which a deadline due just before the process resumed does not show by its own lateness.
    /// </summary>
    internal long QueueLateTicks;

    /// <summary>The lateness of the process when this deadline last fired; see <see cref="QueueLateTicks"/>.</summary>
    public TimeSpan ProcessLateness => TimeSpan.FromTicks(Volatile.Read(ref QueueLateTicks));

    // Guarded by the queue's lock: whether an entry for this deadline is queued, and under which key.
    internal bool Queued;
    internal long QueuedAt;

    /// <summary>Arms the deadline, or moves it; moving it later while armed takes no lock.</summary>
    public void Set(DateTimeOffset due)
    {
        var ticks = due.UtcTicks;
        Volatile.Write(ref DueTicks, ticks);
        // Armed under an earlier key: the queue finds the later deadline when that key comes due. A
        // racing take of that entry is harmless: the owner is told, finds nothing due, and sets it again.
        if (Volatile.Read(ref Queued) && ticks >= Volatile.Read(ref QueuedAt)) return;
        _queue.Enqueue(this, ticks);
    }

    public void Cancel() => _queue.Remove(this);
}

/// <summary>
/// The whole process stood still for <paramref name="Stall"/> (SIGSTOP, a paused VM, a stop-the-world pause), as the
/// deadline queue's own thread saw on waking, published on the event stream the moment it resumes. It is at least
/// the stall: a thread that was idle waits up to a second, so up to that much of a stall can go unseen.
/// </summary>
internal sealed record ProcessStalled(TimeSpan Stall, DateTimeOffset ResumedAt)
{
    /// <summary>Shorter delays are scheduling noise on a busy host, not a stall anyone needs to act on.</summary>
    public static readonly TimeSpan NoticeAbove = TimeSpan.FromMilliseconds(500);
}
