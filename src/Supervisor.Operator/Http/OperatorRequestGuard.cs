using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using Supervisor.WebSockets;

namespace Supervisor.Http;

/// <summary>
/// What keeps web pages from driving the operator API through a visitor's browser (DESIGN §5), run before
/// routing on every request of the operator endpoint:
/// <list type="bullet">
/// <item>A <c>Host</c> that is not in <c>supervisor.http.allowed-hosts</c> gets 400 on every route. DNS rebinding
/// re-points the attacker's own name at this address, so the browser sends that name; a Host that is an IP
/// address cannot be a rebound name and is always accepted (kubelet probes and Prometheus send the pod IP).</item>
/// <item>A state-changing request (any method but GET, HEAD, OPTIONS, TRACE) from a page of another origin
/// (<c>Origin</c> not this host and port, or <c>Sec-Fetch-Site: cross-site</c>) gets 403. Non-browser clients
/// send neither header and pass; the admin token still applies to them.</item>
/// </list>
/// </summary>
internal sealed class OperatorRequestGuard(HttpSettings http)
{
    private const string AllowedHostsKey = "supervisor.http.allowed-hosts";
    private readonly StringSegment[] _allowedHosts = http.AllowedHosts.Select(host => new StringSegment(host)).ToArray();

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (HostRefusal(context.Request) is { } badHost)
        {
            await RefuseAsync(context, StatusCodes.Status400BadRequest, badHost);
            return;
        }
        if (CrossOriginRefusal(context.Request) is { } crossOrigin)
        {
            await RefuseAsync(context, StatusCodes.Status403Forbidden, crossOrigin);
            return;
        }
        await next(context);
    }

    /// <summary>Null when the Host header may reach the API, else why not.</summary>
    public string? HostRefusal(HttpRequest request)
    {
        var host = request.Host;
        // HTTP/1.0 without Host (HTTP/1.1 without one Kestrel refuses itself): not a browser, nothing to rebind.
        if (!host.HasValue) return null;
        if (IPAddress.TryParse(host.Host, out _)) return null;
        if (HostString.MatchesAny(new StringSegment(host.Value), _allowedHosts)) return null;
        return $"Host {host.Host} is not in {AllowedHostsKey}: the operator API answers only to the names listed there " +
               "(and to IP addresses), so that a web page cannot reach it by re-pointing its own name at this address (DNS rebinding)";
    }

    /// <summary>Null unless the request changes state and comes from a page of another origin; then why it is refused.</summary>
    public static string? CrossOriginRefusal(HttpRequest request)
    {
        var method = request.Method;
        if (HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsTrace(method))
            return null;
        const string why = "the operator API takes state-changing requests from its own pages and from non-browser clients only";
        if (string.Equals(request.Headers["Sec-Fetch-Site"].ToString(), "cross-site", StringComparison.OrdinalIgnoreCase))
            return $"cross-site {method} refused (Sec-Fetch-Site: cross-site): {why}";
        var origin = request.Headers[HeaderNames.Origin].ToString();
        if (origin.Length == 0) return null;
        return OriginPolicy.IsSameHost(origin, request.Host, samePort: true)
            ? null
            : $"cross-origin {method} refused: Origin {origin} is not this server ({request.Host}); {why}";
    }

    private static async Task RefuseAsync(HttpContext context, int status, string reason)
    {
        context.Response.StatusCode = status;
        await context.Response.WriteAsJsonAsync(new ApiError(reason), ApiJson.Options, context.RequestAborted);
    }
}
