using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Supervisor.Configuration;
using Supervisor.Hosting;
using Supervisor.Connections;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Registry;
using Supervisor.Transport;

namespace Supervisor.Simulation;

/// <summary>What-if runs of a connection supervisor's settings against simulated peers, in virtual time.</summary>
public static class SupervisorSimulation
{
    /// <summary>
    /// Runs the first listener of the supervisor that <paramref name="options"/> describe (its heartbeat settings decide
    /// who is closed; its monitor's rules raise the alerts) against <paramref name="peers"/> for <paramref name="duration"/>
    /// of virtual time: the real connection actors, registry and monitor on a virtual clock, so an hour of
    /// traffic takes seconds and the same <paramref name="seed"/> gives the same report. Throws
    /// <see cref="ConfigurationError"/> for a key or value it refuses.
    /// </summary>
    /// <param name="stalls">Moments the whole server stops (a GC pause, a starved host); none by default.</param>
    public static Task<SimulationReport> RunAsync(ConnectionSupervisorOptions options, IReadOnlyList<PeerGroup> peers, TimeSpan duration,
        int seed = 1, IReadOnlyList<ServerStall>? stalls = null, ILoggerFactory? logging = null)
    {
        var settings = SupervisorConfig.Read(options.Build());
        if (settings.Listeners.Count == 0)
            throw new ConfigurationError("supervisor.tcp.enabled", "no listener to simulate");
        return Simulation.RunAsync(new SimulationOptions(settings.Listeners[0], settings.Monitor, peers, duration, Stalls: stalls, Seed: seed, Logging: logging));
    }

    /// <summary>
    /// Runs the same peers (same seed: the same heartbeats, losses, handovers and deaths) once per detector: the fixed
    /// timeout at each of <paramref name="fixedTimeouts"/> (default: the listener's <c>heartbeat.timeout</c>), then phi
    /// accrual with the listener's <c>heartbeat.phi</c> knobs, capped by its <c>heartbeat.timeout</c>. The comparison
    /// puts false disconnects and detection latency side by side, so an operator can choose.
    /// </summary>
    public static async Task<DetectorComparison> CompareDetectorsAsync(ConnectionSupervisorOptions options, IReadOnlyList<PeerGroup> peers,
        TimeSpan duration, IReadOnlyList<TimeSpan>? fixedTimeouts = null, int seed = 1, ILoggerFactory? logging = null)
    {
        var settings = SupervisorConfig.Read(options.Build());
        if (settings.Listeners.Count == 0)
            throw new ConfigurationError("supervisor.tcp.enabled", "no listener to simulate");
        return await Simulation.CompareAsync(settings.Listeners[0], settings.Monitor, peers, duration, fixedTimeouts, seed, logging);
    }
}

/// <summary>What to simulate.</summary>
/// <param name="Listener">The listener under test: its heartbeat settings decide who gets closed.</param>
/// <param name="Monitor">The monitor's rules and sinks (a webhook sink posts for real).</param>
/// <param name="Step">Resolution of virtual time; peers' send times fall on this grid. Default 100 ms.</param>
/// <param name="Stalls">Moments the whole server stops.</param>
/// <param name="Seed">Seed of the randomness (phases, jitter, loss): the same seed gives the same run.</param>
internal sealed record SimulationOptions(
    ListenerSettings Listener,
    MonitorSettings Monitor,
    IReadOnlyList<PeerGroup> Peers,
    TimeSpan Duration,
    TimeSpan? Step = null,
    IReadOnlyList<ServerStall>? Stalls = null,
    int Seed = 1,
    ILoggerFactory? Logging = null);

/// <summary>
/// Drives the real connection supervisor, connection actors, registry and monitor with simulated peers in
/// virtual time (<see cref="VirtualClock"/>, in Akka.TestKit's TestScheduler's order of work; every actor on the
/// calling thread), so an hour of heartbeats from thousands of peers runs in seconds and the same seed gives the
/// same result.
/// </summary>
internal static class Simulation
{
    private const string SystemConfig = """
        akka.scheduler.implementation = "Supervisor.Simulation.VirtualClock, ConnectionSupervisor.Simulation"
        akka.actor.default-dispatcher = { type = "Akka.TestKit.CallingThreadDispatcherConfigurator, Akka.TestKit", throughput = 1000000 }
        # System actors too: on their own threads they run our actors' mailboxes behind the clock's back,
        # and messages then wait for steps (seen as deadlines firing seconds late).
        akka.actor.internal-dispatcher = { type = "Akka.TestKit.CallingThreadDispatcherConfigurator, Akka.TestKit", throughput = 1000000 }
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        akka.log-dead-letters = off
        """;

    public static async Task<SimulationReport> RunAsync(SimulationOptions options)
    {
        var wall = Stopwatch.StartNew();
        var step = options.Step ?? TimeSpan.FromMilliseconds(100);
        var logging = options.Logging ?? NullLoggerFactory.Instance;
        using var system = ActorSystem.Create("simulation", ConfigurationFactory.ParseString(SystemConfig));
        var clock = (VirtualClock)system.Scheduler;
        var start = clock.Now;
        using var metrics = new SupervisorMetrics();

        var registry = system.ActorOf(ConnectionRegistry.Props(16, metrics.Traffic), "registry");
        var recorder = system.ActorOf(Props.Create(() => new Recorder(start)), "recorder");
        system.EventStream.Subscribe(recorder, typeof(ConnectionLifecycle.Closed));
        system.EventStream.Subscribe(recorder, typeof(AlertRaised));
        system.EventStream.Subscribe(recorder, typeof(AlertResolved));
        // The simulated server stalls only where the options say so: the real GC pauses of this process are not its.
        var monitor = system.ActorOf(MonitorActor.Props(options.Monitor with { CountGcPauses = false }, metrics, logging.CreateLogger<MonitorActor>()), "monitor");
        var supervisor = system.ActorOf(ConnectionSupervisor.Props(new ConnectionServices(
            registry, monitor, new EchoHandler(), metrics, logging.CreateLogger<ConnectionActor>())), "connections");

        var peers = new List<SimPeer>();
        foreach (var group in options.Peers)
            for (var i = 0; i < group.Count; i++)
            {
                // Each peer draws from its own sequence, so its behaviour is the same whatever the server does to the
                // others: two runs with the same seed and different settings see the same peers.
                var peer = new SimPeer(peers.Count, group.Model, new SimulatedTransport(peers.Count), new Random(PeerSeed(options.Seed, peers.Count)));
                if (group.Model.Handovers is { } handovers) peer.NextHandoverAt = NextHandover(TimeSpan.Zero, handovers, peer.Random);
                peers.Add(peer);
            }

        // Heartbeats peers send while the server is stalled wait in their sockets' receive buffers: a
        // real server, once it runs again, fires the timers that fell due in the stall before it has read
        // them. So they are handed over only after the stall's timers have run.
        var stalled = false;
        var backlog = new List<SimPeer>();

        var counters = new SendCounters();
        var heartbeat = new InboundFrame(new DecodedFrame(FrameType.Heartbeat, 0, null, null), 26);
        // The peers stand for connections already established at different times (their first heartbeats
        // are spread over one interval), not fresh connects, so the first-frame deadline is not theirs.
        var listener = options.Listener with { Limits = options.Listener.Limits with { FirstFrameTimeout = null } };
        // One delegate for every send (and one for every held delivery), the peer and the instant as its arguments:
        // millions of sends allocate nothing.
        // (Declared first: a send schedules the next one through them.)
        Action<object, long> send = null!, deliverHeld = null!;
        send = (peer, dueTicks) => Send((SimPeer)peer, TimeSpan.FromTicks(dueTicks));
        deliverHeld = (peer, _) => DeliverHeld((SimPeer)peer);
        foreach (var peer in peers)
        {
            supervisor.Tell(new ConnectionSupervisor.AdoptTransport(peer.Transport, listener));
            // Spread first heartbeats over one interval, as peers that connected at different times would be.
            var first = Align(TimeSpan.FromTicks((long)(peer.Random.NextDouble() * peer.Model.Interval.Ticks)), step);
            ScheduleSend(peer, first);
        }

        // Each send is a task on the virtual clock, queued when the peer's previous heartbeat went out; a
        // deadline of the same instant was queued later, so a heartbeat sent on time is read before its
        // deadline is checked, as on a real server. Times stay on the step grid to keep the clock cheap.
        void ScheduleSend(SimPeer peer, TimeSpan due) => clock.Schedule(due - (clock.Now - start), send, peer, due.Ticks);

        void Send(SimPeer peer, TimeSpan due)
        {
            if (peer.Transport.Closed || due >= options.Duration) return;
            if (peer.Model.IsAlive(due))
            {
                counters.Sent++;
                if (peer.Model.Loss > 0 && peer.Random.NextDouble() < peer.Model.Loss) counters.Lost++;
                else if (InHandover(peer, due) is { } pathBack) HoldUntil(peer, pathBack);
                else if (stalled) backlog.Add(peer);
                else peer.Transport.Receive(heartbeat);
            }
            var jitter = peer.Model.Jitter.Ticks == 0 ? 0 : (long)((peer.Random.NextDouble() * 2 - 1) * peer.Model.Jitter.Ticks);
            var next = Align(due + peer.Model.Interval + TimeSpan.FromTicks(jitter), step);
            ScheduleSend(peer, next > due ? next : due + step);
        }

        // A handover holds the peer's heartbeats until its path is back, then they arrive together: one delivery
        // at that instant stands for them all (each is a valid frame; only the last moves the deadline).
        TimeSpan? InHandover(SimPeer peer, TimeSpan at)
        {
            if (peer.Model.Handovers is not { } handovers) return null;
            while (at >= peer.HandoverEndsAt && at >= peer.NextHandoverAt)
            {
                var length = handovers.Shortest + (handovers.Longest - handovers.Shortest) * peer.Random.NextDouble();
                peer.HandoverEndsAt = Align(peer.NextHandoverAt + length, step);
                if (at < peer.HandoverEndsAt) counters.Handovers++;
                peer.NextHandoverAt = NextHandover(peer.HandoverEndsAt, handovers, peer.Random);
            }
            return at < peer.HandoverEndsAt ? peer.HandoverEndsAt : null;
        }

        void HoldUntil(SimPeer peer, TimeSpan pathBack)
        {
            if (peer.HeldUntil == pathBack) return;
            peer.HeldUntil = pathBack;
            clock.Schedule(pathBack - (clock.Now - start), deliverHeld, peer, 0);
        }

        void DeliverHeld(SimPeer peer)
        {
            if (peer.Transport.Closed) return;
            if (stalled) backlog.Add(peer);
            else peer.Transport.Receive(heartbeat);
        }

        var stalls = new Queue<ServerStall>((options.Stalls ?? []).OrderBy(s => s.At));
        for (var elapsed = TimeSpan.Zero; elapsed < options.Duration;)
        {
            if (stalls.Count > 0 && stalls.Peek().At <= elapsed)
            {
                // Nothing runs during a stall: the clock jumps, and everything that fell due meanwhile
                // runs late, at the stall's end: the timers first, then the frames peers sent meanwhile.
                var stall = stalls.Dequeue();
                stalled = true;
                clock.Advance(stall.Duration);
                stalled = false;
                foreach (var peer in backlog.Where(p => !p.Transport.Closed)) peer.Transport.Receive(heartbeat);
                backlog.Clear();
                elapsed += stall.Duration;
                continue;
            }
            clock.Advance(step);
            elapsed += step;
        }

        var closes = await recorder.Ask<Recorder.Closes>(Recorder.GetCloses.Instance, TimeSpan.FromSeconds(30));
        var alerts = await recorder.Ask<Recorder.Transitions>(Recorder.GetTransitions.Instance, TimeSpan.FromSeconds(30));
        var monitorCounters = await monitor.Ask<MonitorProtocol.Counters>(MonitorProtocol.GetCounters.Instance, TimeSpan.FromSeconds(30));
        // Virtual minutes pass in wall milliseconds: let the webhook deliver what the run raised and
        // resolved before the monitor (and its sink) stops.
        await monitor.Ask<MonitorProtocol.SinksFlushed>(new MonitorProtocol.FlushSinks(TimeSpan.FromSeconds(10)), TimeSpan.FromSeconds(15));
        // The run is over: the monitor must not judge the connections the system's shutdown stops.
        await monitor.GracefulStop(TimeSpan.FromSeconds(10));
        await system.Terminate();
        return Report(options, peers, closes.Items, alerts.Items, counters.Sent, counters.Lost, wall.Elapsed)
            with { HeartbeatsMissed = monitorCounters.HeartbeatsMissed, Handovers = counters.Handovers };
    }

    /// <summary>When the next handover after <paramref name="after"/> begins: exponential gaps with mean <c>Every</c>.</summary>
    private static TimeSpan NextHandover(TimeSpan after, Handovers handovers, Random random) =>
        after + TimeSpan.FromTicks((long)(-Math.Log(1 - random.NextDouble()) * handovers.Every.Ticks));

    /// <summary>See <see cref="SupervisorSimulation.CompareDetectorsAsync"/>.</summary>
    public static async Task<DetectorComparison> CompareAsync(ListenerSettings listener, MonitorSettings monitor, IReadOnlyList<PeerGroup> peers,
        TimeSpan duration, IReadOnlyList<TimeSpan>? fixedTimeouts, int seed, ILoggerFactory? logging)
    {
        var heartbeat = listener.Heartbeat;
        var runs = new List<DetectorRun>();
        foreach (var timeout in fixedTimeouts is { Count: > 0 } ? fixedTimeouts : [heartbeat.Timeout])
        {
            if (timeout <= heartbeat.Interval)
                throw new ConfigurationError("heartbeat.timeout", $"{timeout.ToHocon()} must be greater than heartbeat.interval = {heartbeat.Interval.ToHocon()}");
            var fixedListener = listener with { Heartbeat = heartbeat with { Detector = SilenceDetector.Fixed, Timeout = timeout } };
            runs.Add(new DetectorRun($"fixed {timeout.ToHocon()}",
                await RunAsync(new SimulationOptions(fixedListener, monitor, peers, duration, Seed: seed, Logging: logging))));
        }
        var phi = heartbeat.Phi ?? throw new ConfigurationError("heartbeat.phi", "is missing");
        var phiListener = listener with { Heartbeat = heartbeat with { Detector = SilenceDetector.Phi } };
        runs.Add(new DetectorRun($"phi {phi.Threshold:0.#} (cap {heartbeat.Timeout.ToHocon()})",
            await RunAsync(new SimulationOptions(phiListener, monitor, peers, duration, Seed: seed, Logging: logging))));
        return new DetectorComparison(runs);
    }

    private static TimeSpan Align(TimeSpan t, TimeSpan step) => TimeSpan.FromTicks((t.Ticks + step.Ticks - 1) / step.Ticks * step.Ticks);

    private static SimulationReport Report(SimulationOptions options, List<SimPeer> peers, IReadOnlyList<Recorder.Close> recorded,
        IReadOnlyList<AlertTransition> alerts, int framesSent, int framesLost, TimeSpan wall)
    {
        var closes = recorded.Select(c =>
        {
            var peer = peers[int.Parse(c.Remote["sim-peer-".Length..])];
            return new SimulatedClose(peer.Index, c.Reason.ToWireName(), c.At, c.AfterLastFrame, peer.Model.IsAlive(c.At));
        }).ToArray();
        var dead = peers.Where(p => p.Model.SilentAfter is { } s && s < options.Duration).ToArray();
        var closedAt = closes.ToDictionary(c => c.Peer, c => c.At);
        // A peer closed before it died was a false disconnect, not a detection.
        var detected = dead.Where(p => closedAt.TryGetValue(p.Index, out var at) && at >= p.Model.SilentAfter!.Value).ToArray();
        var closedBeforeDeath = dead.Count(p => closedAt.TryGetValue(p.Index, out var at) && at < p.Model.SilentAfter!.Value);
        return new SimulationReport(
            peers.Count, options.Duration, framesSent, framesLost,
            closes.Count(c => c.PeerWasAlive),
            dead.Length, detected.Length,
            LatencySummary.Of(detected.Select(p => (closedAt[p.Index] - p.Model.SilentAfter!.Value).TotalMilliseconds)),
            LatencySummary.Of(closes.Select(c => c.AfterLastFrame.TotalMilliseconds)),
            closes.GroupBy(c => c.Reason).ToDictionary(g => g.Key, g => g.Count()),
            closes, alerts, wall) { DeadPeersClosedBeforeDeath = closedBeforeDeath };
    }

    /// <summary>A fixed mix of the run's seed and the peer's index (SplitMix64), the same in every process.</summary>
    private static int PeerSeed(int seed, int index)
    {
        var z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)index + 1);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (int)((z ^ (z >> 31)) & int.MaxValue);
    }

    private sealed class SimPeer(int index, PeerModel model, SimulatedTransport transport, Random random)
    {
        public int Index { get; } = index;
        public PeerModel Model { get; } = model;
        public SimulatedTransport Transport { get; } = transport;
        public Random Random { get; } = random;
        public TimeSpan NextHandoverAt = TimeSpan.MaxValue;
        public TimeSpan HandoverEndsAt = TimeSpan.Zero;
        public TimeSpan HeldUntil = TimeSpan.MinValue;
    }

    private sealed class SendCounters
    {
        public int Sent;
        public int Lost;
        public int Handovers;
    }

    /// <summary>Remembers closes and alert transitions, a subscriber to both like the registry and the monitor.</summary>
    private sealed class Recorder : ReceiveActor
    {
        public sealed record Close(string Remote, CloseReason Reason, TimeSpan At, TimeSpan AfterLastFrame);
        public sealed record Closes(IReadOnlyList<Close> Items);
        public sealed record Transitions(IReadOnlyList<AlertTransition> Items);
        public sealed class GetCloses { public static readonly GetCloses Instance = new(); }
        public sealed class GetTransitions { public static readonly GetTransitions Instance = new(); }

        public Recorder(DateTimeOffset start)
        {
            var closes = new List<Close>();
            var transitions = new List<AlertTransition>();
            Receive<ConnectionLifecycle.Closed>(closed =>
            {
                var lastFrame = closed.Status.LastFrameAt ?? closed.Status.ConnectedAt;
                closes.Add(new Close(closed.Status.Remote, closed.Reason, closed.At - start, closed.At - lastFrame));
            });
            Receive<AlertRaised>(raised => transitions.Add(new AlertTransition("raised", raised.Alert, raised.Alert.RaisedAt - start)));
            Receive<AlertResolved>(resolved => transitions.Add(new AlertTransition("resolved", resolved.Alert, resolved.Alert.ResolvedAt!.Value - start)));
            Receive<GetCloses>(_ => Sender.Tell(new Closes(closes.ToArray())));
            Receive<GetTransitions>(_ => Sender.Tell(new Transitions(transitions.ToArray())));
        }
    }
}
