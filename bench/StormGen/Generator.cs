using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using LoadGen;

namespace StormGen;

/// <summary>
/// Starts the server, ramps up N connections (each answered once), lets them heartbeat for the settle time, then
/// makes the storm: a fraction reset at once by this side (RST), or the server stopped with SIGTERM and started
/// again. Peers come back naively or as the heartbeat client would; the run ends when every peer is answered again
/// (or at the limit) and prints what the storm cost. Every wait is bounded; the server is stopped at the end.
/// </summary>
internal sealed partial class Generator(Options options)
{
    private const int SolIp = 0;
    private const int IpBindAddressNoPort = 24;
    private static readonly long Frequency = Stopwatch.Frequency;
    /// <summary>A server handshake flight this small carried no certificate: the session was resumed.</summary>
    private const int ResumedFlightBelow = 400;

    private readonly Peer[] _peers = Enumerable.Range(0, options.Connections)
        .Select(i => new Peer(i, new IPAddress([127, 0, 0, (byte)(1 + i % options.SourceAddresses)]))).ToArray();
    private readonly IPEndPoint _server = new(options.Host, options.Port);
    private readonly ConcurrentQueue<(Peer Peer, int Generation, long Due)> _scheduled = new();
    private readonly Samples _rttBefore = new(2_000_000);
    private readonly Samples _rttStorm = new(4_000_000);
    private readonly ConcurrentDictionary<string, int> _closeReasons = new();
    private readonly ConcurrentDictionary<string, int> _connectErrors = new();
    private readonly ConcurrentQueue<long> _connectedAt = new();
    private readonly ConcurrentQueue<long> _serverFlights = new();
    private readonly SemaphoreSlim _rampWindow = new(options.ConnectConcurrency, options.ConnectConcurrency);
    private readonly Random _random = new();
    private Process? _process;
    private volatile bool _stopping, _storming, _measuringBefore;
    private long _up, _back, _lastBackAt, _attempts, _untouchedDropped;

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Frequency);
    private static double Ms(long ticks) => ticks * 1000.0 / Frequency;
    private static long Now => Stopwatch.GetTimestamp();

    public async Task<int> RunAsync()
    {
        var o = options;
        var results = new Dictionary<string, string>();
        void Put(string key, double value, string format = "F1") => results[key] = value.ToString(format, CultureInfo.InvariantCulture);
        Console.WriteLine($"== {o.Label}: {o.Connections} connections over {o.SourceAddresses} source addresses to {_server}{(o.Tls ? $", TLS (resume {(o.TlsResume ? "on" : "off")})" : "")}; " +
                          $"storm {o.Storm.ToString().ToLowerInvariant()}, comeback {o.Comeback.ToString().ToLowerInvariant()}");
        try
        {
            StartServer();
            await WaitListeningAsync(TimeSpan.FromSeconds(60));
            var sender = new Thread(SendLoop) { IsBackground = true, Name = "heartbeats" };
            sender.Start();

            // Ramp: at most ConnectConcurrency connects in flight; each peer is up once answered.
            var rampStart = Now;
            foreach (var peer in _peers)
            {
                if (!await _rampWindow.WaitAsync(TimeSpan.FromSeconds(60))) throw new TimeoutException("the ramp stalled");
                _ = ConnectAsync(peer, ramp: true);
            }
            if (!await UntilAsync(() => Interlocked.Read(ref _up) >= o.Connections, TimeSpan.FromSeconds(120)))
                throw new TimeoutException($"only {Interlocked.Read(ref _up)}/{o.Connections} up after the ramp");
            Console.WriteLine($"ramp: {o.Connections} up in {Ms(Now - rampStart) / 1000:F1} s; connect errors {Describe(_connectErrors)}");
            _connectErrors.Clear();

            await Task.Delay(o.Settle / 2);
            _measuringBefore = true;
            await Task.Delay(o.Settle / 2);
            _measuringBefore = false;
            var before = _rttBefore.QuantilesMs(0.5, 0.99, 1.0);
            Console.WriteLine($"before the storm: heartbeat RTT p50 {before[0]:F2} ms, p99 {before[1]:F2} ms, max {before[2]:F2} ms (n={_rttBefore.Count})");
            Put("rtt_before_p50_ms", before[0], "F2");
            Put("rtt_before_p99_ms", before[1], "F2");

            var stormed = o.Storm == Storm.Reset ? ResetSome() : o.Connections;
            var (t0, cpu0, listenAt) = o.Storm == Storm.Reset ? (ResetStart, ServerCpu(), ResetStart) : await RestartAsync();
            var finished = await UntilAsync(() => Interlocked.Read(ref _back) >= stormed, o.Limit);
            var end = finished ? Interlocked.Read(ref _lastBackAt) : Now;
            var cpu1 = ServerCpu();
            _storming = false;
            var back = Interlocked.Read(ref _back);
            var connects = _connectedAt.Where(t => t >= t0).Order().ToArray();
            var rtt = _rttStorm.QuantilesMs(0.5, 0.99, 1.0);
            var seconds = Ms(end - t0) / 1000;
            var cpu = cpu1 - cpu0;

            Console.WriteLine($"storm: {stormed} connections lost; {back} back (answered) {(finished ? "" : $"by the limit of {o.Limit.TotalSeconds:F0} s, NOT ALL ")}" +
                              $"in {Ms(end - t0):F0} ms from the {(o.Storm == Storm.Reset ? "reset" : "SIGTERM")}" +
                              (o.Storm == Storm.Restart ? $", {Ms(end - listenAt):F0} ms from the new server listening ({Ms(listenAt - t0):F0} ms after the SIGTERM)" : ""));
            Put("lost", stormed, "F0");
            Put("back", back, "F0");
            Put("all_back_ms", finished ? Ms(end - t0) : double.NaN, "F0");
            if (o.Storm == Storm.Restart)
            {
                Put("listening_after_ms", Ms(listenAt - t0), "F0");
                Put("all_back_from_listen_ms", finished ? Ms(end - listenAt) : double.NaN, "F0");
            }
            if (connects.Length > 1)
            {
                var span = Ms(connects[^1] - connects[0]) / 1000;
                var peak = connects.GroupBy(t => (t - connects[0]) / (Frequency / 10)).Max(g => g.Count()) * 10;
                Console.WriteLine($"accepts: {connects.Length} connects completed over {span:F2} s = {connects.Length / Math.Max(span, 1e-3):F0}/s, peak {peak}/s (100 ms buckets); {Interlocked.Read(ref _attempts)} attempts in all");
                Put("accepts_per_s", connects.Length / Math.Max(span, 1e-3), "F0");
                Put("accepts_peak_per_s", peak, "F0");
            }
            Put("attempts", Interlocked.Read(ref _attempts), "F0");
            if (!double.IsNaN(cpu))
            {
                Console.WriteLine($"server CPU in the storm: {cpu:F2} s over {seconds:F2} s = {cpu / Math.Max(seconds, 1e-3) * 100:F0} % of one core, {cpu / Math.Max(1, back) * 1e6:F0} µs per reconnect");
                Put("cpu_s", cpu, "F2");
                Put("cpu_percent", cpu / Math.Max(seconds, 1e-3) * 100, "F0");
                Put("cpu_per_reconnect_us", cpu / Math.Max(1, back) * 1e6, "F0");
            }
            if (o.Tls && !_serverFlights.IsEmpty)
            {
                // A full handshake's flight carries the certificate (a P-256 one is ~400 B of DER) and its signature;
                // a resumed TLS 1.3 one is the server hello, encrypted extensions and finished (~250 B).
                var flights = _serverFlights.Order().ToArray();
                var resumed = flights.Count(b => b < ResumedFlightBelow);
                Console.WriteLine($"TLS handshakes in the storm: {flights.Length}; the server's flight min {flights[0]} B, p50 {flights[flights.Length / 2]} B, max {flights[^1]} B; " +
                                  $"{resumed} under {ResumedFlightBelow} B (resumed)");
                Put("tls_handshakes", flights.Length, "F0");
                Put("tls_resumed", resumed, "F0");
                Put("tls_flight_p50_bytes", flights[flights.Length / 2], "F0");
            }
            Console.WriteLine($"untouched connections during the storm: heartbeat RTT p50 {rtt[0]:F2} ms, p99 {rtt[1]:F2} ms, max {rtt[2]:F2} ms (n={_rttStorm.Count}); {Interlocked.Read(ref _untouchedDropped)} of them dropped");
            Put("untouched_rtt_p50_ms", rtt[0], "F2");
            Put("untouched_rtt_p99_ms", rtt[1], "F2");
            Put("untouched_rtt_max_ms", rtt[2], "F2");
            Put("untouched_dropped", Interlocked.Read(ref _untouchedDropped), "F0");
            Console.WriteLine($"closes seen in the storm (notice reasons): {Describe(_closeReasons)}; connect errors: {Describe(_connectErrors)}");
            results["closes"] = _closeReasons.IsEmpty ? "none" : string.Join(',', _closeReasons.OrderBy(r => r.Key).Select(r => $"{r.Key}:{r.Value}"));
            results["connect_errors"] = _connectErrors.IsEmpty ? "none" : string.Join(',', _connectErrors.OrderBy(r => r.Key).Select(r => $"{r.Key}:{r.Value}"));
            Console.WriteLine($"RESULT label={o.Label} " + string.Join(' ', results.Select(r => $"{r.Key}={r.Value}")));
            return finished ? 0 : 1;
        }
        catch (Exception e) when (e is TimeoutException or SocketException or InvalidOperationException or IOException)
        {
            Console.Error.WriteLine($"stormgen: {e.Message}");
            return 1;
        }
        finally
        {
            _stopping = true;
            foreach (var peer in _peers) Drop(peer);
            StopServer();
        }
    }

    private static string Describe(ConcurrentDictionary<string, int> counts) =>
        counts.IsEmpty ? "none" : string.Join(", ", counts.OrderByDescending(c => c.Value).Select(c => $"{c.Key} {c.Value}"));

    private static async Task<bool> UntilAsync(Func<bool> condition, TimeSpan limit)
    {
        var until = Now + (long)(limit.TotalSeconds * Frequency);
        while (!condition())
        {
            if (Now > until) return false;
            await Task.Delay(5);
        }
        return true;
    }

    // ---- the storm ----

    private long ResetStart;

    /// <summary>Resets a spread-out fraction of the peers at once (RST: SO_LINGER 0) and schedules their comeback; returns how many.</summary>
    private int ResetSome()
    {
        var chosen = _peers.Where(p => Math.Floor((p.Index + 1) * options.ResetFraction) > Math.Floor(p.Index * options.ResetFraction)).ToArray();
        Interlocked.Exchange(ref _attempts, 0);
        _storming = true;
        ResetStart = Now;
        foreach (var peer in chosen)
        {
            peer.Untouched = false;
            peer.Attempt = 0;
            Drop(peer, reset: true);
        }
        // The blip hit them all at the same instant: their first comeback counts from it, not from when this
        // process got round to closing each socket.
        foreach (var peer in chosen) ScheduleComeback(peer, hinted: null, since: ResetStart);
        Console.WriteLine($"reset {chosen.Length} connections in {Ms(Now - ResetStart):F0} ms");
        return chosen.Length;
    }

    /// <summary>SIGTERM to the server; every peer sees its notice and EOF and schedules its comeback; the server is started again.</summary>
    private async Task<(long T0, double Cpu0, long ListenAt)> RestartAsync()
    {
        foreach (var peer in _peers)
        {
            peer.Untouched = false;
            peer.Attempt = 0;
        }
        Interlocked.Exchange(ref _attempts, 0);
        _storming = true;
        var old = _process!;
        var t0 = Now;
        Signal(old.Id, 15);
        if (!old.WaitForExit(TimeSpan.FromSeconds(30))) throw new TimeoutException("the server did not exit within 30 s of SIGTERM");
        Console.WriteLine($"server exited {Ms(Now - t0):F0} ms after SIGTERM (code {old.ExitCode})");
        StartServer();
        var cpu0 = ServerCpu();
        var listening = await WaitListeningAsync(TimeSpan.FromSeconds(60));
        return (t0, cpu0, listening);
    }

    // ---- connections ----

    private async Task ConnectAsync(Peer peer, bool ramp = false)
    {
        if (_stopping) return;
        var generation = Interlocked.Increment(ref peer.Generation);
        Interlocked.Increment(ref _attempts);
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        SslStream? tls = null;
        try
        {
            // The port is picked at connect time, per destination, so K source addresses give K × ~28k ports.
            socket.SetRawSocketOption(SolIp, IpBindAddressNoPort, BitConverter.GetBytes(1));
            socket.Bind(new IPEndPoint(peer.Source, 0));
            using var timeout = new CancellationTokenSource(options.ConnectTimeout);
            await socket.ConnectAsync(_server, timeout.Token).ConfigureAwait(false);
            socket.NoDelay = true;
            if (options.Tls)
            {
                var counted = new CountingStream(new NetworkStream(socket, ownsSocket: false));
                tls = new SslStream(counted, leaveInnerStreamOpen: false);
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = "localhost",
                    EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                    RemoteCertificateValidationCallback = (_, _, _, _) => true,
                    AllowTlsResume = options.TlsResume,
                }, timeout.Token).ConfigureAwait(false);
                if (_storming) _serverFlights.Enqueue(counted.BytesRead);
            }
            else socket.Blocking = false;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or IOException or AuthenticationException)
        {
            tls?.Dispose();
            socket.Dispose();
            _connectErrors.AddOrUpdate(ErrorName(e), 1, (_, n) => n + 1);
            if (ramp) _rampWindow.Release();
            if (peer.Generation == generation) ScheduleComeback(peer, hinted: null, ramp);
            return;
        }
        if (_stopping || peer.Generation != generation)
        {
            tls?.Dispose();
            socket.Dispose();
            return;
        }
        peer.Socket = socket;
        peer.Tls = tls;
        peer.Notice = null;
        if (_storming) _connectedAt.Enqueue(Now);
        _ = ReadLoopAsync(peer, generation, socket, tls, ramp);
        Heartbeat(peer, generation, new byte[96]);
        _scheduled.Enqueue((peer, generation, Now + Gap()));
    }

    private static string ErrorName(Exception e) => e switch
    {
        SocketException s => s.SocketErrorCode.ToString(),
        OperationCanceledException => "connect-timeout",
        AuthenticationException => "tls-handshake-failed",
        IOException { InnerException: SocketException s } => s.SocketErrorCode.ToString(),
        _ => e.GetType().Name,
    };

    /// <summary>Lets go of the peer's connection: as a blip would (RST), or quietly at the end.</summary>
    private static void Drop(Peer peer, bool reset = false)
    {
        Interlocked.Increment(ref peer.Generation);
        peer.Up = false;
        var socket = peer.Socket;
        peer.Socket = null;
        if (socket is null) return;
        try
        {
            if (reset) socket.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException)
        {
        }
        socket.Dispose();
        peer.Tls?.Dispose();
        peer.Tls = null;
    }

    /// <summary>When a peer that lost its connection (or failed to connect) tries again: naive, or as the heartbeat client.</summary>
    /// <param name="since">When the loss happened, if earlier than now: the delay counts from it.</param>
    private void ScheduleComeback(Peer peer, TimeSpan? hinted, bool ramp = false, long since = 0)
    {
        if (_stopping) return;
        TimeSpan delay;
        if (ramp) delay = TimeSpan.FromMilliseconds(200 + _random.Next(800));
        else if (options.Comeback == Comeback.Naive) delay = options.NaiveWindow * Random.Shared.NextDouble();
        else if (hinted is { } asked) delay = asked < options.MaxBackoff ? asked : options.MaxBackoff;
        else
        {
            // The heartbeat client's Backoff: full jitter in [min, min(max, min × multiplier^attempt)].
            peer.Attempt++;
            var ceiling = Math.Min(options.MaxBackoff.TotalMilliseconds, options.MinBackoff.TotalMilliseconds * Math.Pow(options.Multiplier, peer.Attempt));
            delay = options.MinBackoff + TimeSpan.FromMilliseconds((ceiling - options.MinBackoff.TotalMilliseconds) * Random.Shared.NextDouble());
        }
        if (since != 0) delay -= TimeSpan.FromSeconds((Now - since) / (double)Frequency);
        if (delay < TimeSpan.Zero) delay = TimeSpan.Zero;
        var generation = peer.Generation;
        _ = Task.Delay(delay).ContinueWith(_ =>
        {
            if (peer.Generation != generation || _stopping) return;
            if (ramp) _ = RampRetryAsync(peer);
            else _ = ConnectAsync(peer);
        }, TaskScheduler.Default);
    }

    private async Task RampRetryAsync(Peer peer)
    {
        await _rampWindow.WaitAsync();
        await ConnectAsync(peer, ramp: true);
    }

    private async Task ReadLoopAsync(Peer peer, int generation, Socket socket, SslStream? tls, bool ramp)
    {
        var buffer = new byte[4096];
        var filled = 0;
        var windowHeld = ramp;
        try
        {
            while (true)
            {
                var read = tls is null
                    ? await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None).ConfigureAwait(false)
                    : await tls.ReadAsync(buffer.AsMemory(filled)).ConfigureAwait(false);
                if (read == 0) break;
                filled += read;
                var consumed = 0;
                int newline;
                while ((newline = buffer.AsSpan(consumed, filled - consumed).IndexOf((byte)'\n')) >= 0)
                {
                    OnLine(peer, generation, buffer.AsSpan(consumed, newline));
                    consumed += newline + 1;
                }
                buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                filled -= consumed;
                if (windowHeld && peer.Up)
                {
                    windowHeld = false;
                    _rampWindow.Release();
                }
                if (filled == buffer.Length) break;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException or InvalidOperationException)
        {
            // Reset by the server, or let go of by this side.
        }
        if (windowHeld) _rampWindow.Release();
        if (peer.Generation != generation || _stopping) return;
        // Lost, not by this side: the server closed it (its notice, if any, says why) or the network did.
        var notice = peer.Notice;
        var reason = notice is null ? "closed-without-notice" : notice.Split(':', 2)[0];
        if (_storming || !ramp) _closeReasons.AddOrUpdate(reason, 1, (_, n) => n + 1);
        if (peer.Untouched && _storming && options.Storm == Storm.Reset) Interlocked.Increment(ref _untouchedDropped);
        if (peer.Untouched && options.Storm == Storm.Reset) return; // counted; the storm's figures are about the reset peers
        var wasUp = peer.Up;
        Drop(peer);
        if (wasUp) Interlocked.Decrement(ref _up);
        ScheduleComeback(peer, options.Comeback == Comeback.Client ? ReconnectHint(notice) : null);
    }

    /// <summary><c>reconnect-after=1234ms</c> in a notice's text (DESIGN §2), as the heartbeat client reads it.</summary>
    private static TimeSpan? ReconnectHint(string? notice)
    {
        if (notice is null) return null;
        var match = HintPattern().Match(notice);
        return match.Success ? TimeSpan.FromMilliseconds(long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture)) : null;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"reconnect-after=(\d{1,9})ms")]
    private static partial System.Text.RegularExpressions.Regex HintPattern();

    private void OnLine(Peer peer, int generation, ReadOnlySpan<byte> line)
    {
        var now = Now;
        if (line.IndexOf("\"type\":1"u8) >= 0)
        {
            var seq = Field(line, "\"seq\":"u8);
            if (seq != Volatile.Read(ref peer.Seq)) return;
            var rtt = now - Volatile.Read(ref peer.SentAt);
            if (peer.Untouched)
            {
                if (_storming) _rttStorm.Add(rtt);
                else if (_measuringBefore) _rttBefore.Add(rtt);
            }
            if (!peer.Up && peer.Generation == generation)
            {
                peer.Up = true;
                peer.Attempt = 0;
                Interlocked.Increment(ref _up);
                if (_storming && !peer.Untouched && Interlocked.Exchange(ref peer.CountedBack, 1) == 0)
                {
                    Interlocked.Increment(ref _back);
                    InterlockedMax(ref _lastBackAt, now);
                }
            }
        }
        else if (line.IndexOf("\"type\":3"u8) >= 0)
        {
            var at = line.IndexOf("\"data\":\""u8);
            if (at < 0) return;
            var rest = line[(at + 8)..];
            var end = rest.IndexOf((byte)'"');
            peer.Notice = Encoding.UTF8.GetString(end < 0 ? rest : rest[..end]);
        }
    }

    private static long? Field(ReadOnlySpan<byte> line, ReadOnlySpan<byte> name)
    {
        var at = line.IndexOf(name);
        if (at < 0) return null;
        return System.Buffers.Text.Utf8Parser.TryParse(line[(at + name.Length)..], out long value, out _) ? value : null;
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var seen = Volatile.Read(ref target);
        while (value > seen)
        {
            var was = Interlocked.CompareExchange(ref target, value, seen);
            if (was == seen) return;
            seen = was;
        }
    }

    // ---- heartbeats ----

    private long Gap() => (long)(Ticks(options.Interval) * (1 - Random.Shared.NextDouble() * options.Jitter));

    /// <summary>Sends heartbeat seq+1 on the peer's current connection; false if it is not that connection any more.</summary>
    private bool Heartbeat(Peer peer, int generation, byte[] scratch)
    {
        if (peer.Generation != generation) return false;
        var seq = peer.Seq + 1;
        var n = Encoding.ASCII.GetBytes($"{{\"type\":0,\"timestamp\":{DateTimeOffset.UtcNow.ToUnixTimeSeconds()},\"seq\":{seq}}}\n", scratch);
        Volatile.Write(ref peer.SentAt, Now);
        Volatile.Write(ref peer.Seq, seq);
        try
        {
            if (peer.Tls is { } tls) tls.Write(scratch, 0, n);
            else peer.Socket?.Send(scratch, 0, n, SocketFlags.None, out _);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or InvalidOperationException or NotSupportedException)
        {
            // The read loop sees the end.
        }
        return true;
    }

    /// <summary>One thread sends every heartbeat at its due time, spread: each connection on its own jittered schedule.</summary>
    private void SendLoop()
    {
        var queue = new PriorityQueue<(Peer Peer, int Generation), long>(options.Connections);
        var scratch = new byte[96];
        while (!_stopping)
        {
            while (_scheduled.TryDequeue(out var entry)) queue.Enqueue((entry.Peer, entry.Generation), entry.Due);
            var now = Now;
            while (queue.TryPeek(out var next, out var due) && due <= now)
            {
                queue.Dequeue();
                if (Heartbeat(next.Peer, next.Generation, scratch)) queue.Enqueue(next, due + Gap());
            }
            Thread.Sleep(1);
        }
    }

    // ---- the server process ----

    private void StartServer()
    {
        // exec: the shell becomes the server, so this is its pid (signals, /proc).
        _process = Process.Start(new ProcessStartInfo("bash", ["-c", "exec " + options.ServerCommand]) { UseShellExecute = false })
                   ?? throw new InvalidOperationException("could not start the server");
        Console.WriteLine($"server started, pid {_process.Id}");
    }

    private void StopServer()
    {
        if (_process is not { HasExited: false } process) return;
        Signal(process.Id, 15);
        if (!process.WaitForExit(TimeSpan.FromSeconds(15)))
        {
            Console.Error.WriteLine($"server {process.Id} did not stop within 15 s of SIGTERM: SIGKILL");
            process.Kill();
        }
    }

    private double ServerCpu() => _process is { HasExited: false } p ? ServerProcess.Sample(p.Id).CpuSeconds : double.NaN;

    /// <summary>Waits until the port is in LISTEN (read from /proc/net/tcp, so no connection is made); returns when.</summary>
    private async Task<long> WaitListeningAsync(TimeSpan limit)
    {
        var needle = $":{options.Port:X4} ";
        var until = Now + Ticks(limit);
        while (Now < until)
        {
            if (_process is { HasExited: true } p) throw new InvalidOperationException($"the server exited with {p.ExitCode} before listening");
            foreach (var line in File.ReadLines("/proc/net/tcp"))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 3 && (fields[1] + " ").EndsWith(needle, StringComparison.Ordinal) && fields[3] == "0A") return Now;
            }
            await Task.Delay(2);
        }
        throw new TimeoutException($"the server was not listening on {options.Port} within {limit.TotalSeconds:F0} s");
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Signal(int pid, int signal);
}
