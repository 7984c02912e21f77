using System.Globalization;
using Akka.Actor;
using Supervisor.Configuration;
using Supervisor.Messages.Wire;
using static Supervisor.Messages.Protocol.ClientProtocol;

namespace RollingGen;

internal enum EventKind : byte
{
    Connected,
    Disconnected,
}

/// <summary>Why a connection ended, as the client saw it.</summary>
internal enum Cause : byte
{
    None,
    /// <summary>The server's notice said when to come back, and the client waits that (<c>Reconnecting.AsServerAsked</c>).</summary>
    Hinted,
    /// <summary>The client moved back to its home endpoint.</summary>
    Home,
    /// <summary>Anything else (a close without a hint, a reset, a timeout).</summary>
    Other,
}

/// <param name="Node">1-based index of the endpoint (its order in --endpoints); 0 when unknown.</param>
/// <param name="Attempt">For a connect: the connects that failed since the client's last disconnect (0: the first try landed).</param>
internal readonly record struct Event(double AtMs, int Client, EventKind Kind, int Node, Cause Cause, int Attempt);

/// <summary>Every client's connects and disconnects, in the order they happened, and the connections each node held, once a second.</summary>
internal sealed class Recorder : ReceiveActor, IWithTimers
{
    public sealed class GetHeld
    {
        public static readonly GetHeld Instance = new();
    }

    public sealed class GetRecord
    {
        public static readonly GetRecord Instance = new();
    }

    private sealed class Sample
    {
        public static readonly Sample Instance = new();
    }

    public sealed record Record(IReadOnlyList<Event> Events, IReadOnlyList<(double AtMs, int[] Held)> Held)
    {
        /// <summary>False when read from an events file of the first version, whose last column counted failures since the last stable period.</summary>
        public bool FailedConnectsKnown { get; init; } = true;

        /// <summary>A run's files read back (<see cref="WriteEvents"/>, <see cref="WriteHeld"/>), to report on them again.</summary>
        public static Record ReadFiles(string eventsFile, string heldFile)
        {
            var lines = File.ReadAllLines(eventsFile);
            var events = lines.Skip(1).Select(line => line.Split(',')).Select(f => new Event(
                double.Parse(f[0], CultureInfo.InvariantCulture), int.Parse(f[1], CultureInfo.InvariantCulture),
                f[2] == "C" ? EventKind.Connected : EventKind.Disconnected, int.Parse(f[3], CultureInfo.InvariantCulture),
                Enum.Parse<Cause>(f[4]), int.Parse(f[5], CultureInfo.InvariantCulture))).ToArray();
            var held = File.ReadAllLines(heldFile).Select(line => line.Split(' '))
                .Select(f => (double.Parse(f[0], CultureInfo.InvariantCulture), f.Skip(1).Select(h => int.Parse(h, CultureInfo.InvariantCulture)).ToArray()))
                .ToArray();
            return new Record(events, held) { FailedConnectsKnown = lines[0].EndsWith("failed_connects", StringComparison.Ordinal) };
        }

        public void WriteEvents(string file, int nodes)
        {
            using var writer = new StreamWriter(file);
            writer.WriteLine("unix_ms,client,kind,node,cause,failed_connects");
            foreach (var e in Events)
                writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{e.AtMs:F1},{e.Client},{(e.Kind == EventKind.Connected ? 'C' : 'D')},{e.Node},{e.Cause},{e.Attempt}"));
        }

        public void WriteHeld(string file)
        {
            using var writer = new StreamWriter(file);
            foreach (var (at, held) in Held)
                writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{at:F0} {string.Join(' ', held)}"));
        }
    }

    private readonly Dictionary<int, int> _nodeOfPort;
    private readonly int[] _held;
    private readonly int[] _nodeOf;
    private readonly int[] _lastDisconnect;
    private readonly int[] _reconnectings;
    private readonly Clock _clock;
    private readonly List<Event> _events = new(100_000);
    private readonly List<(double, int[])> _samples = [];
    private readonly double _startMs;

    public ITimerScheduler Timers { get; set; } = null!;

    public Recorder(IReadOnlyList<HostPort> endpoints, int clients, Clock clock)
    {
        _nodeOfPort = endpoints.Select((e, i) => (e.Port, Node: i + 1)).ToDictionary(p => p.Port, p => p.Node);
        _held = new int[endpoints.Count];
        _nodeOf = new int[clients];
        _lastDisconnect = new int[clients];
        _reconnectings = new int[clients];
        _clock = clock;
        _startMs = clock.NowMs;
        Receive<Connected>(OnConnected);
        Receive<Disconnected>(OnDisconnected);
        Receive<Reconnecting>(OnReconnecting);
        Receive<Sample>(_ => OnSample());
        Receive<GetHeld>(_ => Sender.Tell(_held.ToArray()));
        Receive<GetRecord>(_ =>
        {
            OnSample();
            Sender.Tell(new Record(_events.ToArray(), _samples.ToArray()));
        });
        ReceiveAny(_ => { });
    }

    protected override void PreStart() => Timers.StartPeriodicTimer("sample", Sample.Instance, TimeSpan.FromSeconds(1));

    private static int ClientOf(string name) => int.Parse(name.AsSpan(1), CultureInfo.InvariantCulture);

    private void OnConnected(Connected connected)
    {
        var client = ClientOf(connected.Client);
        var port = int.Parse(connected.Remote.AsSpan(connected.Remote.LastIndexOf(':') + 1), CultureInfo.InvariantCulture);
        var node = _nodeOfPort.GetValueOrDefault(port);
        _nodeOf[client] = node;
        if (node > 0) _held[node - 1]++;
        // The first Reconnecting after a disconnect is the disconnect's own; each one after it follows a failed connect.
        _events.Add(new Event(_clock.NowMs, client, EventKind.Connected, node, Cause.None, Math.Max(0, _reconnectings[client] - 1)));
        _reconnectings[client] = 0;
    }

    private void OnDisconnected(Disconnected disconnected)
    {
        var client = ClientOf(disconnected.Client);
        var node = _nodeOf[client];
        if (node > 0) _held[node - 1]--;
        _nodeOf[client] = 0;
        // A hinted close is told by the client's next decision (OnReconnecting): it waits the server's moment.
        var cause = disconnected.Reason == CloseReason.AdminClosed && disconnected.Detail.Contains("home endpoint", StringComparison.Ordinal)
            ? Cause.Home
            : Cause.Other;
        _lastDisconnect[client] = _events.Count;
        _events.Add(new Event(_clock.NowMs, client, EventKind.Disconnected, node, cause, 0));
    }

    private void OnReconnecting(Reconnecting reconnecting)
    {
        var client = ClientOf(reconnecting.Client);
        _reconnectings[client]++;
        var last = _lastDisconnect[client];
        if (reconnecting.AsServerAsked && last < _events.Count && _events[last] is { Kind: EventKind.Disconnected, Client: var c } e && c == client)
            _events[last] = e with { Cause = Cause.Hinted };
    }

    private void OnSample()
    {
        var now = _clock.NowMs;
        _samples.Add((now, _held.ToArray()));
        if (_samples.Count % 5 == 0)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"t+{(now - _startMs) / 1000:F0}s held {string.Join(' ', _held)} (sum {_held.Sum()})"));
    }
}
