using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using Supervisor.Http;

namespace Supervisor.WebSockets;

/// <summary>
/// Which browser origins may open a WebSocket (<c>supervisor.websocket.allowed-origins</c>). A request
/// without <c>Origin</c> does not come from a browser page and is let through: the check exists to stop
/// other sites' pages from riding a visitor's browser, not to authenticate peers.
/// </summary>
internal sealed class OriginPolicy(IReadOnlyList<string> allowedOrigins)
{
    private readonly HashSet<string> _allowed = new(allowedOrigins, StringComparer.OrdinalIgnoreCase);

    /// <summary>Null when allowed, else why not (for the log and the 403 body).</summary>
    public string? Refusal(HttpRequest request)
    {
        var origin = request.Headers[HeaderNames.Origin].ToString();
        if (origin.Length == 0) return null;
        var normalised = OperatorConfig.NormaliseOrigin(origin);
        if (normalised is null) return $"origin '{origin}' is not a valid origin";

        if (_allowed.Count > 0)
            return _allowed.Contains(normalised) ? null : $"origin '{origin}' is not in allowed-origins";

        // Empty list: the page must come from the host the client connected to (any port, any scheme).
        return IsSameHost(normalised, request.Host, samePort: false)
            ? null
            : $"origin '{origin}' is not the host '{request.Host.Host}' (allowed-origins is empty: same host only)";
    }

    /// <summary>
    /// True when a page of <paramref name="origin"/> addresses the host the request was sent to: the same name,
    /// and with <paramref name="samePort"/> the same port (a Host without one means the origin scheme's default).
    /// The scheme is not compared: behind a TLS-terminating proxy the page is https and the request plain http.
    /// An origin that is no origin (<c>null</c>, sent by sandboxed frames and file pages) is never the same host.
    /// </summary>
    internal static bool IsSameHost(string origin, HostString requestHost, bool samePort)
    {
        if (OperatorConfig.NormaliseOrigin(origin) is not { } normalised) return false;
        var page = new Uri(normalised);
        if (!string.Equals(page.Host, requestHost.Host, StringComparison.OrdinalIgnoreCase)) return false;
        return !samePort || page.Port == (requestHost.Port ?? (page.Scheme == Uri.UriSchemeHttps ? 443 : 80));
    }
}
