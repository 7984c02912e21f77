namespace Supervisor.Configuration;

/// <summary><c>io.inline-socket-completions</c>: on, off, or auto (on unless a listener speaks TLS).</summary>
internal enum InlineSocketCompletions
{
    Auto,
    On,
    Off,
}

internal enum LivenessMode
{
    /// <summary>Every complete valid frame proves the peer alive.</summary>
    AnyFrame,
    /// <summary>Only heartbeat (0) and heartbeat response (1) frames do, as in the source document.</summary>
    HeartbeatOnly,
}

/// <summary>Kernel keep-alive for accepted sockets (<c>tcp.keepalive</c>, <c>tcp.user-timeout</c>).</summary>
/// <param name="Enabled">SO_KEEPALIVE. Default on.</param>
/// <param name="Idle">TCP_KEEPIDLE. Default 600 s (web-service).</param>
/// <param name="Interval">TCP_KEEPINTVL. Default 30 s.</param>
/// <param name="Probes">TCP_KEEPCNT. Default 3.</param>
/// <param name="UserTimeout">TCP_USER_TIMEOUT; null when off. Default off.</param>
internal sealed record KeepAliveSettings(bool Enabled, TimeSpan Idle, TimeSpan Interval, int Probes, TimeSpan? UserTimeout);

/// <summary>Application heartbeat (<c>heartbeat</c>).</summary>
/// <param name="Enabled">Default on.</param>
/// <param name="Interval">Idle longer than this is suspect. Default 30 s.</param>
/// <param name="Timeout">Idle this long is closed with heartbeat-timeout. Default 90 s.</param>
/// <param name="Liveness">Default any-frame.</param>
/// <param name="ServerPing">Default off.</param>
/// <param name="StarvationThreshold">A deadline timer this late means the server stalled; the stall is forgiven. Default 1 s.</param>
internal sealed record HeartbeatSettings(bool Enabled, TimeSpan Interval, TimeSpan Timeout, LivenessMode Liveness, bool ServerPing, TimeSpan StarvationThreshold)
{
    /// <summary>
    /// Silence after which the fixed detector holds the peer suspect (<c>heartbeat.suspect-after</c>; one missed heartbeat,
    /// one more every interval after). Default here: one interval; the configuration's default, <c>auto</c>, is
    /// <see cref="AutoSuspectAfter"/>.
    /// </summary>
    public TimeSpan? SuspectAfter { get; init; }

    /// <summary>
    /// <c>suspect-after = auto</c>: interval + min(interval, timeout − interval) / 2, as the first-frame deadline's
    /// auto. A client's ticker sends every interval, and the network's jitter makes about half its heartbeats arrive
    /// a little more than an interval after the one before: judged at exactly one interval, half the heartbeats of a
    /// healthy fleet were counted missed (measured in the simulator: 47 % with 100 ms of jitter on 5 s), its
    /// connections flapped between active and suspect, and the missed-heartbeats rule stood raised.
    /// </summary>
    public static TimeSpan AutoSuspectAfter(TimeSpan interval, TimeSpan timeout) =>
        interval + TimeSpan.FromTicks(Math.Min(interval.Ticks, (timeout - interval).Ticks) / 2);

    /// <summary>How silence is judged (<c>heartbeat.detector</c>): a fixed timeout (the default) or phi accrual.</summary>
    public SilenceDetector Detector { get; init; } = SilenceDetector.Fixed;

    /// <summary>The phi accrual detector's knobs (<c>heartbeat.phi</c>), read whichever detector is chosen, so a simulation can compare.</summary>
    public Connections.PhiSettings? Phi { get; init; }

    /// <summary>The phi settings when the phi detector is in use; null with the fixed timeout.</summary>
    public Connections.PhiSettings? ActivePhi => Detector == SilenceDetector.Phi ? Phi : null;

    /// <summary>
    /// The intervals a peer may announce on its heartbeats (<c>heartbeat.negotiation</c>, issue 15 point 3); an
    /// announcement outside them is clamped. Default here: 1 s to 10 min, as in the shipped configuration.
    /// </summary>
    public HeartbeatNegotiation Negotiation { get; init; } = HeartbeatNegotiation.Default;
}

/// <summary>
/// <c>heartbeat.negotiation</c>: the bounds of the interval a peer may announce. The connection's deadlines follow the
/// accepted interval as the listener's follow its own (timeout and suspect point scaled by accepted / listener interval).
/// </summary>
/// <param name="MinInterval">Smallest accepted interval; a smaller announcement is raised to it.</param>
/// <param name="MaxInterval">Largest accepted interval; a larger announcement is lowered to it.</param>
internal sealed record HeartbeatNegotiation(TimeSpan MinInterval, TimeSpan MaxInterval)
{
    /// <summary>1 s to 10 min: no heartbeating client in the field (mobile apps, IoT devices on 5-minute cycles) is refused its cadence.</summary>
    public static HeartbeatNegotiation Default { get; } = new(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10));
}

/// <summary>How a connection's silence is judged (<c>heartbeat.detector</c>).</summary>
internal enum SilenceDetector
{
    /// <summary>Suspect after each interval of silence, closed at the timeout.</summary>
    Fixed,
    /// <summary>Suspect and closed when the peer's phi accrual crosses its thresholds, never later than the timeout.</summary>
    Phi,
}

/// <summary>One TCP listener: <c>supervisor.tcp</c> or an entry of <c>supervisor.listeners</c>.</summary>
internal sealed record ListenerSettings(
    string Name,
    string Profile,
    string Host,
    int Port,
    int MaxFrameLength,
    int MaxConnections,
    int MaxPendingWrite,
    TimeSpan CloseLinger,
    KeepAliveSettings KeepAlive,
    HeartbeatSettings Heartbeat)
{
    /// <summary>Abuse limits (<c>tcp.limits</c>); the defaults stop abuse without touching well-behaved peers.</summary>
    public ListenerLimits Limits { get; init; } = ListenerLimits.Default;

    /// <summary>The server certificate when the listener speaks TLS (<c>tcp.tls</c>); null for plain TCP.</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? TlsCertificate
    {
        get => _tlsCertificate;
        init
        {
            _tlsCertificate = value;
            _tlsServerOptions = null;
        }
    }

    /// <summary>
    /// The certificates after the first in <c>tcp.tls.certificate</c>'s file: the chain the listener sends with its
    /// certificate (as nginx and HAProxy send their file's).
    /// </summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2Collection? TlsIntermediates
    {
        get => _tlsIntermediates;
        init
        {
            _tlsIntermediates = value;
            _tlsServerOptions = null;
        }
    }

    /// <summary>
    /// The handshake options every connection of a TLS listener shares (<see cref="Supervisor.Transport.TlsTransport.ServerOptions"/>),
    /// made from <see cref="TlsCertificate"/> and <see cref="TlsIntermediates"/> at first use (whatever order, or
    /// <c>with</c> copy, they were set in); null for plain TCP.
    /// </summary>
    public System.Net.Security.SslServerAuthenticationOptions? TlsServerOptions => _tlsCertificate is null ? null
        : LazyInitializer.EnsureInitialized(ref _tlsServerOptions, () => Supervisor.Transport.TlsTransport.ServerOptions(_tlsCertificate, _tlsIntermediates));

    private readonly System.Security.Cryptography.X509Certificates.X509Certificate2? _tlsCertificate;
    private readonly System.Security.Cryptography.X509Certificates.X509Certificate2Collection? _tlsIntermediates;
    private System.Net.Security.SslServerAuthenticationOptions? _tlsServerOptions;

    /// <summary>
    /// A TLS peer that has not completed its handshake this long after connecting is closed with
    /// first-frame-timeout (<c>tcp.tls.handshake-timeout</c>). Default 10 s.
    /// </summary>
    public TimeSpan TlsHandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// TLS handshakes this listener runs at once (<c>tcp.tls.max-handshakes-in-progress</c>); the next ones wait, oldest
    /// first, within their handshake timeout. Null: no limit, the default: a stalled handshake would hold its place for
    /// the whole handshake timeout, so a peer that opens a few hundred and stalls them could keep everyone else waiting.
    /// </summary>
    public int? TlsMaxHandshakesInProgress
    {
        get => _tlsMaxHandshakesInProgress;
        init
        {
            _tlsMaxHandshakesInProgress = value;
            _tlsHandshakeGate = null;
        }
    }

    /// <summary>The gate every handshake of the listener passes (<see cref="TlsMaxHandshakesInProgress"/>), made at first use; null when unlimited.</summary>
    public SemaphoreSlim? TlsHandshakeGate => _tlsMaxHandshakesInProgress is not { } limit ? null
        : LazyInitializer.EnsureInitialized(ref _tlsHandshakeGate, () => new SemaphoreSlim(limit, limit));

    private readonly int? _tlsMaxHandshakesInProgress;
    private SemaphoreSlim? _tlsHandshakeGate;

    /// <summary>
    /// <c>auto</c>: 128 handshakes in progress per core. A handshake costs about 1.5 ms of CPU here, so a core runs a few
    /// hundred a second; 128 a core in progress keeps the machine busy even when each handshake spans round trips of
    /// a slow link (2 × 200 ms: 320 a second a core), and in a storm each waits behind a bounded number (bench/README:
    /// at 6,000 TLS peers on 2 cores, 256 served the storm with a third less CPU per reconnect than no limit).
    /// </summary>
    public static int AutoMaxHandshakesInProgress => 128 * Environment.ProcessorCount;

    /// <summary>The wire format peers of this listener speak (<c>codec</c>: json-lines or binary). Default json-lines.</summary>
    public Supervisor.Messages.Wire.IFrameCodec Codec { get; init; } = Supervisor.Messages.Wire.JsonLinesCodec.Instance;

    /// <summary>
    /// PROXY protocol v1/v2 from trusted load balancers (<c>tcp.proxy-protocol</c>); null when off (the default):
    /// every connection's address is then its socket's.
    /// </summary>
    public ProxyProtocolSettings? ProxyProtocol { get; init; }

    /// <summary>
    /// How this listener's plain TCP connections are read and written (<c>tcp.transport</c>). Default
    /// <see cref="TcpTransportKind.Auto"/>; see <see cref="Transport.TcpTransports.For"/> for where epoll applies.
    /// </summary>
    public TcpTransportKind Transport { get; init; } = TcpTransportKind.Auto;
}

/// <summary><c>tcp.transport</c>: .NET's socket engine, or the supervisor's own epoll event loops (Linux); auto: epoll where it applies.</summary>
internal enum TcpTransportKind
{
    Sockets,
    Epoll,
    Auto,
}

/// <summary>
/// A listener behind L4 load balancers that announce each client with a PROXY protocol header
/// (<c>tcp.proxy-protocol</c>): connections from <see cref="TrustedNetworks"/> must begin with one, and the
/// client's address it names is the connection's remote everywhere (registry, per-address cap, logs, API);
/// connections from anywhere else are refused, since whoever reaches the port directly could forge a header.
/// </summary>
/// <param name="TrustedNetworks">The balancers' source networks. Must not be empty.</param>
/// <param name="HeaderTimeout">The whole header must arrive this long after accept, else first-frame-timeout. Default 5 s.</param>
internal sealed record ProxyProtocolSettings(IReadOnlyList<System.Net.IPNetwork> TrustedNetworks, TimeSpan HeaderTimeout)
{
    /// <summary>Whether a connection from <paramref name="address"/> may carry a PROXY header (IPv4-mapped IPv6 counts as IPv4).</summary>
    public bool Trusts(System.Net.IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        foreach (var network in TrustedNetworks)
            if (network.Contains(address)) return true;
        return false;
    }

    /// <summary>
    /// How long the header may take on a listener with these <paramref name="limits"/>: never longer than its
    /// first-frame deadline, so waiting for a header holds a slot no longer than waiting for a first frame would.
    /// </summary>
    public TimeSpan HeaderDeadline(ListenerLimits limits) =>
        limits.FirstFrameTimeout is { } firstFrame && firstFrame < HeaderTimeout ? firstFrame : HeaderTimeout;
}

/// <summary>Limits on what one peer may do (<c>tcp.limits</c>).</summary>
/// <param name="MaxConnectionsPerAddress">Live connections one remote IP address may hold on the listener; null when off (the default: a NAT or a load balancer puts many legitimate peers behind one address).</param>
/// <param name="MaxFramesPerSecond">Sustained rate of heartbeat traffic (every frame but data: heartbeats, responses, notices) one connection may send. Default 100.</param>
/// <param name="FrameBurst">Frames one connection may send in a burst above each rate. Default 200.</param>
/// <param name="FirstFrameTimeout">A connection that completes no valid frame this long after it opened is closed; null when off. The configuration's default, <c>auto</c>, is <see cref="AutoFirstFrameTimeout"/>.</param>
internal sealed record ListenerLimits(int? MaxConnectionsPerAddress, double MaxFramesPerSecond, int FrameBurst, TimeSpan? FirstFrameTimeout)
{
    public static ListenerLimits Default { get; } = new(null, 100, 200, null);

    /// <summary>Sustained data frames per second one connection may send; null when off (the default: data rate belongs to the application and its backpressure).</summary>
    public double? MaxDataFramesPerSecond { get; init; }

    /// <summary>
    /// <c>first-frame-timeout = auto</c>: one heartbeat interval plus half of the shorter of the interval and
    /// the gap to the timeout, so always between the two. A client that, like the source document's, sends
    /// its first heartbeat one interval after connecting is accepted with time to spare; a connection that
    /// says nothing gives its slot back well before a heartbeat timeout. Off when the listener has no
    /// application heartbeat (keep-alive only, or a WebSocket's ping/pong): its peers may rightly stay silent.
    /// </summary>
    public static TimeSpan? AutoFirstFrameTimeout(HeartbeatSettings heartbeat) =>
        heartbeat.Enabled ? HeartbeatSettings.AutoSuspectAfter(heartbeat.Interval, heartbeat.Timeout) : null;
}

/// <summary>Everything the service reads from <c>supervisor</c>, validated.</summary>
internal sealed record SupervisorSettings(
    string Profile,
    IReadOnlyList<ListenerSettings> Listeners,
    int RegistryShards,
    TimeSpan ShutdownCloseTimeout)
{
    /// <summary>The monitor's rules and sinks (<c>supervisor.monitor</c>).</summary>
    public Monitoring.MonitorSettings Monitor { get; init; } = null!;

    /// <summary>
    /// The window over which peers closed with <c>server-shutdown</c> are told to come back
    /// (<c>shutdown.reconnect-hint.spread</c>); null: no hint. Default 5 s.
    /// </summary>
    public TimeSpan? ReconnectHintSpread { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Defaults of outbound heartbeat clients (<c>supervisor.client</c>); the endpoint is usually unset.</summary>
    public Client.ClientSettings Client { get; init; } = null!;

    /// <summary>Defaults of client pools (<c>supervisor.pool</c>), members built from <see cref="Client"/>.</summary>
    public Client.PoolSettings Pool { get; init; } = null!;

    /// <summary>Dependency probes (<c>supervisor.probes</c>), by name.</summary>
    public IReadOnlyList<Probes.ProbeSettings> Probes { get; init; } = [];

    /// <summary>
    /// How stale a healthy connection's counters (bytes, heartbeats, last frame) may get in the registry
    /// (<c>registry.status-refresh</c>); state changes reach it at once. Default 10 s.
    /// </summary>
    public TimeSpan RegistryStatusRefresh { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How the application's connection handler runs (<c>supervisor.handler</c>).</summary>
    public Connections.HandlerSettings Handler { get; init; } = Connections.HandlerSettings.Default;

    /// <summary>Scale-out over Akka.Cluster (<c>supervisor.cluster</c>); off by default.</summary>
    public Cluster.ClusterSettings Cluster { get; init; } = Supervisor.Cluster.ClusterSettings.Disabled;

    /// <summary>
    /// Memory all connections together may hold in unfinished frames (<c>limits.pending-frame-memory</c>), in bytes;
    /// past it the largest holders are closed with frame-too-large. Default 256 MiB.
    /// </summary>
    public long PendingFrameMemory { get; init; } = 256L * 1024 * 1024;

    /// <summary>Whether socket completions run inline on the socket engine's thread (<c>io.inline-socket-completions</c>). Default auto.</summary>
    public InlineSocketCompletions InlineSocketCompletions { get; init; } = InlineSocketCompletions.Auto;

    /// <summary>Event loops of the epoll transport (<c>io.epoll-loops</c>); 0: auto, one per core. At most one per core.</summary>
    public int EpollLoops { get; init; }

    /// <summary>
    /// How long after the last connection opened the heap is settled (<c>io.settle-heap-after-connect-burst</c>,
    /// <see cref="Transport.HeapSettle"/>); null: off. Default 5 s.
    /// </summary>
    public TimeSpan? HeapSettleQuiet { get; init; } = TimeSpan.FromSeconds(5);
}
