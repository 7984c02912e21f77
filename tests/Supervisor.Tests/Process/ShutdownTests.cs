using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Supervisor.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Supervisor.Tests.Processes;

/// <summary>
/// SIGTERM runs coordinated shutdown: every connection is told <c>server-shutdown</c> with its own moment to come back
/// (the reconnect hint, spread over the shipped 5 s window), then the process exits 0.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ShutdownTests(ITestOutputHelper output)
{
    private const int Connections = 50;

    private sealed class Peer(int index, Socket socket) : IDisposable
    {
        private readonly StreamReader _reader = new(new NetworkStream(socket, ownsSocket: true), Encoding.UTF8);

        public int Index { get; } = index;
        public Socket Socket { get; } = socket;

        public async Task<string> HeartbeatAsync(CancellationToken token)
        {
            await Socket.SendAsync(Encoding.UTF8.GetBytes($"{{\"type\":0,\"timestamp\":1,\"seq\":{Index}}}\n"), SocketFlags.None, token);
            return await _reader.ReadLineAsync(token) ?? throw new InvalidOperationException($"peer {Index}: EOF instead of a heartbeat response");
        }

        /// <summary>Every line until EOF, then closes the socket as a well-behaved client does.</summary>
        public async Task<(List<string> Lines, string? Error)> ReadToEndAsync(CancellationToken token)
        {
            var lines = new List<string>();
            try
            {
                while (await _reader.ReadLineAsync(token) is { } line) lines.Add(line);
                return (lines, null);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
                return (lines, e is OperationCanceledException ? "no EOF within the time allowed" : e.GetBaseException().Message);
            }
            finally
            {
                Dispose();
            }
        }

        public void Dispose() => _reader.Dispose();
    }

    [Fact]
    public async Task Sigterm_must_tell_every_connection_server_shutdown_with_its_own_reconnect_moment_spread_over_the_window_and_exit_0_within_5_seconds()
    {
        using var service = ServiceProcess.Start(ServiceProcess.Config(), output: output);
        var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20));

        var peers = new List<Peer>();
        try
        {
            var setup = Stopwatch.StartNew();
            using (var connecting = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
            {
                for (var i = 1; i <= Connections; i++)
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    try
                    {
                        await socket.ConnectAsync(IPAddress.Loopback, port, connecting.Token);
                    }
                    catch
                    {
                        socket.Dispose();
                        throw;
                    }
                    peers.Add(new Peer(i, socket));
                }
                var responses = await Task.WhenAll(peers.Select(p => p.HeartbeatAsync(connecting.Token)));
                for (var i = 0; i < responses.Length; i++)
                {
                    using var response = JsonDocument.Parse(responses[i]);
                    Assert.Equal(1, response.RootElement.GetProperty("type").GetInt32());
                    Assert.Equal(peers[i].Index, response.RootElement.GetProperty("seq").GetInt64());
                }
            }
            output.WriteLine($"{Connections} connections opened and answered a heartbeat in {setup.ElapsedMilliseconds} ms");
            await service.WaitForLineAsync(l => l.Contains($"Connection c{Connections} opened", StringComparison.Ordinal),
                TimeSpan.FromSeconds(5), $"'Connection c{Connections} opened'");

            using var reading = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var sigterm = Stopwatch.GetTimestamp();
            service.Signal(ChildProcess.SigTerm);
            var ends = peers.Select(p => p.ReadToEndAsync(reading.Token)).ToArray();

            var code = await service.WaitForExitAsync(TimeSpan.FromSeconds(10));
            var exitTime = service.ExitedAt is { } exitedAt ? Stopwatch.GetElapsedTime(sigterm, exitedAt) : (TimeSpan?)null;
            output.WriteLine($"exit code {code?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}, "
                             + $"{exitTime?.TotalMilliseconds.ToString("F0", System.Globalization.CultureInfo.InvariantCulture) ?? "?"} ms after SIGTERM");
            var results = await Task.WhenAll(ends);

            var problems = new List<string>();
            for (var i = 0; i < results.Length; i++)
            {
                var (lines, error) = results[i];
                var notice = lines.LastOrDefault();
                if (error is not null) problems.Add($"peer {peers[i].Index}: {error} (received: {string.Join(" | ", lines)})");
                else if (notice is null || !IsShutdownNotice(notice)) problems.Add($"peer {peers[i].Index}: before EOF received [{string.Join(" | ", lines)}], expected a server-shutdown error notice");
            }
            var closedLines = service.Lines.Where(l => l.Text.Contains("closed: server-shutdown", StringComparison.Ordinal)).ToArray();
            output.WriteLine($"{results.Length - problems.Count}/{Connections} peers got the notice then EOF; "
                             + $"{closedLines.Count(l => !l.IsStandardError)} 'closed: server-shutdown' lines on stdout, {closedLines.Count(l => l.IsStandardError)} on stderr");

            if (problems.Count > 0) throw service.Failure($"{problems.Count} peers did not get notice + EOF:\n{string.Join('\n', problems)}");
            // Each peer has its own moment inside the window, one in each 100 ms slot of it (50 peers over 5 s).
            var hints = results.Select(r => ShutdownNotices.AssertHinted(NoticeData(r.Lines.Last()))).OrderBy(h => h).ToArray();
            output.WriteLine($"reconnect hints: {string.Join(", ", hints.Select(h => h.TotalMilliseconds))} ms");
            Assert.Equal(Connections, hints.Distinct().Count());
            var slot = ShutdownNotices.DefaultSpread / Connections;
            for (var i = 0; i < hints.Length; i++)
                Assert.InRange(hints[i], slot * i, slot * (i + 1) - TimeSpan.FromMilliseconds(1));
            if (code != 0) throw service.Failure($"exit code {code?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none within 10 s"} after SIGTERM, expected 0");
            if (exitTime is not { } t || t > TimeSpan.FromSeconds(5)) throw service.Failure($"the process took {exitTime} to exit after SIGTERM, expected at most 5 s");
            if (closedLines.Length != Connections)
                throw service.Failure($"{closedLines.Length} 'closed: server-shutdown' log lines (stdout and stderr), expected {Connections}");
            var ids = closedLines.Select(l => System.Text.RegularExpressions.Regex.Match(l.Text, @"Connection (c\d+) closed").Groups[1].Value).Distinct().Count();
            Assert.Equal(Connections, ids);
        }
        finally
        {
            foreach (var peer in peers) peer.Dispose();
        }
    }

    private static string? NoticeData(string line)
    {
        using var frame = JsonDocument.Parse(line);
        return frame.RootElement.GetProperty("data").GetString();
    }

    private static bool IsShutdownNotice(string line)
    {
        try
        {
            using var frame = JsonDocument.Parse(line);
            return frame.RootElement.GetProperty("type").GetInt32() == 3
                   && frame.RootElement.TryGetProperty("data", out var data)
                   && data.GetString() is { } text
                   && text.StartsWith("server-shutdown", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return false;
        }
    }
}
