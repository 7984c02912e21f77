using System.Reflection;
using Akka.Configuration;

using static Supervisor.Configuration.HoconReader;

namespace Supervisor.Configuration;

/// <summary>
/// Builds the effective HOCON (operator file over profile over the embedded reference) and
/// reads it into validated settings. Every problem is a <see cref="ConfigurationError"/> naming its key.
/// </summary>
internal static partial class SupervisorConfig
{
    private const string ResourcePrefix = "Supervisor.hocon.";

    /// <summary>The profiles shipped in <c>hocon/profiles</c>, embedded in the executable.</summary>
    public static IReadOnlyList<string> KnownProfiles { get; } = typeof(SupervisorConfig).Assembly
        .GetManifestResourceNames()
        .Where(n => n.StartsWith(ResourcePrefix + "profiles.", StringComparison.Ordinal))
        .Select(n => n[(ResourcePrefix.Length + "profiles.".Length)..^".conf".Length])
        .Order(StringComparer.Ordinal)
        .ToArray();

    public static Config Reference => ConfigurationFactory.ParseString(ReadResource("supervisor.conf"));

    public static Config Profile(string name, string key)
    {
        if (!KnownProfiles.Contains(name))
            throw new ConfigurationError(key, $"unknown profile '{name}' (known: {string.Join(", ", KnownProfiles)})");
        return ConfigurationFactory.ParseString(ReadResource($"profiles.{name}.conf"));
    }

    /// <summary>Layers the operator's HOCON (may be empty) over the profile over the reference.</summary>
    /// <param name="operatorHocon">Text of the operator's file, or null.</param>
    /// <param name="profileOverride">The <c>--profile</c> argument, or null.</param>
    /// <param name="source">What errors call the text: the file's path, or <c>--config</c>.</param>
    public static Config Build(string? operatorHocon, string? profileOverride, string source = "--config") =>
        Build(operatorHocon, profileOverride, source, Environment.GetEnvironmentVariable);

    /// <summary>As <see cref="Build(string?, string?, string)"/>, reading environment substitutions from <paramref name="environment"/>.</summary>
    /// <param name="overrides">Settings from environment variables and appsettings.json, layered over the file (<see cref="DotnetSettings"/>).</param>
    internal static Config Build(string? operatorHocon, string? profileOverride, string source, Func<string, string?> environment,
        DotnetSettings.Overrides? overrides = null) =>
        Layer(ParseOperatorConfig(operatorHocon, source, Reference, environment), profileOverride, overrides);

    /// <summary>As <see cref="Build(string?, string?, string)"/>, the text layered over <paramref name="parsed"/> (an embedder's own HOCON).</summary>
    internal static Config Build(string? operatorHocon, string? profileOverride, string source, Config? parsed)
    {
        var reference = Reference;
        var under = parsed is null || parsed.IsEmpty ? Config.Empty : parsed;
        ConfigSchema.Check(under, reference);
        return Layer(ParseOperatorConfig(operatorHocon, source, reference, Environment.GetEnvironmentVariable).WithFallback(under), profileOverride, overrides: null);
    }

    private static Config Layer(Config layered, string? profileOverride, DotnetSettings.Overrides? overrides)
    {
        var reference = Reference;
        if (overrides is not null)
        {
            try
            {
                ConfigSchema.Check(overrides.Config, reference);
            }
            catch (ConfigurationError e)
            {
                throw overrides.Rename(e);
            }
            layered = overrides.Config.WithFallback(layered);
        }
        var (profileName, profileKey) = profileOverride is not null
            ? (profileOverride, "--profile")
            : (layered.HasPath("supervisor.profile") ? ReadString(layered, "supervisor.profile") : reference.GetString("supervisor.profile"),
               "supervisor.profile");

        var chosen = ConfigurationFactory.ParseString($"supervisor.profile = \"{profileName}\"");
        return chosen.WithFallback(layered).WithFallback(Profile(profileName, profileKey)).WithFallback(reference);
    }

    /// <summary>
    /// Checks the operator's text (brackets, environment substitutions: <see cref="HoconText"/>), parses it,
    /// and refuses keys the reference does not know (<see cref="ConfigSchema"/>).
    /// </summary>
    private static Config ParseOperatorConfig(string? operatorHocon, string source, Config reference, Func<string, string?> environment)
    {
        if (string.IsNullOrWhiteSpace(operatorHocon)) return Config.Empty;
        var prepared = HoconText.Prepare(operatorHocon, source, environment);
        Config parsed;
        try
        {
            parsed = ConfigurationFactory.ParseString(prepared.Text);
        }
        catch (Exception e) when (e is not ConfigurationError)
        {
            // Akka's parser names a character offset ("Unknown token at position 53"): say file:line:column.
            var message = FirstLine(e.Message);
            var position = ParserPosition().Match(message);
            if (position.Success)
                throw new ConfigurationError(prepared.Where(int.Parse(position.Groups[1].Value)),
                    $"not valid HOCON: {message[..position.Index].TrimEnd()}{message[(position.Index + position.Length)..]}".TrimEnd(':', ' '));
            throw new ConfigurationError(source, $"not valid HOCON: {message}");
        }
        ConfigSchema.Check(parsed, reference);
        return parsed;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"at position (\d+)")]
    private static partial System.Text.RegularExpressions.Regex ParserPosition();

    /// <summary>
    /// The service's configuration, strongest first: <c>--profile</c>; environment variables
    /// (<c>Supervisor__Tcp__Port</c>); appsettings.{DOTNET_ENVIRONMENT}.json and appsettings.json in the working
    /// directory; the operator's file; the profile; the reference.
    /// </summary>
    public static Config Load(string? configFile, string? profileOverride) =>
        Build(configFile is null ? null : HoconText.ReadFile(configFile), profileOverride, configFile ?? "--config",
            Environment.GetEnvironmentVariable, DotnetSettings.Read(DotnetSettings.Load(Directory.GetCurrentDirectory())));

    public static SupervisorSettings Read(Config config)
    {
        var reference = Reference;
        var profile = config.GetString("supervisor.profile");
        var listeners = new List<ListenerSettings>();
        var defaultTcp = config.GetConfig("supervisor.tcp");
        var defaultHeartbeat = config.GetConfig("supervisor.heartbeat");

        if (ReadBool(config, "supervisor.tcp.enabled"))
            listeners.Add(ReadListener("tcp", profile, "supervisor.tcp", defaultTcp, defaultHeartbeat, "supervisor.heartbeat"));

        if (config.HasPath("supervisor.listeners"))
        {
            foreach (var name in config.GetValue("supervisor.listeners").GetObject().Items.Keys)
            {
                var path = $"supervisor.listeners.{name}";
                var own = config.GetConfig(path);
                string listenerProfile = profile;
                Config tcpFallback = defaultTcp, heartbeatFallback = defaultHeartbeat;
                if (own.HasPath("profile"))
                {
                    listenerProfile = own.GetString("profile");
                    var profileConfig = Profile(listenerProfile, $"{path}.profile").WithFallback(reference);
                    tcpFallback = profileConfig.GetConfig("supervisor.tcp");
                    heartbeatFallback = profileConfig.GetConfig("supervisor.heartbeat");
                }
                var tcp = own.WithFallback(tcpFallback);
                var heartbeat = own.HasPath("heartbeat") ? own.GetConfig("heartbeat").WithFallback(heartbeatFallback) : heartbeatFallback;
                if (ReadBool(tcp, "enabled", path))
                    listeners.Add(ReadListener(name, listenerProfile, path, tcp, heartbeat, $"{path}.heartbeat"));
            }
        }

        var ports = listeners.Where(l => l.Port != 0).GroupBy(l => (l.Host, l.Port)).FirstOrDefault(g => g.Count() > 1);
        if (ports is not null)
            throw new ConfigurationError($"supervisor.listeners.{ports.Last().Name}.port",
                $"{ports.Key.Port} is already used by listener '{ports.First().Name}'");

        var shards = ReadInt(config, "supervisor.registry.shards");
        if (shards is < 1 or > 4096)
            throw new ConfigurationError("supervisor.registry.shards", $"{shards} is out of range 1-4096");

        var settings = new SupervisorSettings(profile, listeners, shards,
            ReadPositiveDuration(config, "supervisor.shutdown.close-timeout"));
        var client = Client.ClientSettings.Read(config.GetConfig(Client.ClientSettings.Path), Client.ClientSettings.Path);
        return settings with
        {
            Monitor = Monitoring.MonitorSettings.Read(config, settings),
            Client = client,
            Pool = Client.PoolSettings.Read(config, client),
            Probes = Probes.ProbeSettings.ReadAll(config),
            Cluster = Cluster.ClusterSettings.Read(config),
            RegistryStatusRefresh = ReadPositiveDuration(config, "supervisor.registry.status-refresh"),
            ReconnectHintSpread = ReadReconnectHintSpread(config),
            Handler = ReadHandler(config),
            PendingFrameMemory = ReadSize(config.GetConfig("supervisor"), "limits.pending-frame-memory", "supervisor"),
            InlineSocketCompletions = ReadString(config, "supervisor.io.inline-socket-completions") switch
            {
                "auto" => InlineSocketCompletions.Auto,
                "on" or "true" or "yes" => InlineSocketCompletions.On,
                "off" or "false" or "no" => InlineSocketCompletions.Off,
                var other => throw new ConfigurationError("supervisor.io.inline-socket-completions", $"'{other}' is not one of on, off, auto"),
            },
            EpollLoops = ReadEpollLoops(config),
            HeapSettleQuiet = ReadOptionalDuration(config, "supervisor.io.settle-heap-after-connect-burst", null),
        };
    }

    /// <summary><c>shutdown.reconnect-hint.spread</c>: a positive duration up to an hour, or off (no hint).</summary>
    private static TimeSpan? ReadReconnectHintSpread(Config config)
    {
        const string key = "supervisor.shutdown.reconnect-hint.spread";
        var spread = ReadOptionalDuration(config, key, null);
        if (spread > TimeSpan.FromHours(1))
            throw new ConfigurationError(key, $"{spread.Value.ToHocon()} is out of range 1ms-1h");
        return spread;
    }

    /// <summary><c>io.epoll-loops</c>: auto (0: one per core), or a positive number (clamped to the cores when the loops start, so one file fits every machine).</summary>
    private static int ReadEpollLoops(Config config)
    {
        const string key = "supervisor.io.epoll-loops";
        if (Raw(config, key) == "auto") return 0;
        var loops = ReadInt(config, key);
        if (loops is < 1 or > 1024)
            throw new ConfigurationError(key, $"{loops} is out of range 1-1024, or auto");
        return loops;
    }

    private static Connections.HandlerSettings ReadHandler(Config config)
    {
        var maxInFlight = ReadInt(config, "supervisor.handler.max-frames-in-flight");
        if (maxInFlight is < 1 or > 1_000_000)
            throw new ConfigurationError("supervisor.handler.max-frames-in-flight", $"{maxInFlight} is out of range 1-1000000");
        return new Connections.HandlerSettings(maxInFlight, ReadOptionalDuration(config, "supervisor.handler.timeout", null));
    }

    /// <summary>Reads one listener's keys from <paramref name="tcp"/> (already layered over its fallbacks); errors name <paramref name="path"/>.</summary>
    public static ListenerSettings ReadListener(string name, string profile, string path, Config tcp, Config heartbeat, string heartbeatPath)
    {
        var port = ReadInt(tcp, "port", path);
        if (port is < 0 or > 65535)
            throw new ConfigurationError($"{path}.port", $"{port} is out of range 0-65535");

        var keepAlive = new KeepAliveSettings(
            ReadBool(tcp, "keepalive.enabled", path),
            ReadWholeSeconds(tcp, "keepalive.idle", path),
            ReadWholeSeconds(tcp, "keepalive.interval", path),
            ReadInt(tcp, "keepalive.probes", path),
            ReadOptionalDuration(tcp, "user-timeout", path));
        if (keepAlive.Probes is < 1 or > 127)
            throw new ConfigurationError($"{path}.keepalive.probes", $"{keepAlive.Probes} is out of range 1-127");

        var interval = ReadPositiveDuration(heartbeat, "interval", heartbeatPath);
        var timeout = ReadPositiveDuration(heartbeat, "timeout", heartbeatPath);
        if (timeout <= interval)
            throw new ConfigurationError($"{heartbeatPath}.timeout",
                $"{timeout.ToHocon()} must be greater than {heartbeatPath}.interval = {interval.ToHocon()}");
        var livenessText = ReadString(heartbeat, "liveness", heartbeatPath);
        var liveness = livenessText switch
        {
            "any-frame" => LivenessMode.AnyFrame,
            "heartbeat-only" => LivenessMode.HeartbeatOnly,
            _ => throw new ConfigurationError($"{heartbeatPath}.liveness", $"'{livenessText}' is not one of any-frame, heartbeat-only"),
        };

        var maxFrame = ReadSize(tcp, "max-frame-length", path);
        if (maxFrame is < 16 or > 64 * 1024 * 1024)
            throw new ConfigurationError($"{path}.max-frame-length", $"{maxFrame} is out of range 16B-64MiB");
        var maxConnections = ReadInt(tcp, "max-connections", path);
        if (maxConnections < 1)
            throw new ConfigurationError($"{path}.max-connections", $"{maxConnections} must be at least 1");
        var maxPending = ReadSize(tcp, "max-pending-write", path);
        if (maxPending < maxFrame)
            throw new ConfigurationError($"{path}.max-pending-write", $"{maxPending} must be at least max-frame-length ({maxFrame})");

        int? perAddress = IsOff(tcp, "limits.max-connections-per-address")
            ? null : ReadInt(tcp, "limits.max-connections-per-address", path);
        if (perAddress < 1)
            throw new ConfigurationError($"{path}.limits.max-connections-per-address", $"{perAddress} must be at least 1 (or off)");
        var rate = ReadDouble(tcp, "limits.max-frames-per-second", path);
        if (rate <= 0)
            throw new ConfigurationError($"{path}.limits.max-frames-per-second", $"{rate} must be positive");
        double? dataRate = IsOff(tcp, "limits.max-data-frames-per-second")
            ? null : ReadDouble(tcp, "limits.max-data-frames-per-second", path);
        if (dataRate <= 0)
            throw new ConfigurationError($"{path}.limits.max-data-frames-per-second", $"{dataRate} must be positive (or off)");
        var burst = ReadInt(tcp, "limits.frame-burst", path);
        if (burst < 1)
            throw new ConfigurationError($"{path}.limits.frame-burst", $"{burst} must be at least 1");
        var heartbeatSettings = new HeartbeatSettings(ReadBool(heartbeat, "enabled", heartbeatPath), interval, timeout, liveness,
            ReadBool(heartbeat, "server-ping", heartbeatPath),
            ReadPositiveDuration(heartbeat, "starvation-threshold", heartbeatPath)) 
        {
            Detector = ReadString(heartbeat, "detector", heartbeatPath) switch
            {
                "fixed" => SilenceDetector.Fixed,
                "phi" => SilenceDetector.Phi,
                var other => throw new ConfigurationError($"{heartbeatPath}.detector", $"'{other}' is not one of fixed, phi"),
            },
            Phi = ReadPhi(heartbeat, heartbeatPath, interval),
            SuspectAfter = ReadSuspectAfter(heartbeat, heartbeatPath, interval, timeout),
            Negotiation = ReadNegotiation(heartbeat, heartbeatPath),
        };
        var firstFrame = Raw(tcp, "limits.first-frame-timeout") == "auto"
            ? ListenerLimits.AutoFirstFrameTimeout(heartbeatSettings)
            : ReadOptionalDuration(tcp, "limits.first-frame-timeout", path);
        var limits = new ListenerLimits(perAddress, rate, burst, firstFrame) { MaxDataFramesPerSecond = dataRate };
        var (certificate, intermediates) = ReadBool(tcp, "tls.enabled", path) ? LoadCertificate(tcp, path) : (null, null);
        var handshakeTimeout = ReadPositiveDuration(tcp, "tls.handshake-timeout", path);
        int? handshakesInProgress = IsOff(tcp, "tls.max-handshakes-in-progress") ? null
            : Raw(tcp, "tls.max-handshakes-in-progress") == "auto" ? ListenerSettings.AutoMaxHandshakesInProgress
            : ReadInt(tcp, "tls.max-handshakes-in-progress", path);
        if (handshakesInProgress < 1)
            throw new ConfigurationError($"{path}.tls.max-handshakes-in-progress", $"{handshakesInProgress} must be at least 1 (or off)");

        var codecName = ReadString(tcp, "codec", path);
        if (!Messages.Wire.FrameCodecs.TryGet(codecName, out var codec))
            throw new ConfigurationError($"{path}.codec", $"'{codecName}' is not one of {string.Join(", ", Messages.Wire.FrameCodecs.Names)}");

        var host = ReadString(tcp, "host", path);
        if (!System.Net.IPAddress.TryParse(host, out _))
            throw new ConfigurationError($"{path}.host", $"'{host}' is not an IP address (such as 0.0.0.0, 127.0.0.1 or ::)");
        var proxyProtocol = ReadBool(tcp, "proxy-protocol.enabled", path) ? ReadProxyProtocol(tcp, path) : null;
        var transport = ReadString(tcp, "transport", path) switch
        {
            "sockets" => TcpTransportKind.Sockets,
            "epoll" => TcpTransportKind.Epoll,
            "auto" => TcpTransportKind.Auto,
            var other => throw new ConfigurationError($"{path}.transport", $"'{other}' is not one of auto, sockets, epoll"),
        };

        return new ListenerSettings(name, profile, host, port, maxFrame, maxConnections, maxPending,
            ReadPositiveDuration(tcp, "close-linger", path), keepAlive, heartbeatSettings) with
            {
                Limits = limits,
                TlsCertificate = certificate,
                TlsIntermediates = intermediates,
                TlsHandshakeTimeout = handshakeTimeout,
                TlsMaxHandshakesInProgress = handshakesInProgress,
                Codec = codec,
                ProxyProtocol = proxyProtocol,
                Transport = transport,
            };
    }

    /// <summary><c>heartbeat.suspect-after</c>: auto, or a duration from the interval up to (not including) the timeout.</summary>
    private static TimeSpan ReadSuspectAfter(Config heartbeat, string path, TimeSpan interval, TimeSpan timeout)
    {
        if (Raw(heartbeat, "suspect-after") == "auto") return HeartbeatSettings.AutoSuspectAfter(interval, timeout);
        var value = ReadPositiveDuration(heartbeat, "suspect-after", path);
        if (value < interval || value >= timeout)
            throw new ConfigurationError($"{path}.suspect-after", $"{value.ToHocon()} must be at least interval ({interval.ToHocon()}) and less than timeout ({timeout.ToHocon()})");
        return value;
    }

    /// <summary><c>heartbeat.negotiation</c>: min-interval up to max-interval, whole milliseconds (the wire's unit).</summary>
    private static HeartbeatNegotiation ReadNegotiation(Config heartbeat, string path)
    {
        var min = ReadPositiveDuration(heartbeat, "negotiation.min-interval", path);
        var max = ReadPositiveDuration(heartbeat, "negotiation.max-interval", path);
        if (min < TimeSpan.FromMilliseconds(1) || max.TotalMilliseconds > int.MaxValue)
            throw new ConfigurationError($"{path}.negotiation", $"the bounds must lie between 1ms and {int.MaxValue}ms, the interval a frame can carry");
        if (max < min)
            throw new ConfigurationError($"{path}.negotiation.max-interval", $"{max.ToHocon()} must be at least min-interval ({min.ToHocon()})");
        return new HeartbeatNegotiation(min, max);
    }

    /// <summary>The phi accrual detector's knobs (<c>heartbeat.phi</c>).</summary>
    private static Connections.PhiSettings ReadPhi(Config heartbeat, string path, TimeSpan interval)
    {
        var phiPath = $"{path}.phi";
        var threshold = ReadDouble(heartbeat, "phi.threshold", path);
        if (threshold is < 1 or > 30)
            throw new ConfigurationError($"{phiPath}.threshold", $"{threshold} is out of range 1-30");
        var suspect = ReadDouble(heartbeat, "phi.suspect-threshold", path);
        if (suspect < 1 || suspect > threshold)
            throw new ConfigurationError($"{phiPath}.suspect-threshold", $"{suspect} must be between 1 and phi.threshold ({threshold})");
        var samples = ReadInt(heartbeat, "phi.max-sample-size", path);
        if (samples is < 2 or > 10_000)
            throw new ConfigurationError($"{phiPath}.max-sample-size", $"{samples} is out of range 2-10000");
        TimeSpan AutoOrDuration(string key) => Raw(heartbeat, key) == "auto" ? interval : ReadPositiveDuration(heartbeat, key, path);
        return new Connections.PhiSettings(suspect, threshold, samples,
            ReadPositiveDuration(heartbeat, "phi.min-std-deviation", path),
            AutoOrDuration("phi.acceptable-heartbeat-pause"),
            AutoOrDuration("phi.first-heartbeat-estimate"))
        {
            PauseFollowsInterval = Raw(heartbeat, "phi.acceptable-heartbeat-pause") == "auto",
            EstimateFollowsInterval = Raw(heartbeat, "phi.first-heartbeat-estimate") == "auto",
        };
    }

    private static ProxyProtocolSettings ReadProxyProtocol(Config tcp, string path)
    {
        var key = $"{path}.proxy-protocol.trusted-networks";
        // A single string would otherwise read as an empty list ("must name...") rather than as what it is.
        if (tcp.HasPath("proxy-protocol.trusted-networks") && tcp.GetValue("proxy-protocol.trusted-networks").IsString())
            throw new ConfigurationError(key, $"'{Raw(tcp, "proxy-protocol.trusted-networks")}' is not a list of networks such as [\"10.0.0.0/8\"]");
        IList<string> entries = HoconReader.Read(tcp, "proxy-protocol.trusted-networks", path,
            "a list of networks such as [\"10.0.0.0/8\", \"fd00::/8\"]", () => tcp.GetStringList("proxy-protocol.trusted-networks"));
        if (entries.Count == 0)
            throw new ConfigurationError(key, "must name the load balancers' networks when proxy-protocol is enabled (e.g. [\"10.0.0.0/8\"]); "
                + "connections from anywhere else are refused");
        var networks = new List<System.Net.IPNetwork>(entries.Count);
        foreach (var entry in entries)
        {
            var text = entry.Trim();
            // A bare address is a network of that one host.
            if (!text.Contains('/') && System.Net.IPAddress.TryParse(text, out var single))
                text = $"{text}/{(single.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128)}";
            if (!System.Net.IPNetwork.TryParse(text, out var network))
                throw new ConfigurationError(key, $"'{entry}' is not a network in CIDR notation such as 10.0.0.0/8 or fd00::/8, nor an address");
            networks.Add(network);
        }
        return new ProxyProtocolSettings(networks, ReadPositiveDuration(tcp, "proxy-protocol.header-timeout", path));
    }

    /// <summary>The listener's certificate with its key, and the other certificates of its file (the chain it sends).</summary>
    private static (System.Security.Cryptography.X509Certificates.X509Certificate2, System.Security.Cryptography.X509Certificates.X509Certificate2Collection) LoadCertificate(Config tcp, string path)
    {
        var certificate = ReadString(tcp, "tls.certificate", path);
        var key = ReadString(tcp, "tls.key", path);
        if (!File.Exists(certificate))
            throw new ConfigurationError($"{path}.tls.certificate", $"'{certificate}' is not a readable PEM file");
        if (!File.Exists(key))
            throw new ConfigurationError($"{path}.tls.key", $"'{key}' is not a readable PEM file");
        try
        {
            var leaf = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(certificate, key);
            var file = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
            file.ImportFromPemFile(certificate);
            var intermediates = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
            foreach (var other in file)
                if (other.Thumbprint != leaf.Thumbprint) intermediates.Add(other);
            return (leaf, intermediates);
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or ArgumentException or IOException)
        {
            throw new ConfigurationError($"{path}.tls.certificate", $"'{certificate}' with key '{key}' cannot be loaded: {FirstLine(e.Message)}");
        }
    }

    private static string FirstLine(string text) => text.Split('\n')[0].Trim();

    private static string ReadResource(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourcePrefix + name)
            ?? throw new InvalidOperationException($"embedded resource {ResourcePrefix + name} is missing from the build");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
