using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace LoadGen;

/// <summary>
/// Phases, in order: warm-up (open, heartbeat, close a few connections) → empty-process sample → ramp
/// (N connections, each answered once) → settle → steady window (heartbeats only) → echo window
/// (heartbeats plus data) → silent phase (a fraction stops sending; their error notices are timed)
/// → every socket closed. Each phase is bounded in time.
/// </summary>
internal sealed class Generator(Options options)
{
    private enum Phase { Ramp, Steady, Between, Echo, Silent, Done }

    private const int SolIp = 0;
    private const int IpBindAddressNoPort = 24;

    private static readonly long Frequency = Stopwatch.Frequency;
    private readonly Peer?[] _peers = new Peer?[options.Connections];
    private readonly ConcurrentQueue<Peer> _newPeers = new();
    private readonly SemaphoreSlim _window = new(options.ConnectConcurrency, options.ConnectConcurrency);
    private readonly IPEndPoint _server = new(options.Host, options.Port);
    private readonly Samples _rtt = new((int)Math.Min(8_000_000, options.Connections * (options.Steady.TotalSeconds / (options.Interval.TotalSeconds * (1 - options.Jitter)) + 4)));
    private readonly Samples _echoRtt = new((int)Math.Min(4_000_000, options.DataRate * options.Echo.TotalSeconds * 1.5 + 16));
    private readonly Samples _silentLateness = new(Math.Max(16, options.Connections));
    private readonly Samples _sendLateness = new((int)Math.Min(8_000_000, options.Connections * (options.Steady.TotalSeconds / (options.Interval.TotalSeconds * (1 - options.Jitter)) + 4)));
    private volatile Phase _phase = Phase.Ramp;
    private volatile bool _stopSending;
    private long _answeredFirst, _lastFirstAnswerAt, _connectFailed, _dropped, _steadyResponses, _steadySent;
    private long _echoFrames, _echoBytes, _echoSent;
    private long _steadySenderWakeups; // sleeps the sender woke from in the steady window (sender thread only)
    private string? _firstError;

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Frequency);

    public async Task<int> RunAsync()
    {
        var o = options;
        var results = new Dictionary<string, string>();
        void Put(string key, double value, string format = "F2") => results[key] = value.ToString(format, CultureInfo.InvariantCulture);
        Console.WriteLine($"== {o.Label}: {o.Connections} connections over {o.SourceAddresses} source addresses to {_server}, interval {o.Interval.TotalSeconds}s jitter {o.Jitter}, steady {o.Steady.TotalSeconds}s");

        try
        {
            await WarmupAsync();
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or InvalidOperationException)
        {
            Console.Error.WriteLine($"loadgen: warm-up against {_server} failed: {e.Message}");
            return 1;
        }
        await Task.Delay(TimeSpan.FromSeconds(3));
        var empty = Sample();
        Report("empty process (after warm-up)", empty);

        var sender = new Thread(o.Arrivals == Arrivals.Spread ? SendLoopSpread : SendLoopBurst) { IsBackground = true, Name = "sender" };
        sender.Start();

        // Ramp: at most ConnectConcurrency connections connected but not yet answered.
        var beforeRamp = Sample();
        var rampStart = Stopwatch.GetTimestamp();
        var rampDeadline = rampStart + Ticks(o.RampLimit);
        for (var i = 0; i < o.Connections; i++)
        {
            var remaining = TimeSpan.FromSeconds(Math.Max(0, (rampDeadline - Stopwatch.GetTimestamp()) / (double)Frequency));
            if (!await _window.WaitAsync(remaining)) break;
            _ = ConnectAsync(i);
        }
        while (Interlocked.Read(ref _answeredFirst) + Interlocked.Read(ref _connectFailed) < o.Connections && Stopwatch.GetTimestamp() < rampDeadline)
            await Task.Delay(20);
        var answered = Interlocked.Read(ref _answeredFirst);
        var rampSeconds = (Interlocked.Read(ref _lastFirstAnswerAt) - rampStart) / (double)Frequency;
        var afterRamp = Sample();
        Console.WriteLine($"ramp: {answered}/{o.Connections} answered in {rampSeconds:F2} s = {answered / rampSeconds:F0} accepted connections/s; connect failures {_connectFailed}{(_firstError is null ? "" : $" (first: {_firstError})")}");
        Report("after ramp", afterRamp);
        Put("connections", answered, "F0");
        Put("accepts_per_s", answered / rampSeconds, "F0");
        Put("connect_failed", Interlocked.Read(ref _connectFailed), "F0");
        if (afterRamp.TakenAtTicks != 0 && answered > 0)
            Put("cpu_per_accept_us", (afterRamp.CpuSeconds - beforeRamp.CpuSeconds) / answered * 1e6, "F1");

        await Task.Delay(o.Settle);

        // Steady window: heartbeats only.
        var droppedBefore = Interlocked.Read(ref _dropped);
        if (o.SignalWindow) ServerProcess.SignalUsr1(o.ServerPid);
        var generatorAtStart = ServerProcess.Sample(Environment.ProcessId);
        var steadyStart = Sample();
        var steadyStartTicks = Stopwatch.GetTimestamp();
        _phase = Phase.Steady;
        long peakRss = steadyStart.RssKiB;
        var steadyEndAt = steadyStartTicks + Ticks(o.Steady);
        while (Stopwatch.GetTimestamp() < steadyEndAt)
        {
            await Task.Delay(TimeSpan.FromSeconds(Math.Min(5, Math.Max(0.01, (steadyEndAt - Stopwatch.GetTimestamp()) / (double)Frequency))));
            peakRss = Math.Max(peakRss, Sample().RssKiB);
        }
        _phase = Phase.Between;
        var steadySeconds = (Stopwatch.GetTimestamp() - steadyStartTicks) / (double)Frequency;
        var steadyEnd = Sample();
        var generatorAtEnd = ServerProcess.Sample(Environment.ProcessId);
        if (o.SignalWindow) ServerProcess.SignalUsr1(o.ServerPid);
        var held = _peers.Count(p => p is { Closed: false });
        var droppedInSteady = Interlocked.Read(ref _dropped) - droppedBefore;
        var responses = Interlocked.Read(ref _steadyResponses);
        var rtt = _rtt.QuantilesMs(0.5, 0.99, 0.999, 1.0);
        Console.WriteLine($"steady: {held} connections held at the end, {droppedInSteady} dropped during the window; {Interlocked.Read(ref _steadySent) / steadySeconds:F0} heartbeats/s sent, {responses / steadySeconds:F0} responses/s");
        Console.WriteLine($"heartbeat RTT: p50 {rtt[0]:F3} ms, p99 {rtt[1]:F3} ms, p99.9 {rtt[2]:F3} ms, max {rtt[3]:F3} ms (n={_rtt.Count}, dropped {_rtt.Dropped})");
        Report("end of steady window", steadyEnd);
        Put("held", held, "F0");
        Put("dropped", droppedInSteady, "F0");
        Put("heartbeats_per_s", responses / steadySeconds, "F0");
        Put("rtt_p50_ms", rtt[0], "F3");
        Put("rtt_p99_ms", rtt[1], "F3");
        Put("rtt_max_ms", rtt[3], "F3");
        results["arrivals"] = o.Arrivals.ToString().ToLowerInvariant();
        var sendLate = _sendLateness.QuantilesMs(0.5, 0.99);
        Put("send_late_p50_ms", sendLate[0], "F3");
        Put("send_late_p99_ms", sendLate[1], "F3");
        var senderWakeups = Interlocked.Read(ref _steadySenderWakeups);
        Put("sender_frames_per_wakeup", senderWakeups > 0 ? Interlocked.Read(ref _steadySent) / (double)senderWakeups : double.NaN, "F2");
        Console.WriteLine($"sender ({results["arrivals"]}): send − due time p50 {sendLate[0]:F3} ms, p99 {sendLate[1]:F3} ms; " +
                          $"{Interlocked.Read(ref _steadySent) / (double)Math.Max(1, senderWakeups):F2} frames sent per sender wake-up");
        if (steadyEnd.TakenAtTicks != 0)
        {
            var cpu = steadyEnd.CpuSeconds - steadyStart.CpuSeconds;
            Put("cpu_s_steady", cpu, "F2");
            Put("cpu_percent_steady", cpu / steadySeconds * 100, "F1");
            Put("cpu_per_heartbeat_us", responses > 0 ? cpu / responses * 1e6 : double.NaN, "F2");
            Put("rss_empty_kib", empty.RssKiB, "F0");
            Put("rss_steady_kib", steadyEnd.RssKiB, "F0");
            Put("rss_peak_kib", peakRss, "F0");
            Put("rss_per_conn_b", held > 0 ? (steadyEnd.RssKiB - empty.RssKiB) * 1024.0 / held : double.NaN, "F0");
            Put("open_files", steadyEnd.OpenFiles, "F0");
            Put("threads", steadyEnd.Threads, "F0");
            // Frames reaching the server per wake-up of one of its threads (voluntary context switches: a thread blocked and was woken).
            var sent = Interlocked.Read(ref _steadySent);
            var serverThreads = steadyEnd.GrowthSince(steadyStart);
            var wakeups = serverThreads.VoluntarySwitches;
            Put("server_wakeups_per_s", wakeups / steadySeconds, "F0");
            Put("server_preemptions_per_s", serverThreads.InvoluntarySwitches / steadySeconds, "F0");
            Put("frames_per_wakeup", wakeups > 0 ? sent / (double)wakeups : double.NaN, "F2");
            // How long the threads of each process were ready but waited for a core: the machine's share of the figures.
            Put("server_runqueue_wait_ms_per_s", serverThreads.RunQueueWaitNs / 1e6 / steadySeconds, "F1");
            Put("loadgen_runqueue_wait_ms_per_s", generatorAtEnd.GrowthSince(generatorAtStart).RunQueueWaitNs / 1e6 / steadySeconds, "F1");
            Put("loadgen_cpu_percent_steady", (generatorAtEnd.CpuSeconds - generatorAtStart.CpuSeconds) / steadySeconds * 100, "F1");
            Console.WriteLine($"run-queue wait (ready, no core free): server {results["server_runqueue_wait_ms_per_s"]} ms/s, generator {results["loadgen_runqueue_wait_ms_per_s"]} ms/s; generator CPU {results["loadgen_cpu_percent_steady"]} % of one core");
            Console.WriteLine($"server wake-ups (voluntary context switches, all threads): {wakeups / steadySeconds:F0}/s for {sent / steadySeconds:F0} frames/s sent = {sent / (double)Math.Max(1, wakeups):F2} frames per wake-up");
            Console.WriteLine($"server CPU in the steady window: {cpu:F2} s = {cpu / steadySeconds * 100:F1} % of one core, {cpu / Math.Max(1, responses) * 1e6:F2} µs per heartbeat round trip");
            Console.WriteLine($"server RSS: empty {empty.RssKiB} KiB, steady {steadyEnd.RssKiB} KiB, peak {peakRss} KiB → {(steadyEnd.RssKiB - empty.RssKiB) * 1024.0 / Math.Max(1, held):F0} B per connection");
        }

        // Echo window: data frames on top of the heartbeats.
        if (o.Echo > TimeSpan.Zero && o.DataRate > 0)
        {
            var echoStart = Stopwatch.GetTimestamp();
            _phase = Phase.Echo;
            await Task.Delay(o.Echo);
            _phase = Phase.Between;
            var echoSeconds = (Stopwatch.GetTimestamp() - echoStart) / (double)Frequency;
            var echoRtt = _echoRtt.QuantilesMs(0.5, 0.99);
            var frames = Interlocked.Read(ref _echoFrames);
            Console.WriteLine($"echo: {Interlocked.Read(ref _echoSent) / echoSeconds:F0} data frames/s sent ({o.DataSize} B data), {frames / echoSeconds:F0} echoed frames/s, {Interlocked.Read(ref _echoBytes) / echoSeconds / 1e6:F2} MB/s echoed; echo RTT p50 {echoRtt[0]:F3} ms, p99 {echoRtt[1]:F3} ms");
            Put("echo_frames_per_s", frames / echoSeconds, "F0");
            Put("echo_mb_per_s", Interlocked.Read(ref _echoBytes) / echoSeconds / 1e6, "F3");
            Put("echo_rtt_p99_ms", echoRtt[1], "F3");
        }

        // Silent phase: a fraction of the peers stops sending; the server must close each at timeout.
        if (o.SilentFraction > 0)
        {
            var open = _peers.Where(p => p is { Closed: false }).Select(p => p!).ToArray();
            var count = (int)Math.Round(open.Length * o.SilentFraction);
            var stride = Math.Max(1, open.Length / Math.Max(1, count));
            var silent = Enumerable.Range(0, count).Select(k => open[k * stride % open.Length]).Distinct().ToArray();
            foreach (var p in silent) p.Silent = true;
            _phase = Phase.Silent;
            // The source document's server checks each connection once per interval, so it closes up to an interval late.
            var waitUntil = Stopwatch.GetTimestamp() + Ticks(o.Timeout + TimeSpan.FromSeconds(4) + (o.Protocol == Protocol.SourceDoc ? o.Interval : TimeSpan.Zero));
            while (silent.Any(p => !p.Closed) && Stopwatch.GetTimestamp() < waitUntil)
                await Task.Delay(100);
            var timeoutTicks = Ticks(o.Timeout);
            var closedWithNotice = 0;
            var reasons = new Dictionary<string, int>();
            foreach (var p in silent)
            {
                if (o.Protocol == Protocol.SourceDoc)
                {
                    // No notice: the server's close is the EOF (or reset) read, timed from the last heartbeat,
                    // the only frame that resets the document's timeout (a data frame does not).
                    if (!p.Closed) continue;
                    closedWithNotice++;
                    reasons["eof"] = reasons.GetValueOrDefault("eof") + 1;
                    _silentLateness.Add(Volatile.Read(ref p.ClosedAt) - Volatile.Read(ref p.HeartbeatSentAt) - timeoutTicks);
                    continue;
                }
                if (p.NoticeAt == 0) continue;
                closedWithNotice++;
                reasons[p.NoticeReason ?? "?"] = reasons.GetValueOrDefault(p.NoticeReason ?? "?") + 1;
                _silentLateness.Add(p.NoticeAt - Volatile.Read(ref p.LastSentAt) - timeoutTicks);
            }
            var late = _silentLateness.QuantilesMs(0.0, 0.5, 0.99, 1.0);
            var closedBy = o.Protocol == Protocol.SourceDoc ? "were closed (EOF read, no notice)" : "got an error notice";
            var from = o.Protocol == Protocol.SourceDoc ? "close read − last heartbeat sent − timeout" : "notice arrival − last frame sent − timeout";
            Console.WriteLine($"silent: {silent.Length} peers went silent; {closedWithNotice} {closedBy} ({string.Join(", ", reasons.Select(r => $"{r.Key} {r.Value}"))}); " +
                              $"{from}: min {late[0]:F1} ms, p50 {late[1]:F1} ms, p99 {late[2]:F1} ms, max {late[3]:F1} ms");
            Put("silent", silent.Length, "F0");
            Put("silent_closed", closedWithNotice, "F0");
            Put("close_late_p50_ms", late[1], "F1");
            Put("close_late_p99_ms", late[2], "F1");
            Put("close_late_max_ms", late[3], "F1");
        }

        _phase = Phase.Done;
        _stopSending = true;
        sender.Join(TimeSpan.FromSeconds(5));
        foreach (var p in _peers)
            p?.Socket.Dispose();
        if (o.Protocol == Protocol.SourceDoc)
        {
            results["protocol"] = "source-doc";
            results["close_timed_by"] = "eof";
        }
        Console.WriteLine($"RESULT label={o.Label} " + string.Join(' ', results.Select(r => $"{r.Key}={r.Value}")));
        return 0;
    }

    private ProcSample Sample() =>
        options.ServerPid > 0 && ServerProcess.IsAlive(options.ServerPid) ? ServerProcess.Sample(options.ServerPid) : default;

    private static void Report(string what, ProcSample s)
    {
        if (s.TakenAtTicks == 0) return;
        Console.WriteLine($"server {what}: RSS {s.RssKiB} KiB, CPU {s.CpuSeconds:F2} s, open files {s.OpenFiles}, threads {s.Threads}");
    }

    /// <summary>JIT-compiles the server's connection paths before its empty-process sample.</summary>
    private async Task WarmupAsync()
    {
        var buffer = new byte[512];
        for (var i = 0; i < options.WarmupConnections; i++)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await socket.ConnectAsync(_server, cts.Token);
            for (var seq = 1; seq <= 3; seq++)
            {
                var line = new byte[96];
                var n = HeartbeatFrame(line, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), seq);
                await socket.SendAsync(line.AsMemory(0, n), SocketFlags.None, cts.Token);
                var filled = 0;
                while (Array.IndexOf(buffer, (byte)'\n', 0, filled) < 0)
                {
                    var read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cts.Token);
                    if (read == 0) throw new InvalidOperationException("server closed a warm-up connection");
                    filled += read;
                }
            }
            socket.Shutdown(SocketShutdown.Both);
        }
    }

    /// <summary>Our heartbeat with its seq, or the source document's (no seq: its server echoes nothing).</summary>
    private int HeartbeatFrame(Span<byte> into, long timestamp, long seq) =>
        options.Protocol == Protocol.SourceDoc ? Wire.SourceDocHeartbeat(into, timestamp) : Wire.Heartbeat(into, timestamp, seq);

    private long Gap() => (long)(Ticks(options.Interval) * (1 - Random.Shared.NextDouble() * options.Jitter));

    private async Task ConnectAsync(int index)
    {
        var source = new IPAddress([127, 0, 0, (byte)(1 + index % options.SourceAddresses)]);
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // The port is picked at connect time, per destination, so K source addresses give K × ~28k ports.
            socket.SetRawSocketOption(SolIp, IpBindAddressNoPort, BitConverter.GetBytes(1));
            socket.Bind(new IPEndPoint(source, 0));
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await socket.ConnectAsync(_server, cts.Token).ConfigureAwait(false);
            socket.NoDelay = true;
            socket.Blocking = false;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            Interlocked.Increment(ref _connectFailed);
            Interlocked.CompareExchange(ref _firstError, $"{source}: {e.GetType().Name} {e.Message}", null);
            _window.Release();
            return;
        }
        var peer = new Peer(index, socket);
        _peers[index] = peer;
        _ = ReceiveLoopAsync(peer);
        var now = Stopwatch.GetTimestamp();
        SendHeartbeat(peer, new byte[96], now);
        peer.NextDue = now + Gap();
        _newPeers.Enqueue(peer);
    }

    private void ReleaseWindow(Peer peer)
    {
        if (Interlocked.Exchange(ref peer.WindowReleased, 1) == 0) _window.Release();
    }

    private async Task ReceiveLoopAsync(Peer peer)
    {
        var buffer = new byte[Math.Max(1024, options.DataSize * 2 + 256)];
        var filled = 0;
        try
        {
            while (true)
            {
                var read = await peer.Socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None).ConfigureAwait(false);
                if (read == 0) break;
                filled = Consume(peer, buffer, filled + read, Stopwatch.GetTimestamp());
                if (filled == buffer.Length) break; // a line longer than any frame this generator causes
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Reset by the server, or disposed by us at the end.
        }
        peer.ClosedAt = Stopwatch.GetTimestamp();
        peer.Closed = true;
        ReleaseWindow(peer);
        if (_phase is not Phase.Done && !peer.Silent)
        {
            Interlocked.Increment(ref _dropped);
            if (peer.FirstAnsweredAt == 0) Interlocked.Increment(ref _connectFailed);
            Interlocked.CompareExchange(ref _firstError, $"peer {peer.Index} closed: {peer.NoticeReason ?? "no notice"}", null);
        }
    }

    /// <summary>Handles every complete line in buffer[0..filled); returns the bytes left over (moved to the front).</summary>
    private int Consume(Peer peer, byte[] buffer, int filled, long now)
    {
        var consumed = 0;
        while (true)
        {
            var newline = buffer.AsSpan(consumed, filled - consumed).IndexOf((byte)'\n');
            if (newline < 0) break;
            OnLine(peer, buffer.AsSpan(consumed, newline), now);
            consumed += newline + 1;
        }
        if (consumed == 0) return filled;
        buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
        return filled - consumed;
    }

    private void OnLine(Peer peer, ReadOnlySpan<byte> line, long now)
    {
        switch (Wire.Type(line))
        {
            case Wire.TypeHeartbeatResponse:
                // The source document's server echoes no seq but answers a connection's heartbeats in order
                // (one goroutine reads a frame, answers it, reads the next), so its k-th answer is heartbeat k's.
                var seq = options.Protocol == Protocol.SourceDoc ? ++peer.Answered : Wire.Seq(line);
                if (seq == 1 && peer.FirstAnsweredAt == 0)
                {
                    peer.FirstAnsweredAt = now;
                    Interlocked.Increment(ref _answeredFirst);
                    InterlockedMax(ref _lastFirstAnswerAt, now);
                    ReleaseWindow(peer);
                }
                if (_phase == Phase.Steady)
                {
                    Interlocked.Increment(ref _steadyResponses);
                    if (seq == Volatile.Read(ref peer.HeartbeatSeq))
                        _rtt.Add(now - Volatile.Read(ref peer.HeartbeatSentAt));
                }
                break;
            case Wire.TypeData:
                if (_phase == Phase.Echo)
                {
                    Interlocked.Increment(ref _echoFrames);
                    Interlocked.Add(ref _echoBytes, line.Length + 1);
                    if (Wire.Seq(line) == Volatile.Read(ref peer.DataSeq))
                        _echoRtt.Add(now - Volatile.Read(ref peer.DataSentAt));
                }
                break;
            case Wire.TypeErrorNotice:
                peer.NoticeReason = Wire.NoticeReason(line);
                peer.NoticeAt = now;
                break;
        }
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

    private void SendHeartbeat(Peer peer, byte[] scratch, long now, long due)
    {
        if (_phase == Phase.Steady) _sendLateness.Add(now - due);
        SendHeartbeat(peer, scratch, now);
    }

    private void SendHeartbeat(Peer peer, byte[] scratch, long now)
    {
        var seq = peer.HeartbeatSeq + 1;
        var n = HeartbeatFrame(scratch, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), seq);
        Volatile.Write(ref peer.HeartbeatSentAt, now);
        Volatile.Write(ref peer.HeartbeatSeq, seq);
        Volatile.Write(ref peer.LastSentAt, now);
        peer.Socket.Send(scratch, 0, n, SocketFlags.None, out _);
        if (_phase == Phase.Steady) Interlocked.Increment(ref _steadySent);
    }

    /// <summary>One data frame to the next open, non-silent peer after <paramref name="cursor"/> (round robin).</summary>
    private void SendDataToNextPeer(byte[] scratch, ref int cursor, long now)
    {
        for (var tries = 0; tries < _peers.Length; tries++)
        {
            var candidate = _peers[cursor++ % _peers.Length];
            if (candidate is { Closed: false, Silent: false })
            {
                SendData(candidate, scratch, now);
                return;
            }
        }
    }

    private void SendData(Peer peer, byte[] scratch, long now)
    {
        var seq = peer.DataSeq + 1;
        var n = options.Protocol == Protocol.SourceDoc
            ? Wire.SourceDocData(scratch, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), options.DataSize)
            : Wire.Data(scratch, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), seq, options.DataSize);
        Volatile.Write(ref peer.DataSentAt, now);
        Volatile.Write(ref peer.DataSeq, seq);
        Volatile.Write(ref peer.LastSentAt, now);
        peer.Socket.Send(scratch, 0, n, SocketFlags.None, out _);
        Interlocked.Increment(ref _echoSent);
    }

    /// <summary>
    /// One thread sends every heartbeat and data frame at its due time (a priority queue by due time);
    /// RTT is measured from the actual send, so a late send does not count against the server.
    /// </summary>
    private void SendLoopBurst()
    {
        var queue = new PriorityQueue<Peer, long>(options.Connections);
        var scratch = new byte[options.DataSize + 256];
        var dataPeriod = options.DataRate > 0 ? (long)(Frequency / options.DataRate) : 0;
        long nextData = 0;
        var cursor = 0;
        var interval = Ticks(options.Interval);
        while (!_stopSending)
        {
            while (_newPeers.TryDequeue(out var fresh)) queue.Enqueue(fresh, fresh.NextDue);
            var now = Stopwatch.GetTimestamp();
            var burst = 0;
            while (queue.TryPeek(out var peer, out var due) && due <= now && !_stopSending)
            {
                queue.Dequeue();
                if (peer.Closed || peer.Silent) continue; // a silent peer never sends again
                SendHeartbeat(peer, scratch, now, due);
                var next = due + Gap();
                queue.Enqueue(peer, next < now - interval ? now + Gap() : next);
                if (++burst % 128 == 0) now = Stopwatch.GetTimestamp();
            }
            if (_phase == Phase.Echo && dataPeriod > 0)
            {
                if (nextData == 0) nextData = now;
                while (nextData <= now)
                {
                    SendDataToNextPeer(scratch, ref cursor, now);
                    nextData += dataPeriod;
                }
            }
            else nextData = 0;
            var wake = queue.TryPeek(out _, out var nextDue) ? nextDue : now + Frequency / 100;
            if (nextData != 0) wake = Math.Min(wake, nextData);
            if (wake > Stopwatch.GetTimestamp())
            {
                Thread.Sleep(1);
                if (_phase == Phase.Steady) Interlocked.Increment(ref _steadySenderWakeups);
            }
        }
    }

    /// <summary>
    /// The spread sender: the same due times as <see cref="SendLoopBurst"/> (each peer's gaps are
    /// interval × (1 − U(0, jitter)), so 19,000 peers make a stream of independent arrivals), but it
    /// sleeps to each due time with microsecond precision and sends one frame per wake-up, so the
    /// server sees them one by one as it sees independent clients. When it falls behind, the frames
    /// already due go out back to back (their lateness is reported as send_late_*).
    /// </summary>
    private void SendLoopSpread()
    {
        Pacing.TightenTimerSlack();
        var queue = new PriorityQueue<Peer, long>(options.Connections);
        var scratch = new byte[options.DataSize + 256];
        var dataPeriod = options.DataRate > 0 ? (long)(Frequency / options.DataRate) : 0;
        long nextData = 0;
        var cursor = 0;
        var interval = Ticks(options.Interval);
        var idle = Frequency / 100;
        while (!_stopSending)
        {
            while (_newPeers.TryDequeue(out var fresh)) queue.Enqueue(fresh, fresh.NextDue);
            var now = Stopwatch.GetTimestamp();
            var echo = _phase == Phase.Echo && dataPeriod > 0;
            if (!echo) nextData = 0;
            else if (nextData == 0) nextData = now;
            var heartbeatDue = queue.TryPeek(out var peer, out var due) ? due : long.MaxValue;
            if (echo && nextData <= now && nextData <= heartbeatDue)
            {
                SendDataToNextPeer(scratch, ref cursor, now);
                nextData += dataPeriod;
                continue;
            }
            if (heartbeatDue <= now)
            {
                queue.Dequeue();
                if (peer!.Closed || peer.Silent) continue; // a silent peer never sends again
                SendHeartbeat(peer, scratch, now, due);
                var next = due + Gap();
                queue.Enqueue(peer, next < now - interval ? now + Gap() : next);
                continue;
            }
            var wake = Math.Min(heartbeatDue, now + idle);
            if (echo) wake = Math.Min(wake, nextData);
            Pacing.Sleep(wake - now);
            if (_phase == Phase.Steady) Interlocked.Increment(ref _steadySenderWakeups);
        }
    }
}
