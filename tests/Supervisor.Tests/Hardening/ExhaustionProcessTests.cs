using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Supervisor.Tests.Processes;
using Xunit.Abstractions;

namespace Supervisor.Tests.Hardening;

/// <summary>
/// The real service under <c>prlimit --nofile=600:600</c>: 300 peers heartbeating every second, then 500 more
/// arriving, more than the descriptors can hold. Running out must be a state (listener paused, /readyz saying
/// why, one <c>fd-exhausted</c> alert) and not a crash, a stalled peer or a broken HTTP surface; once the 500
/// leave, new connections are accepted within a second and everything works as before.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ExhaustionProcessTests(ITestOutputHelper output)
{
    private const int Limit = 600;
    private const int Heartbeating = 300;
    private const int Arriving = 500;

    private static readonly string Hocon = """
        supervisor {
          tcp { host = "127.0.0.1", port = 0, limits.max-connections-per-address = 10000 }
          http { host = "127.0.0.1", port = 0 }
          websocket { host = "127.0.0.1", port = 0 }
        }
        """;

    /// <summary>A peer heartbeating once a second; remembers the longest wait for an answer and any failure.</summary>
    private sealed class HeartbeatingPeer(Socket socket, int index) : IDisposable
    {
        private readonly StreamReader _reader = new(new NetworkStream(socket, ownsSocket: true), Encoding.UTF8);

        public TimeSpan LongestAnswer { get; private set; }
        public long Answered { get; private set; }
        public string? Failure { get; private set; }

        public async Task RunAsync(CancellationToken stop)
        {
            try
            {
                for (long seq = 1; !stop.IsCancellationRequested; seq++)
                {
                    var sent = Stopwatch.GetTimestamp();
                    await socket.SendAsync(Encoding.UTF8.GetBytes($"{{\"type\":0,\"timestamp\":1,\"seq\":{seq}}}\n"), SocketFlags.None, CancellationToken.None);
                    using var answerTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                    var line = await _reader.ReadLineAsync(answerTimeout.Token);
                    if (line is null || !line.Contains($"\"seq\":{seq}", StringComparison.Ordinal))
                    {
                        Failure = $"peer {index}: heartbeat {seq} answered with {line ?? "EOF"}";
                        return;
                    }
                    Answered++;
                    var waited = Stopwatch.GetElapsedTime(sent);
                    if (waited > LongestAnswer) LongestAnswer = waited;
                    try { await Task.Delay(TimeSpan.FromSeconds(1) - waited, stop); }
                    catch (OperationCanceledException) { return; }
                    catch (ArgumentOutOfRangeException) { }
                }
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
                Failure = $"peer {index}: {e.GetType().Name}: {e.Message}";
            }
        }

        public void Dispose() => _reader.Dispose();
    }

    /// <summary>/healthz, /readyz and /metrics asked four times a second throughout.</summary>
    private sealed class HttpWatch(HttpClient http)
    {
        public List<string> Failures { get; } = [];
        public List<string> NotReadyReasons { get; } = [];
        public int Rounds { get; private set; }
        public bool SawAcceptPaused { get; private set; }

        public async Task RunAsync(CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                await Check("/healthz", expectOk: true);
                await Check("/metrics", expectOk: true);
                await Check("/readyz", expectOk: false);
                Rounds++;
                try { await Task.Delay(250, stop); } catch (OperationCanceledException) { return; }
            }
        }

        private async Task Check(string path, bool expectOk)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(3));
                using var response = await http.GetAsync(path, timeout.Token);
                var body = await response.Content.ReadAsStringAsync(timeout.Token);
                if (path == "/readyz" && !response.IsSuccessStatusCode) NotReadyReasons.Add(body);
                if (path == "/metrics" && ExhaustionTests.AcceptPaused(body) == 1) SawAcceptPaused = true;
                if (expectOk && !response.IsSuccessStatusCode) Failures.Add($"{path}: {(int)response.StatusCode} {body}");
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException)
            {
                Failures.Add($"{path}: {e.GetType().Name}: {e.Message}");
            }
        }
    }

    [Fact]
    public async Task Running_out_of_file_descriptors_must_pause_accepting_and_keep_serving_everyone_else()
    {
        var prlimit = Tools.Find("prlimit") ?? throw new InvalidOperationException("prlimit (util-linux) is not installed");
        using var service = ServiceProcess.Start(Hocon, output: output, launcher: [prlimit, $"--nofile={Limit}:{Limit}", "--"]);
        var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(30));
        var httpPort = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(30), "http");
        // Logged after the warm-up, so nothing is left to load when descriptors run out.
        await service.WaitForLineAsync(l => l.Contains("cannot be held by the file descriptor limit 600", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "the start-up warning that max-connections 20000 does not fit under the limit");
        var rssBefore = ResidentMiB(service.Pid);

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
        var peers = new List<HeartbeatingPeer>();
        using var stop = new CancellationTokenSource();
        var extras = new List<Socket>();
        try
        {
            for (var i = 0; i < Heartbeating; i++) peers.Add(new HeartbeatingPeer(await ConnectAsync(port), i));
            var heartbeats = peers.Select(p => p.RunAsync(stop.Token)).ToArray();
            var watch = new HttpWatch(http);
            var watching = watch.RunAsync(stop.Token);
            await Task.Delay(TimeSpan.FromSeconds(2));

            // 500 more arrive: the kernel completes their handshakes, the listener adopts what the descriptors allow.
            for (var i = 0; i < Arriving; i++)
            {
                var extra = await ConnectAsync(port);
                extras.Add(extra);
                await extra.SendAsync("{\"type\":0,\"timestamp\":1,\"seq\":1}\n"u8.ToArray(), SocketFlags.None);
            }
            await service.WaitForLineAsync(l => l.Contains("Listener tcp stops accepting: out of file descriptors", StringComparison.Ordinal),
                TimeSpan.FromSeconds(20), "the listener pausing for want of descriptors");
            await Task.Delay(TimeSpan.FromSeconds(5));
            var rssExhausted = ResidentMiB(service.Pid);
            var notReadyWhileExhausted = watch.NotReadyReasons.ToArray();

            // The 500 leave: the listener must accept again within a second. (A newcomer queues in the backlog
            // behind the ~490 that left while waiting there; the listener drains them ~12 at a time, as the free
            // descriptors allow, so it is answered later. With the descriptors counted by readdir: 0.31 s at load
            // average 45, 0.7-2.9 s at load 45-61 with 7.3 and 10.1 s at the worst; it was 3.8-8 s when each count
            // took 35-85 ms. The bound below was exceeded once, at load 65.)
            var freed = Stopwatch.GetTimestamp();
            foreach (var extra in extras) extra.Dispose();
            extras.Clear();
            using (var newcomer = new StreamReader(new NetworkStream(await ConnectAsync(port), ownsSocket: true)))
            {
                await newcomer.BaseStream.WriteAsync("{\"type\":0,\"timestamp\":1,\"seq\":42}\n"u8.ToArray());
                using var answerTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                var answer = await newcomer.ReadLineAsync(answerTimeout.Token);
                var answeredAfter = Stopwatch.GetElapsedTime(freed);
                var firstAccept = service.Lines.First(l => l.ReceivedAt > freed && l.Text.Contains(" opened from ", StringComparison.Ordinal));
                var acceptingAfter = Stopwatch.GetElapsedTime(freed, firstAccept.ReceivedAt);
                output.WriteLine($"after the 500 closed: first connection accepted after {acceptingAfter.TotalMilliseconds:F0} ms, "
                    + $"newcomer answered after {answeredAfter.TotalMilliseconds:F0} ms: {answer}");
                Assert.Contains("\"seq\":42", answer ?? "EOF");
                Assert.True(acceptingAfter < TimeSpan.FromSeconds(1), $"the listener accepted again only {acceptingAfter.TotalMilliseconds:F0} ms after descriptors freed up");
                Assert.True(answeredAfter < TimeSpan.FromSeconds(8), $"a newcomer waited {answeredAfter.TotalMilliseconds:F0} ms after descriptors freed up");
            }

            // The episode ends (alert resolved, ready again) once accepting has gone on without a pause.
            await service.WaitForLineAsync(l => l.Contains("Listener tcp accepts again", StringComparison.Ordinal), TimeSpan.FromSeconds(15), "the end of the episode");
            var readyAgain = await WaitForReadyAsync(http, TimeSpan.FromSeconds(10));
            Assert.True(readyAgain, "/readyz never became ready again");
            await Task.Delay(TimeSpan.FromSeconds(1));

            stop.Cancel();
            await Task.WhenAll(heartbeats);
            await watching;
            var rssAfter = ResidentMiB(service.Pid);

            var alerts = JsonDocument.Parse(await http.GetStringAsync("/api/alerts")).RootElement;
            var fdAlerts = alerts.GetProperty("active").EnumerateArray().Concat(alerts.GetProperty("history").EnumerateArray())
                .Where(a => a.GetProperty("rule").GetString() == "fd-exhausted").ToArray();
            var longest = peers.Max(p => p.LongestAnswer);
            output.WriteLine($"RSS {rssBefore} MiB before, {rssExhausted} MiB exhausted, {rssAfter} MiB after; "
                + $"longest heartbeat answer {longest.TotalMilliseconds:F0} ms; {watch.Rounds} HTTP rounds, {watch.NotReadyReasons.Count} not ready; "
                + $"fd-exhausted alerts {fdAlerts.Length}; 'stops accepting' lines {service.StandardOutput.Count(l => l.Contains("Listener tcp stops accepting", StringComparison.Ordinal))}");

            Assert.Empty(peers.Where(p => p.Failure is not null).Select(p => p.Failure));
            Assert.True(longest < TimeSpan.FromSeconds(3), $"a heartbeating peer waited {longest.TotalMilliseconds:F0} ms for an answer");
            Assert.Empty(watch.Failures);
            Assert.Contains(notReadyWhileExhausted, r => r.Contains("out of file descriptors", StringComparison.Ordinal));
            Assert.True(watch.SawAcceptPaused, "/metrics never showed supervisor_accept_paused 1");
            Assert.Single(fdAlerts);
            Assert.False(fdAlerts[0].GetProperty("resolvedAt").ValueKind == JsonValueKind.Null, "the fd-exhausted alert was not resolved");
            Assert.Equal(1, service.StandardOutput.Count(l => l.Contains("Listener tcp stops accepting", StringComparison.Ordinal)));
            Assert.True(rssAfter - rssBefore < 64, $"RSS grew by {rssAfter - rssBefore} MiB");
            Assert.DoesNotContain(service.Lines, l => l.Text.Contains("Could not load file or assembly", StringComparison.Ordinal)
                || l.Text.Contains("Out of memory", StringComparison.Ordinal) || l.Text.Contains(" crit: ", StringComparison.Ordinal));

            // Everything as before: a fresh peer is echoed, and the service exits cleanly on SIGTERM.
            using (var fresh = new StreamReader(new NetworkStream(await ConnectAsync(port), ownsSocket: true)))
            {
                await fresh.BaseStream.WriteAsync("{\"type\":2,\"timestamp\":1,\"data\":\"still here\"}\n"u8.ToArray());
                using var echoTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                Assert.Contains("still here", await fresh.ReadLineAsync(echoTimeout.Token) ?? "EOF");
            }
            Assert.False(service.HasExited, "the service exited");
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var extra in extras) extra.Dispose();
            foreach (var peer in peers) peer.Dispose();
        }
        service.Signal(ChildProcess.SigTerm);
        Assert.Equal(0, await service.WaitForExitAsync(TimeSpan.FromSeconds(20)));
    }

    private static async Task<Socket> ConnectAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        return socket;
    }

    private static async Task<bool> WaitForReadyAsync(HttpClient http, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            using var response = await http.GetAsync("/readyz");
            if (response.IsSuccessStatusCode) return true;
            await Task.Delay(100);
        }
        return false;
    }

    private static long ResidentMiB(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
    }
}
