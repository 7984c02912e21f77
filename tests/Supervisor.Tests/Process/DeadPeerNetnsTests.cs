using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Supervisor.Tests.Processes;

/// <summary>
/// A peer that vanishes without a FIN or an RST (its link goes down, or it is frozen) must still be
/// found: by the application heartbeat, or, with heartbeats off, by the kernel's TCP keep-alive.
/// The peer is a python3 process; the link is a veth pair between two network namespaces (root only).
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed partial class DeadPeerNetnsTests(ITestOutputHelper output)
{
    /// <summary>
    /// python3 -c PEER HOST PORT EVERY: connects, sends a heartbeat every EVERY seconds (just one if
    /// EVERY is 0), prints each line it receives, and otherwise keeps its socket open.
    /// </summary>
    private const string PeerScript = """
        import socket, sys, threading, time
        host, port, every = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
        s = socket.create_connection((host, port), timeout=5)
        s.settimeout(None)
        print("connected", s.getsockname(), flush=True)
        def read():
            buf = b""
            while True:
                try:
                    data = s.recv(4096)
                except OSError as e:
                    print("error", e, flush=True)
                    return
                if not data:
                    print("eof", flush=True)
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    print("recv " + line.decode("utf-8", "replace"), flush=True)
        threading.Thread(target=read, daemon=True).start()
        seq = 0
        while True:
            seq += 1
            try:
                s.sendall(('{"type":0,"timestamp":%d,"seq":%d}\n' % (int(time.time()), seq)).encode())
            except OSError as e:
                print("send error", e, flush=True)
                break
            if every <= 0:
                break
            time.sleep(every)
        time.sleep(3600)
        """;

    private ChildProcess StartPeer(string host, int port, double every, string? netns) =>
        new("peer", Tools.Python3!, ["-u", "-c", PeerScript, host, port.ToString(CultureInfo.InvariantCulture), every.ToString(CultureInfo.InvariantCulture)],
            netns, output: output);

    private static Task<OutputLine> FirstResponse(ChildProcess peer) =>
        peer.WaitForLineAsync(l => l.StartsWith("recv {\"type\":1", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "a heartbeat response");

    private static Task<OutputLine> ClosedLine(ServiceProcess service, TimeSpan timeout) =>
        service.WaitForLineAsync(l => l.Contains("Connection c1 closed:", StringComparison.Ordinal), timeout, "'Connection c1 closed: ...'");

    // The close is decided at `timeout` after the last frame (the detail says how long the peer was
    // silent) and the "closed" line is logged at that decision; the socket itself is released up to
    // close-linger later, when a peer behind a dead link never answers the FIN.
    [GeneratedRegex(@"closed: heartbeat-timeout \(no valid frame for (?<ms>\d+) ms(?:; cause [a-z-]+: |\))")]
    private static partial Regex HeartbeatTimeoutDetail();

    /// <summary>How long the peer had been silent when the close was decided, from the close line's detail.</summary>
    private int SilentMs(ServiceProcess service, OutputLine closed)
    {
        if (!closed.Text.Contains("closed: heartbeat-timeout", StringComparison.Ordinal))
            throw service.Failure($"closed for another reason than heartbeat-timeout: {closed.Text}");
        var m = HeartbeatTimeoutDetail().Match(closed.Text);
        if (!m.Success) throw service.Failure($"the close line does not say 'no valid frame for N ms': {closed.Text}");
        var silent = int.Parse(m.Groups["ms"].Value, CultureInfo.InvariantCulture);
        output.WriteLine($"detail: no valid frame for {silent} ms (timeout 600 ms)");
        return silent;
    }

    private void AssertStillOpen(ServiceProcess service, ChildProcess peer, string when)
    {
        if (service.HasLine(l => l.Contains(" closed:", StringComparison.Ordinal)))
            throw service.Failure($"the connection was closed {when}, while the peer was alive");
        if (peer.HasLine(l => l.StartsWith("eof", StringComparison.Ordinal) || l.StartsWith("error", StringComparison.Ordinal) || l.StartsWith("recv {\"type\":3", StringComparison.Ordinal)))
            throw peer.Failure($"the peer saw its connection end {when}");
    }

    private static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("F0", CultureInfo.InvariantCulture);

    [Fact]
    public async Task Heartbeat_must_close_a_peer_whose_link_went_down_with_heartbeat_timeout()
    {
        if (NetnsPair.SkipBecause(NetnsPair.Unavailable(), output)) return;
        using var net = NetnsPair.Create(output);
        using var service = ServiceProcess.Start(ServiceProcess.Config("""
            supervisor {
              tcp {
                host = "0.0.0.0"
                keepalive { enabled = on, idle = 600s }
                close-linger = 200ms
              }
              heartbeat { enabled = on, interval = 200ms, timeout = 600ms }
            }
            """), netns: net.ServerNs, output: output);
        var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20));
        using var peer = StartPeer(net.ServerAddress, port, 0.1, net.PeerNs);
        await FirstResponse(peer);

        // Heartbeats every 100 ms keep the connection open well past the 600 ms timeout.
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        AssertStillOpen(service, peer, "before the link went down");

        net.CutPeerLink();
        var down = Stopwatch.GetTimestamp();
        var closed = await ClosedLine(service, TimeSpan.FromSeconds(5));
        var delay = Stopwatch.GetElapsedTime(down, closed.ReceivedAt);
        output.WriteLine($"heartbeat-timeout logged {Ms(delay)} ms after the link went down: {closed.Text}");
        output.WriteLine(net.ServerLinkStatistics());

        Assert.InRange(SilentMs(service, closed), 600, 1000);
        Assert.InRange(delay, TimeSpan.FromSeconds(0.4), TimeSpan.FromSeconds(1.5));
        Assert.False(peer.HasLine(l => l.StartsWith("recv {\"type\":3", StringComparison.Ordinal)), "the peer behind the dead link must not see the notice");
    }

    [Fact]
    public async Task Keepalive_must_close_a_peer_whose_link_went_down_with_keepalive_failed_when_heartbeats_are_off()
    {
        if (NetnsPair.SkipBecause(NetnsPair.Unavailable(), output)) return;
        using var net = NetnsPair.Create(output);
        using var service = ServiceProcess.Start(ServiceProcess.Config("""
            supervisor {
              tcp { host = "0.0.0.0", keepalive { enabled = on, idle = 1s, interval = 1s, probes = 3 } }
              heartbeat.enabled = off
            }
            """), netns: net.ServerNs, output: output);
        var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20));
        using var peer = StartPeer(net.ServerAddress, port, 0, net.PeerNs);
        await FirstResponse(peer);

        // Longer than idle + probes * interval: the live peer's kernel answers the probes.
        await Task.Delay(TimeSpan.FromSeconds(5));
        AssertStillOpen(service, peer, "before the link went down");
        output.WriteLine(net.ServerSockets());

        net.CutPeerLink();
        var down = Stopwatch.GetTimestamp();
        var closed = await ClosedLine(service, TimeSpan.FromSeconds(12));
        var delay = Stopwatch.GetElapsedTime(down, closed.ReceivedAt);
        output.WriteLine($"keepalive-failed logged {Ms(delay)} ms after the link went down (idle 1s + 3 probes x 1s): {closed.Text}");
        output.WriteLine(net.ServerLinkStatistics());

        if (!closed.Text.Contains("closed: keepalive-failed", StringComparison.Ordinal))
            throw service.Failure($"closed for another reason than keepalive-failed: {closed.Text}");
        Assert.InRange(delay, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Heartbeat_must_close_a_frozen_peer_with_heartbeat_timeout()
    {
        if (NetnsPair.SkipBecause(Tools.Python3 is null ? "python3 (the test peer) is not installed" : null, output)) return;
        using var service = ServiceProcess.Start(ServiceProcess.Config("""
            supervisor {
              tcp {
                keepalive { enabled = on, idle = 600s }
                close-linger = 200ms
              }
              heartbeat { enabled = on, interval = 200ms, timeout = 600ms }
            }
            """), output: output);
        var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20));
        using var peer = StartPeer("127.0.0.1", port, 0.1, netns: null);
        await FirstResponse(peer);
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        AssertStillOpen(service, peer, "before the peer was frozen");

        peer.Signal(ChildProcess.SigStop);
        var frozen = Stopwatch.GetTimestamp();
        try
        {
            var closed = await ClosedLine(service, TimeSpan.FromSeconds(5));
            var delay = Stopwatch.GetElapsedTime(frozen, closed.ReceivedAt);
            output.WriteLine($"heartbeat-timeout logged {Ms(delay)} ms after SIGSTOP: {closed.Text}");
            Assert.InRange(SilentMs(service, closed), 600, 1000);
            Assert.InRange(delay, TimeSpan.FromSeconds(0.4), TimeSpan.FromSeconds(1.5));
        }
        finally
        {
            peer.TrySignal(ChildProcess.SigCont);
        }

        // The peer's kernel took the notice while the peer was stopped; it reads it once resumed.
        var notice = await peer.WaitForLineAsync(l => l.StartsWith("recv {\"type\":3", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "the error notice");
        Assert.Contains("heartbeat-timeout", notice.Text, StringComparison.Ordinal);
    }
}
