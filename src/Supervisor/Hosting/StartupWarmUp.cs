using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Supervisor.Messages.Wire;

namespace Supervisor.Hosting;

/// <summary>
/// Runs, once the service is up, every path it will need when descriptors have run out, so that no assembly is
/// first opened then: the runtime takes a descriptor to map an assembly and remembers a failed load for good
/// (seen: <c>FileNotFoundException: System.Text.Encodings.Web</c> on every error notice, and the HTTP endpoints
/// answering nothing ever after for want of <c>Microsoft.AspNetCore.Http.Features</c>). Loading every referenced
/// assembly instead would cost 143 more assemblies, two descriptors each: more than 280 of a 600 limit.
/// </summary>
internal static class StartupWarmUp
{
    /// <summary>The operator routes asked once each; their answers do not matter, their code paths do.</summary>
    public static readonly IReadOnlyList<string> OperatorRoutes =
        ["/healthz", "/readyz", "/metrics", "/api/stats", "/api/alerts", "/api/connections?limit=1", "/api/probes"];

    /// <summary>The frame codec's paths, an exception's stack trace, and one request per operator route when <paramref name="http"/> is bound.</summary>
    public static async Task RunAsync(IPEndPoint? http, ILogger log, CancellationToken cancellationToken)
    {
        var loadedBefore = AppDomain.CurrentDomain.GetAssemblies().Length;
        WarmCodec();
        WarmExceptionText();
        if (http is not null)
        {
            var target = http.Address.Equals(IPAddress.Any) ? new IPEndPoint(IPAddress.Loopback, http.Port)
                : http.Address.Equals(IPAddress.IPv6Any) ? new IPEndPoint(IPAddress.IPv6Loopback, http.Port)
                : http;
            foreach (var route in OperatorRoutes)
            {
                try
                {
                    await GetAsync(target, route, cancellationToken);
                }
                catch (Exception e) when (e is SocketException or IOException or TimeoutException or OperationCanceledException)
                {
                    log.LogDebug("Warm-up request {Route} failed: {Error}", route, e.Message);
                }
            }
        }
        log.LogInformation("Warm-up loaded {Assemblies} more assemblies, so that none is first opened when file descriptors run out",
            AppDomain.CurrentDomain.GetAssemblies().Length - loadedBefore);
    }

    private static void WarmCodec()
    {
        _ = JsonLinesCodec.Encode(Frame.ErrorNotice(1, "protocol-error: \u00e9\"\\ warm-up"));
        _ = JsonLinesCodec.Encode(new Frame(FrameType.Data, 1, "warm-up", 1));
        _ = JsonLinesCodec.TryDecode("{\"type\":2,\"timestamp\":1,\"data\":\"\\u00e9\"}"u8, out _, out _);
        _ = JsonLinesCodec.TryDecode("{\"type\":2,\"data\":\"\\ud800\"}"u8, out _, out _);
        _ = JsonLinesCodec.TryDecode("not json"u8, out _, out _);
        if (JsonLinesCodec.TryDecode("{\"type\":2,\"data\":{\"x\":[1]}}"u8, out var json, out _)) _ = JsonLinesCodec.Encode(json.ToFrame());
        var binary = BinaryCodec.Instance.EncodeToArray(Frame.ErrorNotice(1, "protocol-error: \u00e9 warm-up"));
        _ = BinaryCodec.Instance.TryDecode(binary.AsSpan(BinaryCodec.PrefixLength), out _, out _);
    }

    private static void WarmExceptionText()
    {
        try
        {
            throw new InvalidOperationException("warm-up");
        }
        catch (InvalidOperationException e)
        {
            // Formats the stack trace the way a logged failure does (System.Diagnostics.StackTrace, Reflection.Metadata).
            _ = e.ToString();
        }
    }

    private static async Task GetAsync(IPEndPoint endpoint, string route, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint, timeout.Token);
        var host = endpoint.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{endpoint.Address}]:{endpoint.Port}" : endpoint.ToString();
        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET {route} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"), SocketFlags.None, timeout.Token);
        var buffer = new byte[16 * 1024];
        while (await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token) > 0)
        {
        }
    }
}
