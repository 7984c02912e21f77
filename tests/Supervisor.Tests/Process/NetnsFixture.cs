using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Supervisor.Tests.Processes;

/// <summary>
/// Two network namespaces joined by a veth pair: the service runs in <see cref="ServerNs"/>
/// (<see cref="ServerAddress"/>), the peer in <see cref="PeerNs"/> (<see cref="PeerAddress"/>).
/// Taking the peer's end down (<see cref="CutPeerLink"/>) makes the peer vanish without a FIN or an
/// RST: whatever the server sends is dropped. Dispose deletes both namespaces (and with them the pair).
/// </summary>
public sealed partial class NetnsPair : IDisposable
{
    private static int _counter;
    private readonly ITestOutputHelper? _output;
    private readonly List<string> _created = [];

    private NetnsPair(int n, ITestOutputHelper? output)
    {
        _output = output;
        var pid = Environment.ProcessId;
        ServerNs = $"svs-{pid}-{n}";
        PeerNs = $"svp-{pid}-{n}";
        // Interface names are at most 15 characters.
        ServerVeth = $"vs{pid}x{n}";
        PeerVeth = $"vp{pid}x{n}";
        // The namespaces are private to this pair, so the addresses cannot clash with anything.
        ServerAddress = $"10.203.{n % 256}.1";
        PeerAddress = $"10.203.{n % 256}.2";
    }

    public string ServerNs { get; }
    public string PeerNs { get; }
    public string ServerVeth { get; }
    public string PeerVeth { get; }
    public string ServerAddress { get; }
    public string PeerAddress { get; }

    /// <summary>Why namespaces cannot be made here (not root, no <c>ip</c>, no <c>python3</c>), or null.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "network namespaces need Linux";
        if (!Tools.IsRoot) return "network namespaces need root (run the tests as root)";
        if (Tools.Ip is null) return "the `ip` tool (iproute2) is not installed";
        if (Tools.Python3 is null) return "python3 (the test peer) is not installed";
        return null;
    }

    /// <summary>
    /// Fails the test when <paramref name="reason"/> is set and CI=true; otherwise writes why the test
    /// does not run and returns true so the test can return early (xunit 2 has no dynamic skip).
    /// </summary>
    public static bool SkipBecause(string? reason, ITestOutputHelper output)
    {
        if (reason is null) return false;
        if (Tools.IsCi)
            Assert.Fail($"Test environment missing: {reason}. CI=true, so this is a failure, not a skip.");
        output.WriteLine($"SKIPPED (not run): test environment missing: {reason}. Under CI=true this is a failure.");
        return true;
    }

    /// <summary>Creates the two namespaces, the veth pair, the addresses, and brings every link up.</summary>
    public static NetnsPair Create(ITestOutputHelper? output = null)
    {
        RemoveStale(output);
        var pair = new NetnsPair(Interlocked.Increment(ref _counter), output);
        try
        {
            pair.Ip("netns", "add", pair.ServerNs);
            pair._created.Add(pair.ServerNs);
            pair.Ip("netns", "add", pair.PeerNs);
            pair._created.Add(pair.PeerNs);
            pair.Ip("-n", pair.ServerNs, "link", "add", pair.ServerVeth, "type", "veth", "peer", "name", pair.PeerVeth, "netns", pair.PeerNs);
            pair.Ip("-n", pair.ServerNs, "addr", "add", $"{pair.ServerAddress}/30", "dev", pair.ServerVeth);
            pair.Ip("-n", pair.PeerNs, "addr", "add", $"{pair.PeerAddress}/30", "dev", pair.PeerVeth);
            foreach (var (ns, dev) in new[] { (pair.ServerNs, "lo"), (pair.PeerNs, "lo"), (pair.ServerNs, pair.ServerVeth), (pair.PeerNs, pair.PeerVeth) })
                pair.Ip("-n", ns, "link", "set", dev, "up");
            return pair;
        }
        catch
        {
            pair.Dispose();
            throw;
        }
    }

    /// <summary>Takes the peer's end of the veth pair down: from now on every packet either way is lost.</summary>
    public void CutPeerLink() => Ip("-n", PeerNs, "link", "set", PeerVeth, "down");

    /// <summary>Output of <c>ss -tino</c> in the server namespace (diagnostics only; empty if ss is missing).</summary>
    public string ServerSockets()
    {
        if (Tools.Find("ss") is not { } ss) return "";
        try
        {
            return Tools.Run(Tools.Ip!, ["netns", "exec", ServerNs, ss, "-tino", "state", "established"]).Output;
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            return $"(ss failed: {e.Message})";
        }
    }

    /// <summary>Counters of the server's end (diagnostics: dropped packets show the peer is gone).</summary>
    public string ServerLinkStatistics() => Tools.Run(Tools.Ip!, ["-s", "-n", ServerNs, "link", "show", ServerVeth]).Output;

    private void Ip(params string[] arguments)
    {
        var (code, text) = Tools.Run(Tools.Ip!, arguments);
        if (code != 0)
            throw new InvalidOperationException($"ip {string.Join(' ', arguments)} failed ({code}): {text}");
    }

    public void Dispose()
    {
        // Deleting a namespace deletes the veth end in it, and with it the pair.
        for (var i = _created.Count - 1; i >= 0; i--)
        {
            try
            {
                var (code, text) = Tools.Run(Tools.Ip!, ["netns", "del", _created[i]]);
                if (code != 0) Log($"ip netns del {_created[i]} failed ({code}): {text}");
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException)
            {
                Log($"ip netns del {_created[i]} failed: {e.Message}");
            }
        }
        _created.Clear();
    }

    private void Log(string text)
    {
        try { _output?.WriteLine(text); }
        catch (InvalidOperationException) { /* the test is over */ }
    }

    [GeneratedRegex(@"^sv[sp]-(?<pid>\d+)-\d+\b")]
    private static partial Regex OurNamespace();

    /// <summary>Deletes namespaces left behind by earlier test runs whose process is gone (killed runs).</summary>
    private static void RemoveStale(ITestOutputHelper? output)
    {
        try
        {
            var (code, text) = Tools.Run(Tools.Ip!, ["netns", "list"]);
            if (code != 0) return;
            foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var m = OurNamespace().Match(line);
                if (!m.Success || Directory.Exists($"/proc/{m.Groups["pid"].Value}")) continue;
                var name = line.Split(' ')[0];
                Tools.Run(Tools.Ip!, ["netns", "del", name]);
                output?.WriteLine($"removed stale namespace {name}");
            }
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            output?.WriteLine($"could not look for stale namespaces: {e.Message}");
        }
    }
}
