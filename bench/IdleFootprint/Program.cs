using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using LoadGen;

// Idle footprint (issue 16 point 3): see Usage and bench/README.md, "Issue 16: memory per connection".
const string Usage = """
    IdleFootprint --port P --pid PID [options]
      --label NAME            name printed on the RESULT line (default: server)
      --connections 2000      connections to hold
      --tls                   speak TLS (the bench's certificate is not validated: loopback only)
      --source-addresses 4    client sockets bound to 127.0.0.1 .. 127.0.0.K, round robin
      --interval 2s           each connection heartbeats every interval * (1 - U(0, 0.1)) and waits for the answer
      --settle 10s            wait after the last connection was answered before sampling
      --hold 20s              sampling window: the server's RSS once a second; the figure is the window's median
      --warmup 50             connections opened, heartbeated three times and closed before the empty-process sample
      --smaps DIR             copy the server's /proc/PID/smaps into DIR at the empty sample and at the hold's middle
                              (bench/smaps-breakdown.py splits their RSS into the GC's heap, malloc's arenas and files)
    """;

var map = new Dictionary<string, string>(StringComparer.Ordinal);
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "--tls") { map["tls"] = "on"; continue; }
    if (args[i] is "--help" or "-h") { Console.WriteLine(Usage); return 0; }
    if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length) { Console.Error.WriteLine($"bad argument '{args[i]}'\n{Usage}"); return 2; }
    map[args[i][2..]] = args[++i];
}
string Get(string key, string fallback) { var v = map.GetValueOrDefault(key, fallback); map.Remove(key); return v; }
int Int(string key, int fallback) => int.Parse(Get(key, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
TimeSpan Duration(string key, string fallback)
{
    var text = Get(key, fallback);
    return text.EndsWith("ms", StringComparison.Ordinal) ? TimeSpan.FromMilliseconds(double.Parse(text[..^2], CultureInfo.InvariantCulture))
        : text.EndsWith('s') ? TimeSpan.FromSeconds(double.Parse(text[..^1], CultureInfo.InvariantCulture))
        : throw new ArgumentException($"--{key}: '{text}' needs a unit (ms, s)");
}
var label = Get("label", "server");
var port = Int("port", 0);
var pid = Int("pid", 0);
var count = Int("connections", 2000);
var tls = Get("tls", "off") == "on";
var sources = Int("source-addresses", 4);
var interval = Duration("interval", "2s");
var settle = Duration("settle", "10s");
var hold = Duration("hold", "20s");
var warmup = Int("warmup", 50);
var smapsDir = Get("smaps", "");
if (map.Count > 0) { Console.Error.WriteLine($"unknown option --{map.Keys.First()}\n{Usage}"); return 2; }
if (port is <= 0 or > 65535 || pid <= 0) { Console.Error.WriteLine($"--port and --pid are required\n{Usage}"); return 2; }
if (hold > TimeSpan.FromMinutes(10) || count > 60_000) { Console.Error.WriteLine("bounded: --hold at most 10 min, --connections at most 60,000"); return 2; }

var server = new IPEndPoint(IPAddress.Loopback, port);
using var stop = new CancellationTokenSource();
Console.WriteLine($"== {label}: {count} idle {(tls ? "TLS" : "plain")} connections to {server}, heartbeat every {interval.TotalSeconds} s");

// Warm-up: the server JIT-compiles its connection paths (and its TLS ones) before the empty-process sample.
for (var i = 0; i < warmup; i++)
{
    using var warm = new Client(0, tls);
    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
    await warm.OpenAsync(server, new IPAddress([127, 0, 0, 1]), cts.Token);
    for (var seq = 1; seq <= 3; seq++) await warm.HeartbeatAsync(cts.Token);
}
// Longer than the service's native-heap trim after handshakes (5 s), so the empty process is the settled one.
await Task.Delay(TimeSpan.FromSeconds(10));
var empty = ServerProcess.Sample(pid);
CopySmaps("empty");
Console.WriteLine($"server empty (after warm-up): RSS {empty.RssKiB} KiB, threads {empty.Threads}");
var kernelBefore = Kernel.Read();

// Ramp: at most 200 connections opening at once; each then heartbeats until the end.
var clients = new Client[count];
var loops = new List<Task>(count);
long answered = 0, failed = 0, dropped = 0, heartbeats = 0;
string? firstError = null;
var window = new SemaphoreSlim(200, 200);
var rampStart = Stopwatch.GetTimestamp();
for (var i = 0; i < count; i++)
{
    await window.WaitAsync();
    var client = clients[i] = new Client(i, tls);
    loops.Add(RunAsync(client, new IPAddress([127, 0, 0, (byte)(1 + i % sources)])));
}
var rampDeadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 120;
while (Interlocked.Read(ref answered) + Interlocked.Read(ref failed) < count && Stopwatch.GetTimestamp() < rampDeadline) await Task.Delay(50);
Console.WriteLine($"ramp: {answered}/{count} answered in {Stopwatch.GetElapsedTime(rampStart).TotalSeconds:F1} s; failed {failed}{(firstError is null ? "" : $" (first: {firstError})")}");

await Task.Delay(settle);
var samples = new List<long>();
var holdStart = ServerProcess.Sample(pid);
var heartbeatsBefore = Interlocked.Read(ref heartbeats);
var holdEnd = Stopwatch.GetTimestamp() + (long)(hold.TotalSeconds * Stopwatch.Frequency);
ProcSample last = default;
while (Stopwatch.GetTimestamp() < holdEnd)
{
    await Task.Delay(TimeSpan.FromSeconds(1));
    last = ServerProcess.Sample(pid);
    samples.Add(last.RssKiB);
    if (samples.Count == (int)(hold.TotalSeconds / 2)) CopySmaps("held");
}
var kernelAfter = Kernel.Read();
var heartbeatsInHold = Interlocked.Read(ref heartbeats) - heartbeatsBefore;
// Server CPU (utime + stime) over the hold window per heartbeat answered in it: what an idle connection costs in CPU.
var cpuPerHeartbeat = heartbeatsInHold > 0 ? (last.CpuSeconds - holdStart.CpuSeconds) / heartbeatsInHold * 1e6 : double.NaN;
samples.Sort();
var median = samples[samples.Count / 2];
var held = clients.Count(c => c is { Answered: true, Closed: false });
var perConnection = held > 0 ? (median - empty.RssKiB) * 1024.0 / held : double.NaN;
Console.WriteLine($"hold: {held} held, {dropped} dropped; server RSS median {median} KiB (min {samples[0]}, max {samples[^1]}) over {samples.Count} samples, threads {last.Threads}");
Console.WriteLine($"=> {perConnection:F0} B RSS per idle {(tls ? "TLS" : "plain")} connection; server CPU {cpuPerHeartbeat:F1} µs per heartbeat ({heartbeatsInHold} in the hold window)");
var kernel = Kernel.PerSocket(kernelBefore, kernelAfter, 2 * held);
Console.WriteLine($"kernel (both ends on this machine, per socket): {kernel}");

stop.Cancel();
foreach (var c in clients) c?.Dispose();
await Task.WhenAny(Task.WhenAll(loops), Task.Delay(TimeSpan.FromSeconds(10)));
Console.WriteLine(FormattableString.Invariant(
    $"RESULT label={label} tls={(tls ? "on" : "off")} connections={count} held={held} dropped={dropped} rss_empty_kib={empty.RssKiB} rss_held_kib={median} rss_per_conn_b={perConnection:F0} threads={last.Threads} cpu_per_heartbeat_us={cpuPerHeartbeat:F1} kernel_slab_per_socket_b={kernel.SlabBytes:F0} kernel_buffers_per_socket_b={kernel.BufferBytes:F0}"));
return held == count ? 0 : 1;

void CopySmaps(string moment)
{
    if (smapsDir.Length == 0) return;
    Directory.CreateDirectory(smapsDir);
    File.WriteAllText(Path.Combine(smapsDir, $"{label}-{moment}.smaps"), File.ReadAllText($"/proc/{pid}/smaps"));
}

async Task RunAsync(Client client, IPAddress source)
{
    var released = false;
    try
    {
        using (var open = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            await client.OpenAsync(server, source, open.Token).ConfigureAwait(false);
            await client.HeartbeatAsync(open.Token).ConfigureAwait(false);
        }
        client.Answered = true;
        Interlocked.Increment(ref answered);
        window.Release();
        released = true;
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(interval * (1 - Random.Shared.NextDouble() * 0.1), stop.Token).ConfigureAwait(false);
            await client.HeartbeatAsync(stop.Token).ConfigureAwait(false);
            Interlocked.Increment(ref heartbeats);
        }
    }
    catch (Exception) when (stop.IsCancellationRequested)
    {
    }
    catch (Exception e)
    {
        client.Closed = true;
        Interlocked.Increment(ref client.Answered ? ref dropped : ref failed);
        Interlocked.CompareExchange(ref firstError, $"{e.GetType().Name}: {e.Message}", null);
    }
    finally
    {
        if (!released) window.Release();
    }
}

/// <summary>One idle client: a socket, TLS over it when asked, one heartbeat at a time.</summary>
internal sealed class Client(int index, bool tls) : IDisposable
{
    private const int SolIp = 0;
    private const int IpBindAddressNoPort = 24;
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly byte[] _buffer = new byte[512];
    private Stream? _stream;
    private long _seq;

    public bool Answered { get; set; }
    public bool Closed { get; set; }

    public async Task OpenAsync(IPEndPoint server, IPAddress source, CancellationToken cancel)
    {
        _socket.SetRawSocketOption(SolIp, IpBindAddressNoPort, BitConverter.GetBytes(1));
        _socket.Bind(new IPEndPoint(source, 0));
        await _socket.ConnectAsync(server, cancel).ConfigureAwait(false);
        _socket.NoDelay = true;
        Stream stream = new NetworkStream(_socket, ownsSocket: true);
        if (tls)
        {
            var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
            // The bench's throw-away certificate on loopback: nothing to validate against.
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            }, cancel).ConfigureAwait(false);
            stream = ssl;
        }
        _stream = stream;
    }

    /// <summary>Sends one heartbeat and reads up to its answer (a heartbeat response; anything else is a failure).</summary>
    public async Task HeartbeatAsync(CancellationToken cancel)
    {
        var n = Wire.Heartbeat(_buffer, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), ++_seq);
        await _stream!.WriteAsync(_buffer.AsMemory(0, n), cancel).ConfigureAwait(false);
        var filled = 0;
        int newline;
        while ((newline = Array.IndexOf(_buffer, (byte)'\n', 0, filled)) < 0)
        {
            var read = await _stream.ReadAsync(_buffer.AsMemory(filled), cancel).ConfigureAwait(false);
            if (read == 0) throw new IOException($"connection {index}: the server closed it");
            filled += read;
        }
        var line = _buffer.AsSpan(0, newline);
        if (Wire.Type(line) != Wire.TypeHeartbeatResponse)
            throw new IOException($"connection {index}: expected a heartbeat response, got {System.Text.Encoding.UTF8.GetString(line)}");
    }

    public void Dispose()
    {
        Closed = true;
        if (_stream is null) _socket.Dispose();
        else _stream.Dispose();
    }
}

/// <summary>
/// The kernel's side: socket slabs (/proc/slabinfo: TCP, sock_inode_cache, filp, dentry, eppoll entries) and socket
/// buffer pages (/proc/net/sockstat TCP mem). Machine-wide, so it counts the clients' sockets too: divided by both ends.
/// </summary>
internal readonly record struct Kernel(long SlabBytes, long BufferBytes)
{
    private static readonly string[] Caches = ["TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq", "skbuff_head_cache"];

    public static Kernel Read()
    {
        long slab = 0;
        try
        {
            foreach (var line in File.ReadLines("/proc/slabinfo"))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length > 3 && Caches.Contains(f[0]))
                    slab += long.Parse(f[1], CultureInfo.InvariantCulture) * long.Parse(f[3], CultureInfo.InvariantCulture);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            slab = -1;
        }
        long pages = 0;
        foreach (var line in File.ReadLines("/proc/net/sockstat"))
        {
            if (!line.StartsWith("TCP:", StringComparison.Ordinal)) continue;
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var at = Array.IndexOf(f, "mem");
            if (at > 0) pages = long.Parse(f[at + 1], CultureInfo.InvariantCulture);
        }
        return new Kernel(slab, pages * Environment.SystemPageSize);
    }

    public static Kernel PerSocket(Kernel before, Kernel after, int sockets) => sockets == 0 || before.SlabBytes < 0
        ? new Kernel(-1, -1)
        : new Kernel((after.SlabBytes - before.SlabBytes) / sockets, (after.BufferBytes - before.BufferBytes) / sockets);

    public override string ToString() => $"slab objects {SlabBytes} B, socket buffer pages {BufferBytes} B";
}
