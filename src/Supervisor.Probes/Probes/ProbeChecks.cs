using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Supervisor.Configuration;

namespace Supervisor.Probes;

/// <summary>The outcome of one check.</summary>
/// <param name="LatencyMs">How long the check took; set on success.</param>
/// <param name="Error">What went wrong; set on failure.</param>
/// <param name="Details">Kind-specific figures (e.g. Redis connection statistics), on success and failure alike.</param>
internal sealed record ProbeResult(bool Success, double? LatencyMs, string? Error, IReadOnlyDictionary<string, string> Details)
{
    public static IReadOnlyDictionary<string, string> NoDetails { get; } = new Dictionary<string, string>();

    public static ProbeResult Up(double latencyMs, IReadOnlyDictionary<string, string>? details = null) =>
        new(true, latencyMs, null, details ?? NoDetails);

    public static ProbeResult Down(string error, IReadOnlyDictionary<string, string>? details = null) =>
        new(false, null, error, details ?? NoDetails);
}

/// <summary>
/// One kind of check. The probe actor never starts a check before the previous one has returned or
/// been given up on for its timeout, and it enforces the timeout itself as well as cancelling the token.
/// </summary>
internal interface IProbeCheck : IDisposable
{
    /// <summary>Runs one check; failures of the dependency are a result with <c>Success = false</c>, not an exception.</summary>
    Task<ProbeResult> RunAsync(CancellationToken cancellation);
}

internal static class ProbeChecks
{
    public static IProbeCheck Create(ProbeSettings settings) => settings.Kind switch
    {
        ProbeKind.Redis => new RedisCheck(HostPort.Parse(settings.Endpoint, $"{ProbeSettings.Path}.{settings.Name}.endpoint"), settings.Timeout, settings.Interval),
        ProbeKind.TcpConnect => new TcpConnectCheck(HostPort.Parse(settings.Endpoint, $"{ProbeSettings.Path}.{settings.Name}.endpoint")),
        _ => new HttpGetCheck(new Uri(settings.Endpoint), settings.Timeout),
    };

    /// <summary>A socket error as an operator reads it.</summary>
    public static string Describe(SocketException e) => e.SocketErrorCode switch
    {
        SocketError.ConnectionRefused => "connection refused (nothing listens there)",
        SocketError.TimedOut => "connect timed out",
        SocketError.HostNotFound or SocketError.NoData => "host not found",
        SocketError.HostUnreachable => "host unreachable",
        SocketError.NetworkUnreachable => "network unreachable",
        SocketError.ConnectionReset => "connection reset by the peer",
        _ => $"{e.SocketErrorCode}: {e.Message}",
    };
}

/// <summary><c>tcp-connect</c>: a TCP handshake with the endpoint, closed at once; the latency is the handshake.</summary>
internal sealed class TcpConnectCheck(HostPort endpoint) : IProbeCheck
{
    public async Task<ProbeResult> RunAsync(CancellationToken cancellation)
    {
        var target = endpoint.ToEndPoint();
        using var socket = target is IPEndPoint ip
            ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
            : new Socket(SocketType.Stream, ProtocolType.Tcp);
        var started = Stopwatch.GetTimestamp();
        try
        {
            await socket.ConnectAsync(target, cancellation).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            return ProbeResult.Down($"tcp connect to {endpoint} failed: {ProbeChecks.Describe(e)}");
        }
        var latency = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var details = new Dictionary<string, string>
        {
            ["remote"] = socket.RemoteEndPoint?.ToString() ?? "",
            ["local"] = socket.LocalEndPoint?.ToString() ?? "",
        };
        socket.Shutdown(SocketShutdown.Both);
        return ProbeResult.Up(latency, details);
    }

    public void Dispose()
    {
        // Each check opens and closes its own socket.
    }
}

/// <summary><c>http-get</c>: a GET of the URL; any 2xx status is up (redirects are not followed).</summary>
internal sealed class HttpGetCheck : IProbeCheck
{
    private readonly Uri _url;
    private readonly HttpClient _http;

    public HttpGetCheck(Uri url, TimeSpan timeout)
    {
        _url = url;
        _http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            ConnectTimeout = timeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    public async Task<ProbeResult> RunAsync(CancellationToken cancellation)
    {
        var started = Stopwatch.GetTimestamp();
        HttpResponseMessage response;
        try
        {
            response = await _http.GetAsync(_url, HttpCompletionOption.ResponseHeadersRead, cancellation).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            var cause = e.InnerException is SocketException s ? ProbeChecks.Describe(s) : e.Message;
            return ProbeResult.Down($"GET {_url} failed: {cause}");
        }
        using (response)
        {
            var latency = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var code = (int)response.StatusCode;
            var details = new Dictionary<string, string>
            {
                ["status"] = code.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["reason"] = response.ReasonPhrase ?? "",
                ["version"] = response.Version.ToString(),
            };
            return code is >= 200 and < 300
                ? ProbeResult.Up(latency, details)
                : ProbeResult.Down($"GET {_url} answered {code} {response.ReasonPhrase}", details);
        }
    }

    public void Dispose() => _http.Dispose();
}
