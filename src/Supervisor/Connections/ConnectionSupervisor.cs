using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Microsoft.Extensions.Logging;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Transport;

namespace Supervisor.Connections;

/// <summary>
/// Parent of every connection actor. It holds the slots of <c>max-connections</c> per listener and of
/// <c>limits.max-connections-per-address</c>, and a child that fails is stopped (its PostStop closes the
/// socket and reports <c>internal-error</c>), never restarted.
/// <para>
/// A connection holds its slot from its adoption until it decides to close (<see cref="SlotReleased"/>), not
/// until its linger for the peer's FIN ends. A full listener first evicts the oldest connection that has not
/// yet sent a valid frame (when the listener expects one: <c>first-frame-timeout</c> on), so a connect-and-idle
/// flood cannot lock legitimate peers out; else the newcomer waits up to <see cref="AdmissionGrace"/> for a
/// slot, since a peer that has just closed may have its FIN still on the way, and only then is refused.
/// </para>
/// <para>
/// On a listener with PROXY protocol a socket first has its header read (<see cref="ProxyHeaderReader"/>) while
/// it holds a listener slot, for at most the header deadline; only then is it admitted under the client's
/// address the header names, which the per-address cap, the registry and the logs see. A socket from outside
/// the trusted networks is refused at once. Other listeners take none of this path.
/// </para>
/// </summary>
internal sealed class ConnectionSupervisor : ReceiveActor, IWithTimers
{
    /// <summary>
    /// A freshly accepted TCP socket, handed over by a listener with the socket's own work done (<see cref="Prepare"/>:
    /// its address, whether its peer already left, its keep-alive options), on the thread pool, so that this actor,
    /// which starts every connection one after the other, does not make those system calls.
    /// </summary>
    public sealed record Adopt(Socket Socket, ListenerSettings Listener, SocketChecks Checked)
    {
        /// <summary>Looks at the socket and applies its keep-alive options; never throws (a vanished socket is <see cref="SocketChecks.Gone"/>).</summary>
        internal static Adopt Prepare(Socket socket, ListenerSettings listener)
        {
            Transport.HeapSettle.Process.ConnectionOpened();
            return new(socket, listener, SocketChecks.Of(socket, listener));
        }
    }

    /// <summary>An accepted socket's own facts, read once: its peer, whether the peer left before it was served, its keep-alive as set.</summary>
    public sealed record SocketChecks(EndPoint? Endpoint, string Remote, bool Gone, bool LeftBeforeServed, KeepAliveStatus? KeepAlive)
    {
        public static SocketChecks Of(Socket socket, ListenerSettings listener)
        {
            try
            {
                var endpoint = socket.RemoteEndPoint;
                var remote = endpoint?.ToString() ?? "unknown";
                if (ConnectionSupervisor.LeftBeforeServed(socket))
                    return new SocketChecks(endpoint, remote, Gone: false, LeftBeforeServed: true, KeepAlive: null);
                // A PROXY listener's socket may still be refused for its source; its options set first cost nothing then.
                return new SocketChecks(endpoint, remote, Gone: false, LeftBeforeServed: false, SocketKeepAlive.Apply(socket, listener.KeepAlive));
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // The peer was gone before it was adopted; nothing was opened, so nothing is reported closed.
                return new SocketChecks(null, "unknown", Gone: true, LeftBeforeServed: false, KeepAlive: null);
            }
        }
    }

    /// <summary>A connection of another transport (e.g. a WebSocket) that is ready to be supervised.</summary>
    public sealed record AdoptTransport(IConnectionTransport Transport, ListenerSettings Listener);

    /// <summary>From a connection: it completed its first valid frame, so it can no longer be evicted as unproven.</summary>
    internal sealed class FirstFrameSeen
    {
        public static readonly FirstFrameSeen Instance = new();
    }

    /// <summary>From a connection: it decided to close, and gives its slot back now rather than after its linger.</summary>
    internal sealed class SlotReleased
    {
        public static readonly SlotReleased Instance = new();
    }

    /// <summary>To an unproven connection of a full listener: close with <c>first-frame-timeout</c> to make room.</summary>
    internal sealed class EvictUnproven
    {
        public static readonly EvictUnproven Instance = new();
    }

    /// <summary>From a connection told to make room: its first frame came first, so it keeps its slot.</summary>
    internal sealed class EvictionDeclined
    {
        public static readonly EvictionDeclined Instance = new();
    }

    /// <summary>A socket whose PROXY header was read, admitted under the client's address <c>Remote</c>.</summary>
    private sealed record Proxied(Adopt Adopt, string Remote);

    /// <summary>A socket of a PROXY protocol listener while its header is read; it holds a listener slot meanwhile.</summary>
    private sealed class AwaitingHeader(Adopt adopt, ListenerSlots slots, string socketRemote)
    {
        public Adopt Adopt { get; } = adopt;
        public ListenerSlots Slots { get; } = slots;
        public string SocketRemote { get; } = socketRemote;
        public CancellationTokenSource Abandon { get; } = new();
    }

    private sealed record HeaderRead(AwaitingHeader Awaiting, ProxyHeaderOutcome Outcome);

    private sealed class AdmissionGraceEnded : INotInfluenceReceiveTimeout
    {
        public static readonly AdmissionGraceEnded Instance = new();
    }

    /// <summary>
    /// How long a connection over a limit waits for a slot before it is refused: a peer that closed and
    /// reconnected at once may be here before its FIN is read, and its old connection then still holds the slot.
    /// </summary>
    internal static readonly TimeSpan AdmissionGrace = TimeSpan.FromSeconds(1);

    /// <summary>Connections waiting for a slot at most (each holds a socket); one more is refused at once.</summary>
    internal const int MaxWaiting = 256;

    public static Props Props(ConnectionServices services) =>
        Akka.Actor.Props.Create(() => new ConnectionSupervisor(services));

    private readonly ConnectionServices _services;

    // The epoll transport's loops, started with the first connection of an epoll listener; ended in PostStop.
    private EpollLoopGroup? _epollLoops;

    private EpollLoopGroup EpollLoops => _epollLoops ??= new EpollLoopGroup(EpollLoopGroup.LoopsFor(_services.EpollLoops));
    private readonly ILogger _log;
    private readonly Dictionary<IActorRef, Child> _children = [];
    private readonly Dictionary<string, ListenerSlots> _slotsByListener = [];
    // Only for listeners with a per-address cap: address tallies shared by every connection from one address.
    private readonly Dictionary<string, AddressTally> _liveByAddress = [];
    private readonly LinkedList<Waiting> _waiting = new();
    private readonly Dictionary<string, KeepAliveStatus> _lastKeepAlive = [];
    private readonly HashSet<AwaitingHeader> _awaitingHeader = [];
    private readonly ConnectionActor.Starts _connectionStarts;

    private sealed class AddressTally(string key)
    {
        public string Key { get; } = key;
        public int Live { get; set; }
    }

    private sealed class ListenerSlots
    {
        public int Held { get; set; }
        /// <summary>Connections that have sent no valid frame yet, oldest first (listeners with a first-frame deadline only).</summary>
        public LinkedList<IActorRef> Unproven { get; } = new();
    }

    private sealed class Child(ListenerSlots slots, string? addressKey)
    {
        public ListenerSlots Slots { get; } = slots;
        public string? AddressKey { get; } = addressKey;
        public bool HoldsSlot { get; set; } = true;
        public LinkedListNode<IActorRef>? Unproven { get; set; }
    }

    /// <summary>A connection (an <see cref="Adopt"/> or <see cref="AdoptTransport"/>) waiting for a slot until <c>Until</c>.</summary>
    private sealed record Waiting(object Adoption, ListenerSettings Listener, string Remote, DateTimeOffset Until);

    private long _nextId;
    private (IActorRef ReplyTo, int Count, CloseReason Reason, TimeSpan? ReconnectSpread)? _closingAll;

    public ITimerScheduler Timers { get; set; } = null!;

    public ConnectionSupervisor(ConnectionServices services)
    {
        _services = services;
        _log = services.Log;
        // One Deploy (inline dispatcher, compact mailbox) and one Props for every connection.
        _connectionStarts = new ConnectionActor.Starts(ConnectionDispatcher.Deploy(Context.System));

        Receive<Adopt>(OnAdopt);
        Receive<AdoptTransport>(OnAdoptTransport);
        Receive<Terminated>(OnTerminated);
        Receive<SlotReleased>(_ =>
        {
            if (_children.TryGetValue(Sender, out var child)) Release(child);
        });
        Receive<FirstFrameSeen>(_ =>
        {
            if (_children.TryGetValue(Sender, out var child)) Proven(child);
        });
        Receive<EvictionDeclined>(_ =>
        {
            if (_children.TryGetValue(Sender, out var child)) Retake(child);
        });
        Receive<AdmissionGraceEnded>(_ => OnAdmissionGraceEnded());
        Receive<HeaderRead>(OnHeaderRead);
        Receive<ConnectionCommands.CloseConnection>(command =>
        {
            var child = Context.Child(command.Id);
            if (!child.IsNobody()) child.Tell(command);
            Sender.Tell(new ConnectionCommands.CloseAccepted(command.Id, !child.IsNobody()));
        });
        Receive<ConnectionCommands.GetStatus>(query =>
        {
            var child = Context.Child(query.Id);
            if (child.IsNobody()) Sender.Tell(new RegistryProtocol.ConnectionFound(query.Id, null));
            else child.Forward(query);
        });
        Receive<ConnectionCommands.GetTcpInfo>(query =>
        {
            var child = Context.Child(query.Id);
            if (child.IsNobody()) Sender.Tell(new ConnectionCommands.TcpInfoReport(query.Id, "", null));
            else child.Forward(query);
        });
        Receive<ConnectionCommands.CloseAll>(OnCloseAll);
    }

    protected override void PostStop()
    {
        // Sockets still waiting for their PROXY header belong to no connection actor: release them here.
        foreach (var awaiting in _awaitingHeader)
        {
            awaiting.Abandon.Cancel();
            awaiting.Adopt.Socket.Dispose();
        }
        _awaitingHeader.Clear();
        // Every connection (a child) has stopped and let go of its socket by now: the loops' threads end and their
        // epoll and eventfd descriptors close with them.
        _epollLoops?.Dispose();
        base.PostStop();
    }

    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(cause =>
    {
        ConnectionLog.Failed(_log, cause, Sender.Path.Name);
        return Directive.Stop;
    });

    private void OnAdopt(Adopt adopt)
    {
        var checks = adopt.Checked;
        var (endpoint, remote) = (checks.Endpoint, checks.Remote);
        if (checks.Gone)
        {
            adopt.Socket.Dispose();
            _services.Descriptors?.Released();
            return;
        }
        // A peer that left while it waited in the accept queue (a client that gave up; after a descriptor shortage
        // hundreds of them stand between the listener and the next live client) is let go here, without an actor or
        // a transport, and counted as what it is: accepted, and closed by its peer before it was served.
        if (checks.LeftBeforeServed)
        {
            adopt.Socket.Dispose();
            _services.Descriptors?.Released();
            Rejected(remote, adopt.Listener, CloseReason.PeerClosed, "the peer left before it was served");
            return;
        }
        // Whoever reaches a PROXY protocol listener directly could forge a header: only the balancers may connect.
        if (adopt.Listener.ProxyProtocol is { } proxy && !(endpoint is IPEndPoint source && proxy.Trusts(source.Address)))
        {
            Refuse(adopt.Socket, adopt.Listener, CloseReason.ProtocolError,
                $"PROXY protocol listener: {(endpoint as IPEndPoint)?.Address.ToString() ?? remote} is not in proxy-protocol.trusted-networks, and only trusted proxies may connect",
                remote, drain: true);
            return;
        }
        Admit(adopt, adopt.Listener, remote);
    }

    /// <summary>
    /// Whether the peer of a just-accepted socket has already closed or reset it and sent nothing: readable with no
    /// byte to read is the end of its input. A peer that sent a frame and then closed still has it read and answered.
    /// </summary>
    internal static bool LeftBeforeServed(Socket socket)
    {
        try
        {
            return socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0;
        }
        catch (SocketException)
        {
            return true; // reset
        }
    }

    private void OnAdoptTransport(AdoptTransport adopt) => Admit(adopt, adopt.Listener, adopt.Transport.Remote);

    /// <summary>Starts the connection if a slot is free (evicting an unproven one if need be), else lets it wait for one, else refuses it.</summary>
    private void Admit(object adoption, ListenerSettings listener, string remote)
    {
        if (_closingAll is { } closing)
        {
            Refuse(adoption, listener, remote, closing.Reason, ShuttingDown(closing.ReconnectSpread is { } spread ? ReconnectHints.Any(spread, Random.Shared) : null));
            return;
        }
        if (NoSlotFor(adoption, listener, remote) is not { } full)
        {
            Start(adoption, listener);
            return;
        }
        if (_waiting.Count >= MaxWaiting)
        {
            Refuse(adoption, listener, remote, CloseReason.RejectedCapacity, full);
            return;
        }
        _waiting.AddLast(new Waiting(adoption, listener, remote, Now + AdmissionGrace));
        if (_waiting.Count == 1) Timers.StartSingleTimer(nameof(AdmissionGraceEnded), AdmissionGraceEnded.Instance, AdmissionGrace);
    }

    private void Start(object adoption, ListenerSettings listener)
    {
        Adopt adopt;
        string? proxiedRemote = null;
        switch (adoption)
        {
            case AdoptTransport adopted:
                Spawn(adopted.Transport, listener);
                return;
            case Proxied proxied:
                (adopt, proxiedRemote) = (proxied.Adopt, proxied.Remote);
                break;
            default:
                adopt = (Adopt)adoption;
                if (listener.ProxyProtocol is { } proxy)
                {
                    AwaitHeader(adopt, listener, proxy);
                    return;
                }
                break;
        }
        IConnectionTransport transport;
        try
        {
            // Set by Prepare for every socket that got this far (a gone or departed one was let go in OnAdopt).
            var keepAlive = Shared(listener, adopt.Checked.KeepAlive!);
            transport = listener.TlsServerOptions is { } tls
                ? new TlsTransport(adopt.Socket, tls, listener.MaxFrameLength, listener.MaxPendingWrite, keepAlive, listener.TlsHandshakeTimeout, proxiedRemote)
                    { FrameMemory = _services.FrameMemory, Codec = listener.Codec, HandshakeGate = listener.TlsHandshakeGate }
                : TcpTransports.For(listener) == TcpTransportKind.Epoll
                    ? new EpollTransport(adopt.Socket, EpollLoops.Next(), listener.MaxFrameLength, listener.MaxPendingWrite, keepAlive) { FrameMemory = _services.FrameMemory, Codec = listener.Codec }
                    : new SocketTransport(adopt.Socket, listener.MaxFrameLength, listener.MaxPendingWrite, keepAlive, proxiedRemote) { FrameMemory = _services.FrameMemory, Codec = listener.Codec };
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The peer was gone before it was adopted; nothing was opened, so nothing is reported closed.
            adopt.Socket.Dispose();
            _log.LogDebug("Accepted socket vanished before adoption: {Error}", e.Message);
            return;
        }
        Spawn(transport, listener);
    }

    /// <summary>
    /// Reads the socket's PROXY header while it holds a listener slot (not evictable: it is no connection yet),
    /// for at most the header deadline; <see cref="OnHeaderRead"/> then admits it under the client's address.
    /// </summary>
    private void AwaitHeader(Adopt adopt, ListenerSettings listener, ProxyProtocolSettings proxy)
    {
        string socketRemote;
        try
        {
            socketRemote = adopt.Socket.RemoteEndPoint?.ToString() ?? "unknown";
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            adopt.Socket.Dispose();
            return;
        }
        var slots = SlotsOf(listener);
        slots.Held++;
        var awaiting = new AwaitingHeader(adopt, slots, socketRemote);
        _awaitingHeader.Add(awaiting);
        ProxyHeaderReader.ReadAsync(adopt.Socket, proxy.HeaderDeadline(listener.Limits), awaiting.Abandon.Token)
            .PipeTo(Self, success: outcome => new HeaderRead(awaiting, outcome));
    }

    private void OnHeaderRead(HeaderRead read)
    {
        var awaiting = read.Awaiting;
        // Gone already: refused at shutdown while its header was read.
        if (!_awaitingHeader.Remove(awaiting)) return;
        awaiting.Abandon.Dispose();
        awaiting.Slots.Held--;
        var adopt = awaiting.Adopt;
        if (read.Outcome.Refusal is { } reason)
        {
            Refuse(adopt.Socket, adopt.Listener, reason, read.Outcome.Description, awaiting.SocketRemote, drain: true);
            AdmitWaiting();
            return;
        }
        var remote = read.Outcome.Source?.ToString() ?? awaiting.SocketRemote;
        if (_log.IsEnabled(LogLevel.Debug))
            _log.LogDebug("Connection from {Proxy} on listener {Listener} is {Remote} ({Header} header)",
                awaiting.SocketRemote, adopt.Listener.Name, remote, read.Outcome.Description);
        // Its listener slot is given back and taken again at once, now with the per-address cap on the client's address.
        Admit(new Proxied(adopt, remote), adopt.Listener, remote);
        AdmitWaiting();
    }

    /// <summary>The listener's previous keep-alive status when this one reads back the same, so the connections share one record.</summary>
    private KeepAliveStatus Shared(ListenerSettings listener, KeepAliveStatus status)
    {
        if (status.Problems.Count == 0 && _lastKeepAlive.TryGetValue(listener.Name, out var last)
            && (last.Enabled, last.IdleSeconds, last.IntervalSeconds, last.Probes, last.UserTimeoutMs)
               == (status.Enabled, status.IdleSeconds, status.IntervalSeconds, status.Probes, status.UserTimeoutMs))
            return last;
        if (status.Problems.Count == 0) _lastKeepAlive[listener.Name] = status;
        return status;
    }

    /// <summary>
    /// Why <paramref name="listener"/> has no slot for a connection from <paramref name="remote"/>, or null when it
    /// has one. A full listener makes room by evicting its oldest unproven connection when it has one.
    /// </summary>
    private string? NoSlotFor(object adoption, ListenerSettings listener, string remote)
    {
        // Before its PROXY header is read a socket's address is the balancer's: the per-address cap waits for the client's.
        var addressKnown = listener.ProxyProtocol is null || adoption is not Adopt;
        if (addressKnown && listener.Limits.MaxConnectionsPerAddress is { } perAddress
            && _liveByAddress.GetValueOrDefault(AddressKey(listener, remote))?.Live >= perAddress)
            return $"address {AddressOf(remote)} holds its maximum of {perAddress} connections on listener {listener.Name}";
        var slots = SlotsOf(listener);
        if (slots.Held >= listener.MaxConnections && !EvictOldestUnproven(slots))
            return $"listener {listener.Name} holds its maximum of {listener.MaxConnections} connections";
        return null;
    }

    private ListenerSlots SlotsOf(ListenerSettings listener)
    {
        if (!_slotsByListener.TryGetValue(listener.Name, out var slots))
            _slotsByListener[listener.Name] = slots = new ListenerSlots();
        return slots;
    }

    /// <summary>
    /// Tells the oldest connection that has sent no valid frame to make room, and takes its slot back at
    /// once; should its first frame beat the eviction, it declines and takes the slot again.
    /// </summary>
    private bool EvictOldestUnproven(ListenerSlots slots)
    {
        if (slots.Unproven.First is not { } oldest) return false;
        var evicted = oldest.Value;
        evicted.Tell(EvictUnproven.Instance);
        Release(_children[evicted], admitWaiting: false);
        return true;
    }

    /// <summary>The connection no longer holds a slot (it is closing, evicted or gone); a waiting connection may take it.</summary>
    private void Release(Child child, bool admitWaiting = true)
    {
        Proven(child);
        if (!child.HoldsSlot) return;
        child.HoldsSlot = false;
        child.Slots.Held--;
        if (child.AddressKey is { } key && _liveByAddress.TryGetValue(key, out var tally) && --tally.Live == 0)
            _liveByAddress.Remove(key);
        if (admitWaiting) AdmitWaiting();
    }

    /// <summary>A connection that declined its eviction holds a slot again, even if that puts its listener one over for a while.</summary>
    private void Retake(Child child)
    {
        if (child.HoldsSlot) return;
        child.HoldsSlot = true;
        child.Slots.Held++;
        if (child.AddressKey is { } key) TallyOf(key).Live++;
    }

    private void Proven(Child child)
    {
        if (child.Unproven is not { } node) return;
        child.Slots.Unproven.Remove(node);
        child.Unproven = null;
    }

    private AddressTally TallyOf(string key)
    {
        if (!_liveByAddress.TryGetValue(key, out var tally))
            _liveByAddress[key] = tally = new AddressTally(key);
        return tally;
    }

    /// <summary>Starts, oldest first, every waiting connection that has a slot now.</summary>
    private void AdmitWaiting()
    {
        for (var node = _waiting.First; node is not null;)
        {
            var next = node.Next;
            if (NoSlotFor(node.Value.Adoption, node.Value.Listener, node.Value.Remote) is null)
            {
                _waiting.Remove(node);
                Start(node.Value.Adoption, node.Value.Listener);
            }
            node = next;
        }
    }

    private void OnAdmissionGraceEnded()
    {
        var now = Now;
        while (_waiting.First is { } first && first.Value.Until <= now)
        {
            _waiting.RemoveFirst();
            var waited = first.Value;
            if (NoSlotFor(waited.Adoption, waited.Listener, waited.Remote) is { } full)
                Refuse(waited.Adoption, waited.Listener, waited.Remote, CloseReason.RejectedCapacity, full);
            else
                Start(waited.Adoption, waited.Listener);
        }
        if (_waiting.First is { } next)
            Timers.StartSingleTimer(nameof(AdmissionGraceEnded), AdmissionGraceEnded.Instance, next.Value.Until - now);
    }

    private DateTimeOffset Now => Context.System.Scheduler.Now;

    /// <summary>The IP address part of a remote endpoint such as <c>127.0.0.1:5000</c> or <c>[::1]:5000</c>.</summary>
    private static string AddressOf(string remote) =>
        System.Net.IPEndPoint.TryParse(remote, out var endpoint) ? endpoint.Address.ToString() : remote;

    private static string AddressKey(ListenerSettings listener, string remote) => $"{listener.Name}|{AddressOf(remote)}";

    private void Spawn(IConnectionTransport transport, ListenerSettings listener)
    {
        var id = $"c{++_nextId}{_services.IdSuffix}";
        var child = _connectionStarts.Start(Context, new ConnectionActor.Setup(id, listener, transport, _services));
        Context.Watch(child);
        string? addressKey = null;
        if (listener.Limits.MaxConnectionsPerAddress is not null)
        {
            addressKey = AddressKey(listener, transport.Remote);
            TallyOf(addressKey).Live++;
        }
        var slots = SlotsOf(listener);
        slots.Held++;
        var state = new Child(slots, addressKey);
        // Only a listener that expects a first frame can tell an idle flood from a peer that may rightly stay silent.
        if (listener.Limits.FirstFrameTimeout is not null)
            state.Unproven = slots.Unproven.AddLast(child);
        _children[child] = state;
    }

    private void Refuse(object adoption, ListenerSettings listener, string remote, CloseReason reason, string detail)
    {
        switch (adoption)
        {
            case Adopt adopt:
                Refuse(adopt.Socket, listener, reason, detail);
                return;
            case Proxied proxied:
                // Its balancer forwards the client's frames from the start: drain them so the notice gets through.
                Refuse(proxied.Adopt.Socket, listener, reason, detail, proxied.Remote, drain: true);
                return;
        }
        var transport = ((AdoptTransport)adoption).Transport;
        transport.Close(reason, detail);
        transport.Dispose();
        Rejected(remote, listener, reason, detail);
    }

    /// <param name="remote">The peer as reported; null: the socket's address.</param>
    /// <param name="drain">
    /// Read and drop the peer's input for up to <c>close-linger</c> after the notice and FIN, then close: a socket
    /// closed with unread input sends an RST, which can destroy the notice. For refusals of peers that have
    /// likely sent something already (a PROXY header from an untrusted source, a malformed one).
    /// </param>
    private void Refuse(Socket socket, ListenerSettings listener, CloseReason reason, string detail, string? remote = null, bool drain = false)
    {
        remote ??= "unknown";
        try
        {
            if (remote == "unknown") remote = socket.RemoteEndPoint?.ToString() ?? remote;
            socket.Blocking = false;
            // A TLS peer could not read a plaintext notice, and one that closed or reset is not there to; they get the close alone.
            if (listener.TlsCertificate is null && reason.IsAnnouncedToPeer())
            {
                var notice = listener.Codec.EncodeToArray(Frame.ErrorNotice(Context.System.Scheduler.Now.ToUnixTimeSeconds(), reason.NoticeText(detail)));
                socket.Send(notice, SocketFlags.None, out _);
            }
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The notice is a courtesy; the close below is what matters.
        }
        if (drain && reason.IsAnnouncedToPeer()) _ = DrainThenCloseAsync(socket, listener.CloseLinger, _services.Descriptors);
        else
        {
            socket.Dispose();
            _services.Descriptors?.Released();
        }
        Rejected(remote, listener, reason, detail);
    }

    /// <summary>Discards the peer's input until it closes or <paramref name="linger"/> passes, then closes the socket; never throws.</summary>
    private static async Task DrainThenCloseAsync(Socket socket, TimeSpan linger, Hosting.FileDescriptorBudget? descriptors)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1024);
        try
        {
            using var deadline = new CancellationTokenSource(linger);
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (Exception)
        {
            // Linger over, reset or disposed: the socket is closed below either way.
        }
        finally
        {
            socket.Dispose();
            descriptors?.Released();
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Rejected(string remote, ListenerSettings listener, CloseReason reason, string detail)
    {
        LifecyclePublisher.Publish(Context.System, _services.Metrics, _log,
            new ConnectionLifecycle.Refused(remote, listener.Name, reason, detail, Now));
    }

    private void OnTerminated(Terminated terminated)
    {
        if (!_children.Remove(terminated.ActorRef, out var child)) return;
        Release(child);
        _services.Descriptors?.Released();
        if (_closingAll is { } closing && _children.Count == 0)
        {
            closing.ReplyTo.Tell(new ConnectionCommands.AllClosed(closing.Count));
            _closingAll = closing with { ReplyTo = ActorRefs.Nobody };
        }
    }

    private void OnCloseAll(ConnectionCommands.CloseAll command)
    {
        _closingAll = (Sender, _children.Count, command.Reason, command.ReconnectSpread);
        // Every peer told to come back, the connections' and the waiting ones', gets its own moment of the window.
        var hints = command.ReconnectSpread is { } spread
            ? ReconnectHints.Spread(_waiting.Count + _awaitingHeader.Count + _children.Count, spread, Random.Shared)
            : null;
        var next = 0;
        TimeSpan? NextHint() => hints?[next++];
        while (_waiting.First is { } waiting)
        {
            _waiting.RemoveFirst();
            Refuse(waiting.Value.Adoption, waiting.Value.Listener, waiting.Value.Remote, command.Reason, ShuttingDown(NextHint()));
        }
        foreach (var awaiting in _awaitingHeader)
        {
            awaiting.Abandon.Cancel();
            awaiting.Slots.Held--;
            Refuse(awaiting.Adopt.Socket, awaiting.Adopt.Listener, command.Reason, ShuttingDown(NextHint()), awaiting.SocketRemote);
        }
        _awaitingHeader.Clear();
        _log.LogInformation("Closing {Count} connections: {Reason}{Hint}", _children.Count, command.Reason.ToWireName(),
            command.ReconnectSpread is { } window ? $", peers told to reconnect within {window.ToHocon()}" : "");
        if (_children.Count == 0)
        {
            Sender.Tell(new ConnectionCommands.AllClosed(0));
            return;
        }
        var closes = new (IActorRef, object)[_children.Count];
        var index = 0;
        foreach (var child in _children.Keys)
            closes[index++] = (child, new ConnectionCommands.CloseConnection(child.Path.Name, command.Reason) { ReconnectAfter = NextHint() });
        TellInSlices(closes);
    }

    /// <summary>Connections told at once from this actor's thread; more are told in slices of this many from the thread pool.</summary>
    internal const int CloseSlice = 256;

    /// <summary>
    /// A connection runs on the thread that tells it (the inline dispatcher): its close, the notice's send, the FIN,
    /// the close's event and log line, all happen inside the <c>Tell</c>. Told one after the other from this actor,
    /// 19,000 closes took 7.5 s on one core while the other idled, and <c>shutdown.close-timeout</c> ran out first.
    /// Told in slices from the thread pool, every core closes; each message was made here, and a slice only tells.
    /// </summary>
    private static void TellInSlices(IReadOnlyList<(IActorRef To, object Message)> messages)
    {
        if (messages.Count <= CloseSlice)
        {
            foreach (var (to, message) in messages) to.Tell(message, ActorRefs.NoSender);
            return;
        }
        for (var start = 0; start < messages.Count; start += CloseSlice)
        {
            var (from, until) = (start, Math.Min(start + CloseSlice, messages.Count));
            ThreadPool.UnsafeQueueUserWorkItem(_ =>
            {
                for (var i = from; i < until; i++) messages[i].To.Tell(messages[i].Message, ActorRefs.NoSender);
            }, null);
        }
    }

    /// <summary>The detail of a close because the server is going away, with the peer's reconnect hint if it has one.</summary>
    internal static string ShuttingDown(TimeSpan? reconnectAfter) => reconnectAfter is { } after
        ? CloseReasons.WithReconnectHint(ShuttingDownDetail, after)
        : ShuttingDownDetail;

    private const string ShuttingDownDetail = "the server is shutting down";
}
