using System.Net;
using Akka.Configuration;
using Supervisor.Configuration;
using static Supervisor.Configuration.HoconReader;

namespace Supervisor.Http;

/// <summary>The operator HTTP surface: API, metrics, health, dashboard (<c>supervisor.http</c>).</summary>
/// <param name="Enabled">Serve it at all. Default on.</param>
/// <param name="Host">IP address to bind. Default 127.0.0.1: the API can close connections.</param>
/// <param name="Port">Port to bind, 0-65535 (0: the kernel picks). Default 8080.</param>
/// <param name="AdminToken">When set, mutating routes need <c>Authorization: Bearer &lt;token&gt;</c>. Default unset.</param>
/// <param name="AllowedHosts">
/// Names the <c>Host</c> header may carry (ASP.NET Core's <c>AllowedHosts</c> patterns: exact, <c>*.example.com</c>,
/// or <c>*</c> for any); an IP address is always allowed. Default <c>["localhost"]</c>: DNS rebinding gets 400.
/// </param>
/// <param name="MaxEventClients">Concurrent <c>/api/events</c> streams; one more gets 503. Default 64.</param>
internal sealed record HttpSettings(bool Enabled, string Host, int Port, string? AdminToken, IReadOnlyList<string> AllowedHosts, int MaxEventClients)
{
    /// <summary>True when the API is bound to a loopback address only, out of reach of other machines.</summary>
    public bool LoopbackOnly => IPAddress.IsLoopback(IPAddress.Parse(Host));
}

/// <summary>The WebSocket listener (<c>supervisor.websocket</c>).</summary>
/// <param name="Enabled">Serve WebSocket peers at all. Default on.</param>
/// <param name="Host">IP address to bind. Default 0.0.0.0.</param>
/// <param name="Port">Port to bind, 0-65535. Default 8082.</param>
/// <param name="Path">Request path of the endpoint. Default <c>/ws</c>.</param>
/// <param name="PingInterval">Time between server pings. Default 30 s.</param>
/// <param name="PongTimeout">A peer with no pong this long after a ping is closed with heartbeat-timeout. Default 10 s.</param>
/// <param name="AllowedOrigins">Normalised origins (<c>scheme://host[:port]</c>); empty: same host only.</param>
/// <param name="Listener">
/// The settings every WebSocket connection actor runs with. Frame, capacity, linger, keep-alive and
/// <c>limits</c> keys come from <c>supervisor.websocket</c> where set there, else from <c>supervisor.tcp</c>. The application
/// heartbeat deadline is off: pongs never reach the application, so a peer that only answers pings would
/// look silent to it; the WebSocket ping/pong is this listener's heartbeat.
/// </param>
internal sealed record WebSocketSettings(
    bool Enabled,
    string Host,
    int Port,
    string Path,
    TimeSpan PingInterval,
    TimeSpan PongTimeout,
    IReadOnlyList<string> AllowedOrigins,
    ListenerSettings Listener)
{
    /// <summary>The name WebSocket connections show as their listener.</summary>
    public const string ListenerName = "websocket";
}

/// <summary>Everything the HTTP and WebSocket side reads from <c>supervisor.http</c> and <c>supervisor.websocket</c>.</summary>
internal sealed record OperatorSettings(HttpSettings Http, WebSocketSettings WebSocket)
{
    /// <summary>Kestrel runs only when one of the two is on; with both off the process opens no HTTP port.</summary>
    public bool NeedsWebServer => Http.Enabled || WebSocket.Enabled;
}

/// <summary>Reads and validates <see cref="OperatorSettings"/>; every problem is a <see cref="ConfigurationError"/> naming its key.</summary>
internal static class OperatorConfig
{
    private const string HttpPath = "supervisor.http";
    private const string WsPath = "supervisor.websocket";

    public static OperatorSettings Read(Config config, SupervisorSettings settings)
    {
        var http = ReadHttp(config);
        var ws = ReadWebSocket(config, settings);

        if (http.Enabled && ws.Enabled && Overlaps(http.Host, http.Port, ws.Host, ws.Port))
            throw new ConfigurationError($"{WsPath}.port", $"{ws.Port} is already used by {HttpPath}.port");
        foreach (var listener in settings.Listeners)
        {
            if (http.Enabled && Overlaps(http.Host, http.Port, listener.Host, listener.Port))
                throw new ConfigurationError($"{HttpPath}.port", $"{http.Port} is already used by listener '{listener.Name}'");
            if (ws.Enabled && Overlaps(ws.Host, ws.Port, listener.Host, listener.Port))
                throw new ConfigurationError($"{WsPath}.port", $"{ws.Port} is already used by listener '{listener.Name}'");
            if (ws.Enabled && listener.Name == WebSocketSettings.ListenerName)
                throw new ConfigurationError($"supervisor.listeners.{listener.Name}", $"the name '{listener.Name}' is taken by the WebSocket listener");
        }
        return new OperatorSettings(http, ws);
    }

    private static HttpSettings ReadHttp(Config config)
    {
        var token = ReadString(config, $"{HttpPath}.admin-token") ?? "";
        if (token.Any(char.IsWhiteSpace))
            throw new ConfigurationError($"{HttpPath}.admin-token", "must not contain whitespace (it is sent as a Bearer token)");
        var maxEventClients = ReadInt(config, $"{HttpPath}.max-event-clients");
        if (maxEventClients < 1)
            throw new ConfigurationError($"{HttpPath}.max-event-clients", $"{maxEventClients} must be at least 1");
        return new HttpSettings(
            ReadBool(config, $"{HttpPath}.enabled"),
            ReadAddress(config, $"{HttpPath}.host"),
            ReadPort(config, $"{HttpPath}.port"),
            token.Length == 0 ? null : token,
            ReadAllowedHosts(config, $"{HttpPath}.allowed-hosts"),
            maxEventClients);
    }

    /// <summary>
    /// Host names as ASP.NET Core's host filtering takes them: <c>name</c>, <c>*.suffix</c> or <c>*</c>, no scheme,
    /// no path and no port (ports are not compared). Stored lower-case, IDN names as the browser sends them (punycode).
    /// </summary>
    private static IReadOnlyList<string> ReadAllowedHosts(Config config, string key)
    {
        IList<string> raw = HoconReader.Read(config, key, null, "a list of host names such as [\"localhost\", \"ops.example.com\"]", () => config.GetStringList(key));
        var hosts = new List<string>(raw.Count);
        foreach (var entry in raw)
        {
            var host = entry.Trim().ToLowerInvariant();
            if (!IsHostPattern(host))
                throw new ConfigurationError(key, $"'{entry}' is not a host name such as ops.example.com, *.example.com or * (no scheme, path or port)");
            hosts.Add(host);
        }
        return hosts;

        static bool IsHostPattern(string host)
        {
            if (host == "*") return true;
            if (host.StartsWith('[') && host.EndsWith(']')) return Uri.CheckHostName(host[1..^1]) == UriHostNameType.IPv6;
            var name = host.StartsWith("*.", StringComparison.Ordinal) ? host[2..] : host;
            return Uri.CheckHostName(name) is UriHostNameType.Dns or UriHostNameType.IPv4;
        }
    }

    private static WebSocketSettings ReadWebSocket(Config config, SupervisorSettings settings)
    {
        var enabled = ReadBool(config, $"{WsPath}.enabled");
        var host = ReadAddress(config, $"{WsPath}.host");
        var port = ReadPort(config, $"{WsPath}.port");
        var path = ReadString(config, $"{WsPath}.path");
        if (!path.StartsWith('/') || path.IndexOfAny(['?', '#', ' ']) >= 0)
            throw new ConfigurationError($"{WsPath}.path", $"'{path}' must be a request path starting with '/'");
        var pingInterval = ReadPositiveDuration(config, $"{WsPath}.ping-interval");
        var pongTimeout = ReadPositiveDuration(config, $"{WsPath}.pong-timeout");
        var origins = ReadOrigins(config, $"{WsPath}.allowed-origins");

        // Keys a WebSocket listener shares with TCP listeners (frame and connection limits, keep-alive,
        // abuse limits, tls): its own where set, else supervisor.tcp's, read by the one listener reader.
        // Its heartbeat is the WebSocket ping/pong, so the application deadline is off.
        // (The phi block comes from supervisor.heartbeat; it is read, not used, with the deadline off.)
        var heartbeat = ConfigurationFactory.ParseString($$"""
            enabled = off, interval = {{pingInterval.ToHocon()}}, timeout = {{(pingInterval + pongTimeout).ToHocon()}}
            liveness = any-frame, server-ping = off, starvation-threshold = 1s, detector = fixed, suspect-after = auto
            """).WithFallback(config.GetConfig("supervisor.heartbeat"));
        var listener = SupervisorConfig.ReadListener(WebSocketSettings.ListenerName, settings.Profile, WsPath,
            config.GetConfig(WsPath).WithFallback(config.GetConfig("supervisor.tcp")), heartbeat, $"{WsPath}.heartbeat")
            with { ProxyProtocol = null }; // TCP listeners only: Kestrel owns the WebSocket's socket.
        return new WebSocketSettings(enabled, host, port, path, pingInterval, pongTimeout, origins, listener);
    }

    /// <summary>Two binds collide when the ports are equal and fixed and the addresses are equal or either is a wildcard.</summary>
    private static bool Overlaps(string hostA, int portA, string hostB, int portB)
    {
        if (portA == 0 || portB == 0 || portA != portB) return false;
        var a = IPAddress.Parse(hostA);
        var b = IPAddress.Parse(hostB);
        return a.Equals(b) || a.Equals(IPAddress.Any) || b.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any) || b.Equals(IPAddress.IPv6Any);
    }

    /// <summary>An origin as browsers send it: lower-case <c>scheme://host[:port]</c>, the port only when it is not the scheme's default.</summary>
    public static string? NormaliseOrigin(string origin)
    {
        if (!Uri.TryCreate(origin.Trim(), UriKind.Absolute, out var uri)) return null;
        if (uri.Scheme is not ("http" or "https")) return null;
        if (uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.Fragment.Length > 0 || uri.UserInfo.Length > 0) return null;
        return uri.IsDefaultPort ? $"{uri.Scheme}://{uri.Host}" : $"{uri.Scheme}://{uri.Host}:{uri.Port}";
    }

    private static IReadOnlyList<string> ReadOrigins(Config config, string key)
    {
        IList<string> raw = HoconReader.Read(config, key, null, "a list of origins such as [\"https://app.example.com\"]", () => config.GetStringList(key));
        var origins = new List<string>(raw.Count);
        foreach (var entry in raw)
        {
            var origin = NormaliseOrigin(entry)
                ?? throw new ConfigurationError(key, $"'{entry}' is not an origin such as https://app.example.com (scheme, host, optional port, no path)");
            origins.Add(origin);
        }
        return origins;
    }

    private static string ReadAddress(Config config, string key)
    {
        var host = ReadString(config, key);
        if (!IPAddress.TryParse(host, out _))
            throw new ConfigurationError(key, $"'{host}' is not an IP address");
        return host;
    }

    private static int ReadPort(Config config, string key)
    {
        var port = ReadInt(config, key);
        if (port is < 0 or > 65535)
            throw new ConfigurationError(key, $"{port} is out of range 0-65535");
        return port;
    }
}
