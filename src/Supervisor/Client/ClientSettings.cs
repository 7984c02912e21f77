using Akka.Configuration;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using static Supervisor.Configuration.HoconReader;

namespace Supervisor.Client;

/// <summary>Reconnect backoff with full jitter (<c>supervisor.client.reconnect</c>).</summary>
/// <param name="Min">Shortest delay, and the base of the exponent. Default 500 ms.</param>
/// <param name="Max">Longest delay. Default 30 s.</param>
/// <param name="Multiplier">Growth of the delay's ceiling per failed attempt. Default 2.</param>
/// <param name="ResetAfter">A connection that stays up this long resets the attempt count. Default 30 s.</param>
internal sealed record BackoffSettings(TimeSpan Min, TimeSpan Max, double Multiplier, TimeSpan ResetAfter);

/// <summary>One outbound heartbeat client (<c>supervisor.client</c>), validated.</summary>
/// <param name="Endpoint">The server, <c>host:port</c>; null in the shipped defaults (a template).</param>
/// <param name="HeartbeatInterval">A heartbeat is sent this often. Default 30 s.</param>
/// <param name="HeartbeatTimeout">No frame from the server this long: disconnect with heartbeat-timeout. Default 90 s.</param>
/// <param name="SendSeq">Put a <c>seq</c> on heartbeats (the source document's client sends none). Default on.</param>
/// <param name="ConnectTimeout">A connect that takes longer fails. Default 5 s.</param>
/// <param name="BufferSize">Data frames kept while disconnected; 0 keeps none. Default 1000.</param>
/// <param name="Overflow">What a full buffer does with one more frame. Default drop-oldest.</param>
/// <param name="MaxFrameLength">Longest frame accepted from the server. Default 64 KiB.</param>
/// <param name="MaxPendingWrite">Bytes queued for a server that does not read, at most. Default 1 MiB.</param>
/// <param name="KeepAlive">Kernel keep-alive on the client's socket.</param>
internal sealed record ClientSettings(
    HostPort? Endpoint,
    TimeSpan HeartbeatInterval,
    TimeSpan HeartbeatTimeout,
    bool SendSeq,
    TimeSpan ConnectTimeout,
    BackoffSettings Reconnect,
    int BufferSize,
    OverflowPolicy Overflow,
    int MaxFrameLength,
    int MaxPendingWrite,
    KeepAliveSettings KeepAlive)
{
    public const string Path = "supervisor.client";

    /// <summary>The shipped defaults (<c>hocon/supervisor.conf</c>), without an endpoint.</summary>
    public static ClientSettings Defaults => Read(SupervisorConfig.Reference.GetConfig(Path), Path);

    /// <summary>Reads a client block; <paramref name="prefix"/> is its full path, for error messages.</summary>
    public static ClientSettings Read(Config client, string prefix)
    {
        var endpointText = client.HasPath("endpoint") ? ReadString(client, "endpoint", prefix) : "";
        var endpoint = endpointText.Length == 0 ? null : HostPort.Parse(endpointText, Key(prefix, "endpoint"));
        var endpoints = client.HasPath("endpoints")
            ? HoconReader.Read(client, "endpoints", prefix, "a list of \"host:port\"", () => client.GetStringList("endpoints"))
                .Select(e => HostPort.Parse(e, Key(prefix, "endpoints")))
                .ToArray()
            : [];
        if (endpoints.Length > 0)
        {
            if (endpoints.Select(e => e.ToString()).Distinct().Count() != endpoints.Length)
                throw new ConfigurationError(Key(prefix, "endpoints"), "names an endpoint twice");
            if (endpoint is not null && !endpoints.Any(e => e.ToString() == endpoint.ToString()))
                throw new ConfigurationError(Key(prefix, "endpoint"),
                    $"'{endpoint}' is not in {Key(prefix, "endpoints")}: set one of the two (endpoints for the nodes of one service)");
            endpoint ??= endpoints[0];
        }
        var homeReturn = client.HasPath("home-return-interval") ? ReadOptionalDuration(client, "home-return-interval", prefix) : null;

        var interval = ReadPositiveDuration(client, "heartbeat.interval", prefix);
        var timeout = ReadPositiveDuration(client, "heartbeat.timeout", prefix);
        if (timeout <= interval)
            throw new ConfigurationError(Key(prefix, "heartbeat.timeout"),
                $"{timeout.ToHocon()} must be greater than {Key(prefix, "heartbeat.interval")} = {interval.ToHocon()}");

        var min = ReadPositiveDuration(client, "reconnect.min-backoff", prefix);
        var max = ReadPositiveDuration(client, "reconnect.max-backoff", prefix);
        if (max < min)
            throw new ConfigurationError(Key(prefix, "reconnect.max-backoff"),
                $"{max.ToHocon()} must not be below {Key(prefix, "reconnect.min-backoff")} = {min.ToHocon()}");
        var multiplier = ReadDouble(client, "reconnect.multiplier", prefix);
        if (multiplier is < 1 or > 100 || double.IsNaN(multiplier))
            throw new ConfigurationError(Key(prefix, "reconnect.multiplier"), $"{multiplier} is out of range 1-100");

        var bufferSize = ReadInt(client, "buffer.size", prefix);
        if (bufferSize is < 0 or > 10_000_000)
            throw new ConfigurationError(Key(prefix, "buffer.size"), $"{bufferSize} is out of range 0-10000000");
        var overflowText = ReadString(client, "buffer.overflow", prefix);
        var overflow = overflowText switch
        {
            "drop-oldest" => OverflowPolicy.DropOldest,
            "drop-newest" => OverflowPolicy.DropNewest,
            "fail" => OverflowPolicy.Fail,
            _ => throw new ConfigurationError(Key(prefix, "buffer.overflow"), $"'{overflowText}' is not one of drop-oldest, drop-newest, fail"),
        };

        var maxFrame = ReadSize(client, "max-frame-length", prefix);
        if (maxFrame is < 16 or > 64 * 1024 * 1024)
            throw new ConfigurationError(Key(prefix, "max-frame-length"), $"{maxFrame} is out of range 16B-64MiB");
        var maxPending = ReadSize(client, "max-pending-write", prefix);
        if (maxPending < maxFrame)
            throw new ConfigurationError(Key(prefix, "max-pending-write"), $"{maxPending} must be at least max-frame-length ({maxFrame})");

        var keepAlive = new KeepAliveSettings(
            ReadBool(client, "keepalive.enabled", prefix),
            ReadWholeSeconds(client, "keepalive.idle", prefix),
            ReadWholeSeconds(client, "keepalive.interval", prefix),
            ReadInt(client, "keepalive.probes", prefix),
            null);
        if (keepAlive.Probes is < 1 or > 127)
            throw new ConfigurationError(Key(prefix, "keepalive.probes"), $"{keepAlive.Probes} is out of range 1-127");

        var codecName = ReadString(client, "codec", prefix);
        if (!FrameCodecs.TryGet(codecName, out var codec))
            throw new ConfigurationError(Key(prefix, "codec"), $"'{codecName}' is not one of {string.Join(", ", FrameCodecs.Names)}");

        return new ClientSettings(endpoint, interval, timeout, ReadBool(client, "heartbeat.seq", prefix),
            ReadPositiveDuration(client, "connect-timeout", prefix),
            new BackoffSettings(min, max, multiplier, ReadPositiveDuration(client, "reconnect.reset-after", prefix)),
            bufferSize, overflow, maxFrame, maxPending, keepAlive)
        {
            Tls = client.HasPath("tls") && ReadBool(client, "tls.enabled", prefix) ? ClientTls.Read(client, prefix) : null,
            Codec = codec,
            AnnounceInterval = ReadBool(client, "heartbeat.announce-interval", prefix),
            Endpoints = endpoints,
            HomeReturnInterval = homeReturn,
        };
    }

    /// <summary>
    /// Several endpoints of one service (<c>endpoints</c>: a cluster's nodes); empty: the one <see cref="Endpoint"/>.
    /// The client ranks them by a hash of its own key (<see cref="EndpointRanking"/>): the first is its home.
    /// </summary>
    public IReadOnlyList<HostPort> Endpoints { get; init; } = [];

    /// <summary>Every endpoint this client may connect to: <see cref="Endpoints"/>, or the one <see cref="Endpoint"/>.</summary>
    public IReadOnlyList<HostPort> AllEndpoints => Endpoints.Count > 0 ? Endpoints : Endpoint is { } one ? [one] : [];

    /// <summary>
    /// Connected to another endpoint than its home, the client tries its home this often and moves back when it
    /// answers (<c>home-return-interval</c>); null (<c>off</c>): it stays where it is. Default 10 s; only with several endpoints.
    /// </summary>
    public TimeSpan? HomeReturnInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Heartbeats carry the client's interval (<c>heartbeat.announce-interval</c>), so a server that negotiates derives
    /// this connection's deadlines from it; the source document's server ignores the field. Default on in HOCON, off
    /// for settings constructed directly (the source document's frames exactly).
    /// </summary>
    public bool AnnounceInterval { get; init; }

    /// <summary>The wire format to speak (<c>codec</c>), as the server listener's. Default json-lines.</summary>
    public IFrameCodec Codec { get; init; } = JsonLinesCodec.Instance;

    /// <summary>TLS to the server; null for plain TCP.</summary>
    public ClientTls? Tls { get; init; }

    /// <summary>These settings aimed at <paramref name="endpoint"/> (<c>host:port</c>).</summary>
    public ClientSettings WithEndpoint(string endpoint, string key = "endpoint") => this with { Endpoint = HostPort.Parse(endpoint, key), Endpoints = [] };

    /// <summary>These settings aimed at several endpoints of one service (the first is <see cref="Endpoint"/>).</summary>
    public ClientSettings WithEndpoints(IReadOnlyList<HostPort> endpoints) => endpoints.Count == 0
        ? throw new ArgumentException("no endpoint", nameof(endpoints))
        : this with { Endpoint = endpoints[0], Endpoints = endpoints };
}

/// <summary>A pool of heartbeat clients to one endpoint (<c>supervisor.pool</c>).</summary>
/// <param name="Size">Connections in the pool. Default 4.</param>
/// <param name="VirtualNodes">Points per connection on the consistent-hash ring. Default 100.</param>
/// <param name="Client">Settings of every member connection.</param>
internal sealed record PoolSettings(int Size, int VirtualNodes, ClientSettings Client)
{
    public const string Path = "supervisor.pool";

    public static PoolSettings Read(Config config, ClientSettings client)
    {
        var pool = config.GetConfig(Path);
        var size = ReadInt(pool, "size", Path);
        if (size is < 1 or > 1024)
            throw new ConfigurationError($"{Path}.size", $"{size} is out of range 1-1024");
        var nodes = ReadInt(pool, "virtual-nodes", Path);
        if (nodes is < 1 or > 10_000)
            throw new ConfigurationError($"{Path}.virtual-nodes", $"{nodes} is out of range 1-10000");
        return new PoolSettings(size, nodes, client);
    }
}

/// <summary>How the heartbeat client checks the server's certificate (<c>tls</c> of a client block).</summary>
/// <param name="ServerName">Name the certificate must carry; null: the endpoint's host.</param>
/// <param name="Authority">Trusted instead of the system's store; null: the system's store.</param>
/// <param name="PinSha256">Upper-case hex SHA-256 of the one certificate accepted; null: no pin.</param>
internal sealed record ClientTls(string? ServerName, System.Security.Cryptography.X509Certificates.X509Certificate2? Authority, string? PinSha256)
{
    public static ClientTls Read(Config client, string prefix)
    {
        var name = ReadString(client, "tls.server-name", prefix);
        var caFile = ReadString(client, "tls.ca-certificate", prefix);
        System.Security.Cryptography.X509Certificates.X509Certificate2? authority = null;
        if (caFile.Length > 0)
        {
            try
            {
                authority = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(caFile);
            }
            catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException)
            {
                throw new ConfigurationError($"{prefix}.tls.ca-certificate", $"'{caFile}' is not a readable PEM certificate: {e.Message.Split('\n')[0]}");
            }
        }
        var pin = ReadString(client, "tls.pin-sha256", prefix).Replace(":", "").ToUpperInvariant();
        if (pin.Length > 0 && (pin.Length != 64 || !pin.All(Uri.IsHexDigit)))
            throw new ConfigurationError($"{prefix}.tls.pin-sha256", "must be 64 hex digits (the certificate's SHA-256)");
        return new ClientTls(name.Length == 0 ? null : name, authority, pin.Length == 0 ? null : pin);
    }

    /// <summary>The handshake options for a connection to <paramref name="host"/>.</summary>
    public System.Net.Security.SslClientAuthenticationOptions Options(string host) => new()
    {
        TargetHost = ServerName ?? host,
        EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13,
        RemoteCertificateValidationCallback = (_, certificate, _, errors) => Accept(certificate, errors),
    };

    private bool Accept(System.Security.Cryptography.X509Certificates.X509Certificate? presented, System.Net.Security.SslPolicyErrors errors)
    {
        if (presented is null) return false;
        using var certificate = new System.Security.Cryptography.X509Certificates.X509Certificate2(presented);
        if (PinSha256 is not null)
            return Convert.ToHexString(certificate.GetCertHash(System.Security.Cryptography.HashAlgorithmName.SHA256)) == PinSha256;
        if (Authority is null) return errors == System.Net.Security.SslPolicyErrors.None;
        if (errors.HasFlag(System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch)) return false;
        using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
        chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Authority);
        chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }
}
