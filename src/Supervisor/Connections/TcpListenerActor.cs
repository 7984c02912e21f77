using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Microsoft.Extensions.Logging;
using Supervisor.Configuration;
using Supervisor.Hosting;
using Supervisor.Monitoring;

namespace Supervisor.Connections;

/// <summary>
/// Owns one bound listening socket and hands every accepted socket to the connection supervisor.
/// Binding happens before the actor starts (<see cref="Bind"/>), so a taken port fails start-up loudly.
/// <para>
/// It accepts only while the process has descriptors to spare (<see cref="FileDescriptorBudget"/>); without,
/// or when accept fails, it pauses with backoff as Go's <c>net/http</c> does (5 ms, doubling to 1 s) while
/// new peers wait in the kernel's listen backlog, and every connection already held is served as before.
/// One log line when a pause begins and one when it ends, not one per retry.
/// </para>
/// </summary>
internal sealed class TcpListenerActor : ReceiveActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;

    public sealed record GetBinding
    {
        public static GetBinding Instance { get; } = new();
    }

    public sealed record Binding(string Listener, IPEndPoint? Endpoint);

    /// <summary>Stop accepting; answered with <see cref="Unbound"/>.</summary>
    public sealed record Unbind
    {
        public static Unbind Instance { get; } = new();
    }

    public sealed record Unbound(string Listener);

    private sealed record Accepted(Socket Socket);

    private sealed record AcceptFailed(Exception Cause);

    /// <summary>A turn took <see cref="MaxAcceptsPerTurn"/> sockets: go on after whatever else waits in the mailbox.</summary>
    private sealed class AcceptMore
    {
        public static readonly AcceptMore Instance = new();
    }

    private sealed class RetryAccept
    {
        public static readonly RetryAccept Instance = new();
    }

    /// <summary>From the descriptor budget: connections closed since the last count, there may be room now.</summary>
    private sealed class DescriptorsReleased
    {
        public static readonly DescriptorsReleased Instance = new();
    }

    private sealed class EpisodeQuiet
    {
        public static readonly EpisodeQuiet Instance = new();
    }

    /// <summary>First delay of a paused accept loop; doubled on every retry up to <see cref="MaxAcceptBackoff"/>.</summary>
    internal static readonly TimeSpan MinAcceptBackoff = TimeSpan.FromMilliseconds(5);
    internal static readonly TimeSpan MaxAcceptBackoff = TimeSpan.FromSeconds(1);

    /// <summary>An episode of pauses ends (log line, alert resolved, ready again) after accepting this long without one.</summary>
    internal static readonly TimeSpan EpisodeEndsAfter = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Sockets taken off the kernel's accept queue in one turn before the actor lets its other messages in (Netty's
    /// <c>maxMessagesPerRead</c> is 16 for a server channel; here the work per socket is an accept and a message).
    /// </summary>
    internal const int MaxAcceptsPerTurn = 64;

    private const string RetryKey = "retry-accept";
    private const string EpisodeEndKey = "episode-end";

    /// <param name="descriptors">The process's descriptor budget, shared by its listeners; null: none (accept until accept fails).</param>
    /// <param name="monitor">Told when the process runs out of descriptors and when it recovers (the <c>fd-exhausted</c> alert); may be Nobody.</param>
    public static Props Props(ListenerSettings settings, Socket boundSocket, IActorRef supervisor, ILogger log,
        FileDescriptorBudget? descriptors = null, IActorRef? monitor = null) =>
        Akka.Actor.Props.Create(() => new TcpListenerActor(settings, boundSocket, supervisor, log, descriptors, monitor ?? ActorRefs.Nobody));

    /// <summary>Binds and listens; throws <see cref="SocketException"/> when the address is taken.</summary>
    public static Socket Bind(ListenerSettings settings)
    {
        var address = IPAddress.Parse(settings.Host);
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            ReuseAddressOnly(socket);
            socket.Bind(new IPEndPoint(address, settings.Port));
            // The kernel caps the backlog at net.core.somaxconn (4096 by default since Linux 5.4): the most it allows.
            socket.Listen(int.MaxValue);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// SO_REUSEADDR and nothing else, so that a restart binds at once while the old process's connections sit in
    /// TIME_WAIT. Not <see cref="SocketOptionName.ReuseAddress"/>: on Linux and macOS .NET sets SO_REUSEPORT with it,
    /// and then a second service started by mistake on the same port binds too and silently takes half the new
    /// connections; with SO_REUSEADDR alone the kernel refuses a second bind while the first socket listens.
    /// Windows needs nothing here (it binds over TIME_WAIT; its SO_REUSEADDR would let another socket steal the port).
    /// </summary>
    internal static void ReuseAddressOnly(Socket socket)
    {
        if (OperatingSystem.IsLinux())
            socket.SetRawSocketOption(SolSocketLinux, SoReuseAddrLinux, BitConverter.GetBytes(1));
        else if (OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD())
            socket.SetRawSocketOption(SolSocketBsd, SoReuseAddrBsd, BitConverter.GetBytes(1));
    }

    private const int SolSocketLinux = 1, SoReuseAddrLinux = 2, SolSocketBsd = 0xffff, SoReuseAddrBsd = 4;

    /// <summary>The kernel's cap on a listen backlog (<c>net.core.somaxconn</c>), or null where it cannot be read.</summary>
    internal static int? ListenBacklogCap()
    {
        try
        {
            return int.TryParse(File.ReadAllText("/proc/sys/net/core/somaxconn").Trim(), out var cap) ? cap : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private readonly ListenerSettings _settings;
    private readonly Socket _socket;
    private readonly IActorRef _supervisor;
    private readonly ILogger _log;
    private readonly IPEndPoint _endpoint;
    private readonly FileDescriptorBudget? _descriptors;
    private readonly IActorRef _monitor;
    private bool _bound = true;
    // An accept is waiting for the kernel (its completion comes back as Accepted or AcceptFailed), or a turn is
    // queued (AcceptMore): either way nothing else may start one, so at most one accept is in flight.
    private bool _acceptPending;
    private bool _turnQueued;
    // Not accepting right now (a retry is due), the delay before it, and the episode the pause belongs to:
    // pauses that follow each other within EpisodeEndsAfter are one episode (one log line, one alert).
    private bool _paused;
    private TimeSpan _backoff;
    private Episode? _episode;

    private sealed class Episode(DateTimeOffset since, string reason)
    {
        public DateTimeOffset Since { get; } = since;
        public string Reason { get; } = reason;
        public bool ForDescriptors { get; set; }
        public int Pauses { get; set; }
        public int Retries { get; set; }
    }

    public TcpListenerActor(ListenerSettings settings, Socket boundSocket, IActorRef supervisor, ILogger log,
        FileDescriptorBudget? descriptors, IActorRef monitor)
    {
        _log = log;
        _descriptors = descriptors;
        _monitor = monitor;
        _settings = settings;
        _socket = boundSocket;
        _supervisor = supervisor;
        _endpoint = (IPEndPoint)boundSocket.LocalEndPoint!;

        Receive<Accepted>(accepted =>
        {
            _acceptPending = false;
            HandOver(accepted.Socket);
            AcceptNext();
        });
        Receive<AcceptFailed>(failed =>
        {
            _acceptPending = false;
            if (Recoverable(failed.Cause)) AcceptNext();
        });
        Receive<AcceptMore>(_ =>
        {
            _turnQueued = false;
            if (!_paused) AcceptNext();
        });
        Receive<RetryAccept>(_ =>
        {
            if (_paused) AcceptNext();
        });
        Receive<DescriptorsReleased>(_ =>
        {
            _log.LogDebug("Listener {Listener} woken (paused {Paused})", _settings.Name, _paused);
            if (!_paused) return;
            Timers.Cancel(RetryKey);
            AcceptNext();
        });
        Receive<EpisodeQuiet>(_ =>
        {
            if (!_paused) EndEpisode(log: true);
        });
        Receive<GetBinding>(_ => Sender.Tell(new Binding(_settings.Name, _bound ? _endpoint : null)));
        Receive<Unbind>(_ =>
        {
            if (_bound) _log.LogInformation("Listener {Listener} stops accepting on {Endpoint}", _settings.Name, _endpoint);
            _bound = false;
            Timers.CancelAll();
            _paused = false;
            EndEpisode(log: false);
            _socket.Dispose();
            Sender.Tell(new Unbound(_settings.Name));
        });
    }

    protected override void PreStart()
    {
        _log.LogInformation("Listener {Listener} accepting on {Endpoint} (profile {Profile}, heartbeat {Interval}/{Timeout}, keep-alive {KeepAlive}, backlog {Backlog})",
            _settings.Name, _endpoint, _settings.Profile,
            _settings.Heartbeat.Enabled ? _settings.Heartbeat.Interval.ToHocon() : "off", _settings.Heartbeat.Timeout.ToHocon(),
            _settings.KeepAlive.Enabled ? $"{_settings.KeepAlive.Idle.ToHocon()}/{_settings.KeepAlive.Interval.ToHocon()}/{_settings.KeepAlive.Probes}" : "off",
            ListenBacklogCap() is { } cap ? $"{cap} (net.core.somaxconn)" : "the system's maximum");
        if (_settings.ProxyProtocol is { } proxy)
            _log.LogInformation("Listener {Listener} takes PROXY protocol v1/v2 headers from {Trusted} within {Deadline}; connections from anywhere else are refused",
                _settings.Name, string.Join(", ", proxy.TrustedNetworks), proxy.HeaderDeadline(_settings.Limits).ToHocon());
        AcceptNext();
    }

    protected override void PostStop()
    {
        EndEpisode(log: false);
        _socket.Dispose();
    }

    /// <summary>
    /// Takes every connection the kernel has queued, up to <see cref="MaxAcceptsPerTurn"/> per turn, without a hop:
    /// an accept that completes at once (a peer is waiting) is handed over and the next one started in the same turn,
    /// as Kestrel's accept loop and Netty's server channel do; only an accept that would block goes back to the
    /// kernel, and its completion returns as a message. A reconnect storm fills the listen backlog in milliseconds,
    /// and every SYN the kernel drops for a full backlog costs that peer a 1 s retransmit.
    /// </summary>
    private void AcceptNext()
    {
        if (_acceptPending || _turnQueued) return;
        for (var taken = 0; taken < MaxAcceptsPerTurn; taken++)
        {
            if (!ReadyToAccept()) return;
            var accept = _socket.AcceptAsync(CancellationToken.None);
            if (!accept.IsCompleted)
            {
                _acceptPending = true;
                accept.AsTask().PipeTo(Self, success: socket => new Accepted(socket), failure: cause => new AcceptFailed(cause));
                return;
            }
            Socket socket;
            try
            {
                socket = accept.GetAwaiter().GetResult();
            }
            catch (Exception e)
            {
                if (Recoverable(e)) continue;
                return;
            }
            HandOver(socket);
        }
        _turnQueued = true;
        Self.Tell(AcceptMore.Instance);
    }

    /// <summary>
    /// The accept loop's only per-socket work: the descriptor count and a work item. The socket's own system calls
    /// (its address, a poll, its keep-alive options set and read back) run on the thread pool, beside the supervisor
    /// rather than on its thread, which starts every connection one after the other; then the socket goes to it.
    /// </summary>
    private void HandOver(Socket socket)
    {
        _descriptors?.Accepted(socket);
        ThreadPool.UnsafeQueueUserWorkItem(static handOver =>
            handOver.Supervisor.Tell(ConnectionSupervisor.Adopt.Prepare(handOver.Socket, handOver.Listener), ActorRefs.NoSender),
            (Supervisor: _supervisor, Socket: socket, Listener: _settings), preferLocal: false);
    }

    /// <summary>Whether to accept now: bound, and descriptors to spare (else it pauses); ends a pause.</summary>
    private bool ReadyToAccept()
    {
        if (!_bound) return false;
        if (_descriptors is { } descriptors && !descriptors.HasRoom(recount: _paused))
        {
            Pause(DescribeShortage(descriptors), forDescriptors: true);
            return false;
        }
        if (_paused)
        {
            // Accepting again; the episode ends only once no pause has followed for a while.
            _paused = false;
            _log.LogDebug("Listener {Listener} resumes ({Open} open)", _settings.Name, _descriptors?.LastCount);
            Timers.Cancel(RetryKey);
            Timers.StartSingleTimer(EpisodeEndKey, EpisodeQuiet.Instance, EpisodeEndsAfter);
        }
        return true;
    }

    /// <summary>Whether the accept loop may go on after a failed accept; if not, it has paused (or the listener is unbound).</summary>
    private bool Recoverable(Exception failure)
    {
        if (!_bound) return false;
        var cause = failure.GetBaseException();
        if (cause is ObjectDisposedException) return false;
        // The peer gave up while it waited in the backlog; the next one may be there already.
        if (cause is SocketException { SocketErrorCode: SocketError.ConnectionAborted or SocketError.ConnectionReset }) return true;
        // EMFILE (the process's limit), ENFILE (the system's), ENOBUFS, ENOMEM: none must become a busy loop.
        var outOfDescriptors = cause is SocketException { SocketErrorCode: SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable };
        if (outOfDescriptors) _descriptors?.RanOut();
        Pause(outOfDescriptors && _descriptors is { } descriptors ? $"{DescribeShortage(descriptors)} (accept failed: {cause.Message})" : $"accept failed: {cause.Message}",
            forDescriptors: outOfDescriptors);
        return false;
    }

    private static string DescribeShortage(FileDescriptorBudget descriptors) =>
        $"out of file descriptors: {descriptors.LastCount} of {descriptors.Limit} open ({descriptors.Reserve} kept in reserve for health, metrics and the runtime)";

    /// <summary>Stops accepting until the retry timer, the delay doubling from 5 ms to 1 s; logs only when an episode begins.</summary>
    private void Pause(string reason, bool forDescriptors)
    {
        Timers.Cancel(EpisodeEndKey);
        if (_episode is null)
        {
            _episode = new Episode(DateTimeOffset.UtcNow, reason);
            _log.LogWarning("Listener {Listener} stops accepting: {Reason}; new connections wait in the listen backlog, existing ones are served; "
                + "retrying from {Min} ms, backing off to {Max} ms", _settings.Name, reason, MinAcceptBackoff.TotalMilliseconds, MaxAcceptBackoff.TotalMilliseconds);
        }
        if (forDescriptors && !_episode.ForDescriptors && _descriptors is not null)
        {
            _episode.ForDescriptors = true;
            var self = Self;
            if (_descriptors.Pause(_settings.Name, () => self.Tell(DescriptorsReleased.Instance)))
                _monitor.Tell(new MonitorEvents.FileDescriptorsExhausted(_descriptors.LastCount, _descriptors.Ceiling, $"listener {_settings.Name} stopped accepting: {reason}"));
        }
        _log.LogDebug("Listener {Listener} paused ({Reason}); retry {Retry}", _settings.Name, reason, _episode.Retries);
        if (!_paused)
        {
            _paused = true;
            _episode.Pauses++;
            _backoff = MinAcceptBackoff;
        }
        else
        {
            _episode.Retries++;
            _backoff = TimeSpan.FromTicks(Math.Min(_backoff.Ticks * 2, MaxAcceptBackoff.Ticks));
        }
        Timers.StartSingleTimer(RetryKey, RetryAccept.Instance, _backoff);
    }

    private void EndEpisode(bool log)
    {
        if (_episode is not { } episode) return;
        _episode = null;
        if (log)
            _log.LogInformation("Listener {Listener} accepts again: the episode that began with \"{Reason}\" lasted {Seconds:F1} s ({Pauses} pauses, {Retries} retries); {Open} file descriptors open",
                _settings.Name, episode.Reason, (DateTimeOffset.UtcNow - episode.Since).TotalSeconds, episode.Pauses, episode.Retries,
                _descriptors?.LastCount.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?");
        if (episode.ForDescriptors && _descriptors!.Resume(_settings.Name) is not null)
            _monitor.Tell(new MonitorEvents.FileDescriptorsRecovered(_descriptors.LastCount));
    }
}
