using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using Supervisor.Http;

namespace Supervisor.WebSockets;

/// <summary>
/// Which browser origins may open a WebSocket (<c>supervisor.websocket.allowed-origins</c>). A request
/// without <c>Origin</c> does not come from a browser page and is let through: the check exists to stop
/// other sites' pages from riding a visitor's browser, not to authenticate peers.
/// </summary>
public sealed class OriginPolicy(IReadOnlyList<string> allowedOrigins)
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
        var originHost = new Uri(normalised).Host;
        var requestHost = request.Host.Host;
        return string.Equals(originHost, requestHost, StringComparison.OrdinalIgnoreCase)
            ? null
            : $"origin '{origin}' is not the host '{requestHost}' (allowed-origins is empty: same host only)";
    }
}
