using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Supervisor.Http;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Supervisor.Tests.WebSockets;
using Xunit.Abstractions;

namespace Supervisor.Tests.Hardening.Fuzz;

/// <summary>
/// Grammar-generated hostile frame sequences (<see cref="FuzzScripts"/>) against the real service over TCP, TLS
/// and WebSocket at once. For every connection: the answers DESIGN §2 promises, exactly one close reason and the
/// right one, the error notice when that reason is announced, the socket released (no CLOSE-WAIT), the registry
/// row gone; and all along, a bystander per transport whose heartbeats keep being answered.
/// CI sends 2,000 frames per transport; <c>SUPERVISOR_FUZZ_FRAMES=100000</c> sends that many in all (a third per transport),
/// <c>SUPERVISOR_FUZZ_SEED</c> replays (or, <c>random</c>, varies) the run.
/// </summary>
public sealed partial class HostilePeerFuzzTests(ITestOutputHelper output) : IDisposable
{
    private const int MaxFrameLength = 1024;
    private const int MaxLinesPerConnection = 40;
    private const int ConnectionsInFlightPerTransport = 12;
    private static readonly TimeSpan HeartbeatTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan PerConnectionDeadline = TimeSpan.FromSeconds(15);

    private readonly TestCertificates _certificates = new();

    private enum Transport { Tcp, Tls, WebSocket }

    private sealed record Connection(Transport Transport, int Index, int Seed, long Order, int Lines, string Summary, string Shown, ExpectedOutcome Expected, Ending Ending, PeerRun Run)
    {
        public string Id { get; set; } = "";
        public string Name => $"{Transport} connection {Index} (case seed {Seed}) from {Run.Remote}";
        public bool ModelGuessedForACodecException => Expected.RejectionError?.StartsWith(FuzzScripts.CodecThrew, StringComparison.Ordinal) == true;
    }

    [Fact]
    public async Task Hostile_frame_sequences_over_tcp_tls_and_websocket_must_each_end_in_one_truthful_close_and_leave_nothing_behind()
    {
        var seed = FrameFuzzing.Seed(1204);
        // SUPERVISOR_FUZZ_FRAMES counts the frames of the whole run, shared by the three transports.
        var framesPerTransport = FrameFuzzing.Frames(6_000) / 3;
        await using var service = await TestService.StartAsync(
            $$"""
            supervisor.tcp.max-frame-length = {{MaxFrameLength}}B
            supervisor.heartbeat { interval = 2s, timeout = {{(int)HeartbeatTimeout.TotalSeconds}}s }
            supervisor.listeners.secure { host = "127.0.0.1", port = 0 }
            {{_certificates.Hocon("supervisor.listeners.secure.tls")}}
            """);
        var ports = new Dictionary<Transport, int>
        {
            [Transport.Tcp] = service.Port,
            [Transport.Tls] = service.PortOf("secure"),
            [Transport.WebSocket] = service.WebSocketPort,
        };
        var watch = Stopwatch.StartNew();

        await using var bystanders = await Bystanders.StartAsync(ports, _certificates);
        var connections = new ConcurrentBag<Connection>();
        var setupFailures = new ConcurrentBag<(Transport Transport, string Name, string? Remote, Exception Error)>();
        long order = 0;
        var sent = new ConcurrentDictionary<Transport, int>();

        async Task RunTransport(Transport transport)
        {
            var next = -1;
            var frames = 0;
            async Task Worker()
            {
                while (Volatile.Read(ref frames) < framesPerTransport)
                {
                    var index = Interlocked.Increment(ref next);
                    var caseSeed = FrameFuzzing.CaseSeed(seed + (int)transport * 7919, index);
                    try
                    {
                        var connection = await RunOneAsync(transport, ports[transport], index, caseSeed, () => Interlocked.Increment(ref order));
                        Interlocked.Add(ref frames, connection.Lines);
                        connections.Add(connection);
                    }
                    catch (Exception e)
                    {
                        // What the service logged about it is looked up after the run, once its log has caught up.
                        setupFailures.Add((transport, $"{transport} connection {index} (case seed {caseSeed})", (e as PeerFailedException)?.Remote, e));
                        Interlocked.Add(ref frames, 10);
                    }
                }
            }
            await Task.WhenAll(Enumerable.Range(0, ConnectionsInFlightPerTransport).Select(_ => Task.Run(Worker)));
            sent[transport] = frames;
        }

        await Task.WhenAll(Enum.GetValues<Transport>().Select(RunTransport));
        var runTime = watch.Elapsed;

        var failures = new Failures();
        var all = connections.OrderBy(c => c.Order).ToArray();
        foreach (var connection in all) CheckAnswers(connection, failures);
        await CheckCloseReasonsAsync(service, all, failures);
        // After the close reasons were awaited, so the service's lines about a failed peer are in its log.
        foreach (var (kind, name, remote, error) in setupFailures)
        {
            failures.Add("peer failed", $"{name}: {error}\n    the service logged: [{(remote is null ? "(peer address unknown)" : string.Join(" / ", ServiceLinesAbout(service, kind, remote)))}]");
        }
        await CheckRegistryAsync(service, all, failures);
        await CheckNoCloseWaitAsync(ports.Values.ToHashSet(), failures);
        var bystanderReport = await bystanders.StopAsync(failures);

        var reasons = all.GroupBy(c => c.Expected.AllowedReasons(c.Ending, c.Transport == Transport.WebSocket)[0])
            .Select(g => $"{g.Key.ToWireName()} {g.Count()}");
        output.WriteLine($"seed {seed}: {all.Length} connections, frames sent {string.Join(", ", sent.Select(kv => $"{kv.Key} {kv.Value}"))} in {runTime.TotalSeconds:F1} s (checks done at {watch.Elapsed.TotalSeconds:F1} s)");
        output.WriteLine($"expected reasons: {string.Join(", ", reasons)}; answers due (heartbeat responses and echoes) {all.Sum(c => c.Expected.Responses.Count)}, frames received {all.Sum(c => c.Run.Received.Count)}");
        output.WriteLine(bystanderReport);
        var known = all.Count(c => c.ModelGuessedForACodecException);
        if (known > 0) output.WriteLine($"{known} connections sent a line the codec throws on (see CodecFuzzTests); the model expects protocol-error for them");
        output.WriteLine(failures.Summary(examples: 3));
        Assert.True(failures.Count == 0,
            $"seed {seed} (SUPERVISOR_FUZZ_SEED={seed} replays it): {failures.Count} failures\n" + failures.Summary(examples: 1));
    }

    private async Task<Connection> RunOneAsync(Transport transport, int port, int index, int caseSeed, Func<long> order)
    {
        if (transport == Transport.WebSocket)
        {
            var script = FuzzScripts.WebSocket(caseSeed, MaxFrameLength, MaxLinesPerConnection);
            var expected = FuzzScripts.ModelMessages(script.Messages, MaxFrameLength);
            using var peer = await WsFuzzPeer.ConnectAsync(port);
            var at = order();
            PeerRun run;
            try { run = await peer.RunAsync(script, expected.Responses.Count, PerConnectionDeadline); }
            catch (Exception e) { throw new PeerFailedException(peer.Remote, "the peer's run", e); }
            var shown = string.Join(" | ", script.Messages.Select(m => FrameFuzzing.Escape(m.Bytes, 200) + (m.Finished ? "" : " (unfinished)")));
            return new Connection(transport, index, caseSeed, at, script.Messages.Count, script.Summary, shown, expected, script.Ending, run);
        }
        else
        {
            var script = FuzzScripts.Stream(caseSeed, MaxFrameLength, MaxLinesPerConnection, mayHold: true);
            var expected = FuzzScripts.ModelStream(script.Bytes, MaxFrameLength);
            using var peer = await StreamFuzzPeer.ConnectAsync(port, transport == Transport.Tls ? _certificates.Issued : null);
            var at = order();
            PeerRun run;
            try { run = await peer.RunAsync(script, expected.Responses.Count, PerConnectionDeadline); }
            catch (Exception e) { throw new PeerFailedException(peer.Remote, "the peer's run", e); }
            return new Connection(transport, index, caseSeed, at, script.Lines, script.Summary, FrameFuzzing.Escape(script.Bytes, 2000), expected, script.Ending, run);
        }
    }

    /// <summary>The answers (DESIGN §2), then the notice if the close is announced, then the end of input.</summary>
    private static void CheckAnswers(Connection c, Failures failures)
    {
        var reasons = c.Expected.AllowedReasons(c.Ending, c.Transport == Transport.WebSocket);
        var announced = reasons.Any(r => r.IsAnnouncedToPeer());
        var frames = new List<Frame>();
        foreach (var raw in c.Run.Received)
        {
            var decoded = JsonLinesCodec.Decode(raw.AsSpan().TrimEnd((byte)'\r'));
            if (decoded.Frame is null)
            {
                failures.Add("server sent no frame", $"{c.Name}: the server sent a line that is no frame: {FrameFuzzing.Escape(raw)}");
                return;
            }
            frames.Add(decoded.Frame with { Timestamp = 0 });
        }
        string Context() => $"\n    script: {c.Summary}\n    expected {string.Join("/", reasons.Select(r => r.ToWireName()))}"
            + $"{(c.Expected.RejectionError is { } e ? $" ({e})" : "")} after {c.Expected.Responses.Count} answers; got {frames.Count} frames, then {c.Run.Ending}"
            + $"\n    sent: {c.Shown}";

        if (c.Run.Ending.StartsWith("still open", StringComparison.Ordinal))
        {
            failures.Add("connection frozen", $"{c.Name}: the server never closed the connection within {PerConnectionDeadline.TotalSeconds:F0} s (frozen){Context()}");
            return;
        }
        var answers = frames.Take(c.Expected.Responses.Count).ToArray();
        // RFC 6455 §8.1: a text message that is not UTF-8 fails the WebSocket connection. The runtime sends close
        // 1007 and aborts the TCP connection at once, so answers still unread by the peer may be lost with it:
        // what did arrive must be the expected answers, in order; the close reason is checked above.
        var failedByWebSocketLayer = c.Transport == Transport.WebSocket && c.Expected.RejectionError == "invalid WebSocket input";
        for (var i = 0; i < c.Expected.Responses.Count; i++)
        {
            if (i >= answers.Length && failedByWebSocketLayer) return;
            if (i >= answers.Length)
            {
                failures.Add("answer missing", $"{c.Name}: answer {i} missing (expected {c.Expected.Responses[i]}){Context()}");
                return;
            }
            if (answers[i] != c.Expected.Responses[i])
            {
                failures.Add("wrong answer", $"{c.Name}: answer {i} is {answers[i]}, expected {c.Expected.Responses[i]}{Context()}");
                return;
            }
        }
        var after = frames.Skip(c.Expected.Responses.Count).ToArray();
        if (c.Ending == Ending.Reset || failedByWebSocketLayer && after.Length == 0) return;
        if (!announced)
        {
            if (after.Length > 0) failures.Add("frames after a close that is not announced", $"{c.Name}: {after.Length} unexpected frames after the answers, first {after[0]}{Context()}");
            return;
        }
        var notices = after.Where(f => f.Type == FrameType.ErrorNotice).ToArray();
        if (after.Length != 1 || notices.Length != 1)
        {
            // A WebSocket message that is not UTF-8 is refused by the WebSocket layer with close status 1007,
            // before any frame reaches the transport: that close frame is the notice there.
            var invalidPayloadClose = c.Transport == Transport.WebSocket && after.Length == 0 && c.Run.ServerCloseFrame
                && c.Run.Ending.StartsWith("close frame 1007", StringComparison.Ordinal);
            if (!invalidPayloadClose)
                failures.Add("no single error notice", $"{c.Name}: expected exactly one error notice after the answers, got [{string.Join(", ", after.Select(f => f.ToString()))}]{Context()}");
            return;
        }
        if (!reasons.Any(r => notices[0].Data?.StartsWith(r.ToWireName() + ": ", StringComparison.Ordinal) == true))
            failures.Add("notice names another reason", $"{c.Name}: the notice says \"{notices[0].Data}\"{Context()}");
        if (c.Transport != Transport.WebSocket && !c.Run.Ending.StartsWith("closed by the server", StringComparison.Ordinal))
            failures.Add("no FIN after the notice", $"{c.Name}: after its notice the connection ended with \"{c.Run.Ending}\", not the server's FIN{Context()}");
    }

    /// <summary>
    /// The transport of a listener, by its name. A client port is unique only per server port: the same one can be
    /// open to two listeners at once, so connections are told apart by listener and address together.
    /// </summary>
    private static Transport ListenerKind(string listener) => listener switch
    {
        "tcp" => Transport.Tcp,
        "secure" => Transport.Tls,
        _ => Transport.WebSocket,
    };

    private static Transport ProtocolKind(string protocol) => protocol switch
    {
        "tcp" => Transport.Tcp,
        "tls" => Transport.Tls,
        _ => Transport.WebSocket,
    };

    [GeneratedRegex(@"^Connection (\S+) opened from (\S+) on listener (\S+)$")]
    private static partial Regex OpenedLine();

    [GeneratedRegex(@"^Connection (\S+) closed: (\S+) \((.*)\); remote (\S+), open")]
    private static partial Regex ClosedLine();

    /// <summary>Each connection's close reasons from the service's own log: exactly one, and one the contract allows.</summary>
    private static async Task CheckCloseReasonsAsync(TestService service, IReadOnlyList<Connection> all, Failures failures)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            var opened = new Dictionary<string, Queue<string>>();
            var closes = new Dictionary<string, List<(string Reason, string Detail)>>();
            foreach (var line in service.Logs.Lines)
            {
                if (OpenedLine().Match(line.Message) is { Success: true } o)
                {
                    var key = $"{ListenerKind(o.Groups[3].Value)} {o.Groups[2].Value}";
                    if (!opened.TryGetValue(key, out var ids)) opened[key] = ids = new Queue<string>();
                    ids.Enqueue(o.Groups[1].Value);
                }
                else if (ClosedLine().Match(line.Message) is { Success: true } c)
                {
                    if (!closes.TryGetValue(c.Groups[1].Value, out var list)) closes[c.Groups[1].Value] = list = [];
                    list.Add((c.Groups[2].Value, c.Groups[3].Value));
                }
            }
            // A client port can be reused once its earlier connection is gone: the n-th open from an address is
            // the n-th connection this test made from it.
            var problems = new List<(string Kind, string Text)>();
            foreach (var c in all)
            {
                if (!opened.TryGetValue($"{c.Transport} {c.Run.Remote}", out var ids) || ids.Count == 0)
                {
                    problems.Add(("no open line", $"{c.Name}: no \"opened\" line in the log"));
                    continue;
                }
                c.Id = ids.Dequeue();
                var allowed = c.Expected.AllowedReasons(c.Ending, c.Transport == Transport.WebSocket);
                var got = closes.GetValueOrDefault(c.Id) ?? [];
                if (got.Count != 1)
                    problems.Add(($"{(got.Count == 0 ? "no" : "several")} close lines", $"{c.Name} ({c.Id}): {got.Count} close lines [{string.Join("; ", got.Select(g => $"{g.Reason} ({g.Detail})"))}]; expected one {string.Join("/", allowed.Select(r => r.ToWireName()))}\n    script: {c.Summary}\n    sent: {c.Shown}"));
                else if (!allowed.Any(r => r.ToWireName() == got[0].Reason))
                    problems.Add(($"closed as {got[0].Reason}, expected {string.Join("/", allowed.Select(r => r.ToWireName()))}", $"{c.Name} ({c.Id}): closed as {got[0].Reason} ({got[0].Detail}); expected {string.Join("/", allowed.Select(r => r.ToWireName()))}"
                        + $"{(c.Expected.RejectionError is { } e ? $" ({e})" : "")}{(c.ModelGuessedForACodecException ? " [the codec throws on this input: CodecFuzzTests]" : "")}\n    script: {c.Summary}\n    sent: {c.Shown}"));
            }
            if (problems.Count == 0 || DateTime.UtcNow > deadline)
            {
                foreach (var (kind, text) in problems) failures.Add(kind, text);
                return;
            }
            await Task.Delay(200);
        }
    }

    /// <summary>Every line the service logged about the connection(s) from <paramref name="remote"/> on that transport's listener.</summary>
    private static IEnumerable<string> ServiceLinesAbout(TestService service, Transport transport, string remote)
    {
        var messages = service.Logs.Lines.Select(l => l.Message).ToArray();
        var ids = messages.Select(m => OpenedLine().Match(m))
            .Where(o => o.Success && o.Groups[2].Value == remote && ListenerKind(o.Groups[3].Value) == transport)
            .Select(o => $"Connection {o.Groups[1].Value} ").ToArray();
        return messages.Where(m => m.Contains(remote, StringComparison.Ordinal) || ids.Any(id => m.StartsWith(id, StringComparison.Ordinal)));
    }

    private static async Task CheckRegistryAsync(TestService service, IReadOnlyList<Connection> all, Failures failures)
    {
        var remotes = all.Select(c => (c.Transport, c.Run.Remote)).ToHashSet();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            var left = (await service.ConnectionsAsync()).Items.Where(s => remotes.Contains((ProtocolKind(s.Protocol), s.Remote))).ToArray();
            if (left.Length == 0) return;
            if (DateTime.UtcNow > deadline)
            {
                foreach (var row in left.Take(20))
                {
                    var c = all.LastOrDefault(c => c.Transport == ProtocolKind(row.Protocol) && c.Run.Remote == row.Remote);
                    failures.Add("registry row left", $"registry row {row.Id} ({row.Protocol} from {row.Remote}) still {row.State} 15 s after its peer was done"
                        + (c is null ? "" : $": {c.Name}, {c.Run.Ending}\n    script: {c.Summary}\n    sent: {c.Shown}"));
                }
                return;
            }
            await Task.Delay(100);
        }
    }

    /// <summary>No socket of the service's listening ports in CLOSE-WAIT: every peer's FIN was answered by a close.</summary>
    private static async Task CheckNoCloseWaitAsync(IReadOnlySet<int> ports, Failures failures)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var closeWait = new List<string>();
            foreach (var path in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
            {
                if (!File.Exists(path)) continue;
                foreach (var line in File.ReadLines(path).Skip(1))
                {
                    // "  0: 0100007F:1F91 0100007F:D2A4 08 ..." local, remote, state
                    var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (fields.Length < 4 || fields[3] != ProcNet.CloseWait.ToString("X2", CultureInfo.InvariantCulture)) continue;
                    var local = int.Parse(fields[1][(fields[1].IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    var remote = int.Parse(fields[2][(fields[2].IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    if (ports.Contains(local)) closeWait.Add($"port {local} <- peer port {remote}");
                }
            }
            if (closeWait.Count == 0) return;
            if (DateTime.UtcNow > deadline)
            {
                failures.Add("CLOSE-WAIT", $"{closeWait.Count} sockets of the service in CLOSE-WAIT 10 s after their peers were done: {string.Join(", ", closeWait.Take(20))}");
                return;
            }
            await Task.Delay(100);
        }
    }

    /// <summary>One well-behaved peer per transport, heartbeating every 200 ms for the whole run.</summary>
    private sealed class Bystanders : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly List<(string Name, Task<(int Answered, double MaxMs, string? Failure)> Loop)> _loops = [];
        private readonly List<IDisposable> _owned = [];

        public static async Task<Bystanders> StartAsync(IReadOnlyDictionary<Transport, int> ports, TestCertificates certificates)
        {
            var b = new Bystanders();
            var tcp = await TestPeer.ConnectAsync(ports[Transport.Tcp]);
            b._owned.Add(tcp);
            b.Start("tcp", async seq =>
            {
                await tcp.SendHeartbeatAsync(seq);
                return (await tcp.ReceiveFrameAsync(TimeSpan.FromSeconds(10)))?.Seq;
            });

            var client = new TcpClient();
            await client.ConnectAsync(System.Net.IPAddress.Loopback, ports[Transport.Tls]);
            var issued = certificates.Issued;
            var tls = new SslStream(client.GetStream(), false, (_, presented, _, _) => presented?.GetCertHashString() == issued.GetCertHashString());
            await tls.AuthenticateAsClientAsync("localhost");
            var reader = new StreamReader(tls, Encoding.UTF8);
            b._owned.Add(tls);
            b._owned.Add(client);
            b.Start("tls", async seq =>
            {
                await tls.WriteAsync(JsonLinesCodec.Encode(new Frame(FrameType.Heartbeat, 1, null, seq)));
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                var line = await reader.ReadLineAsync(timeout.Token);
                return line is null ? null : JsonLinesCodec.Decode(Encoding.UTF8.GetBytes(line)).Frame?.Seq;
            });

            var ws = await WsPeer.ConnectAsync(ports[Transport.WebSocket]);
            b._owned.Add(ws);
            b.Start("ws", async seq =>
            {
                await ws.SendFrameAsync(new Frame(FrameType.Heartbeat, 1, null, seq));
                return (await ws.ReceiveFrameAsync(TimeSpan.FromSeconds(10)))?.Seq;
            });
            return b;
        }

        private void Start(string name, Func<long, Task<long?>> heartbeat)
        {
            var stop = _stop.Token;
            _loops.Add((name, Task.Run(async () =>
            {
                var answered = 0;
                var max = 0.0;
                for (long seq = 1; !stop.IsCancellationRequested; seq++)
                {
                    var watch = Stopwatch.StartNew();
                    try
                    {
                        var echoed = await heartbeat(seq);
                        if (echoed != seq) return (answered, max, $"heartbeat {seq} answered with seq {echoed?.ToString() ?? "none (closed)"}");
                    }
                    catch (Exception e)
                    {
                        return (answered, max, $"heartbeat {seq}: {e.GetType().Name}: {e.Message}");
                    }
                    answered++;
                    max = Math.Max(max, watch.Elapsed.TotalMilliseconds);
                    try { await Task.Delay(200, stop); } catch (OperationCanceledException) { }
                }
                return (answered, max, (string?)null);
            })));
        }

        public async Task<string> StopAsync(Failures failures)
        {
            _stop.Cancel();
            var report = new List<string>();
            foreach (var (name, loop) in _loops)
            {
                var (answered, max, failure) = await loop;
                report.Add($"{name} {answered} answered, slowest {max:F0} ms");
                if (failure is not null) failures.Add("bystander not answered", $"bystander {name}: {failure} (after {answered} answered)");
            }
            return "bystanders: " + string.Join("; ", report);
        }

        public async ValueTask DisposeAsync()
        {
            if (!_stop.IsCancellationRequested) await StopAsync(new Failures());
            foreach (var owned in _owned) owned.Dispose();
            _stop.Dispose();
        }
    }

    /// <summary>Failures by kind, so that one bug hit by a thousand connections reads as one line with a count and examples.</summary>
    private sealed class Failures
    {
        private readonly List<(string Kind, string Text)> _all = [];

        public int Count => _all.Count;

        public void Add(string kind, string text) => _all.Add((kind, text));

        public string Summary(int examples) => string.Join("\n", _all.GroupBy(f => f.Kind).OrderByDescending(g => g.Count()).Select(g =>
            $"{g.Count()} x {g.Key} ({ByTransport(g)}):\n  " + string.Join("\n  ", g.Take(examples).Select(f => f.Text.Length > 3000 ? f.Text[..3000] + " ..." : f.Text))));

        private static string ByTransport(IEnumerable<(string Kind, string Text)> failures) =>
            string.Join(", ", failures.GroupBy(f => Enum.GetValues<Transport>().Select(t => t.ToString()).FirstOrDefault(t => f.Text.StartsWith(t + " ", StringComparison.Ordinal)) ?? "service")
                .Select(g => $"{g.Key} {g.Count()}"));
    }

    public void Dispose() => _certificates.Dispose();
}
