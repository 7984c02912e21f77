using System.Globalization;
using System.Net;

namespace LoadGen;

/// <summary>How the sender spaces frames in time (see <see cref="Options.Usage"/>).</summary>
internal enum Arrivals { Burst, Spread }

/// <summary>Which frames the generator sends and how it matches the answers (see <see cref="Options.Usage"/>).</summary>
internal enum Protocol { Ours, SourceDoc }

/// <summary>Command line of the load generator; every duration is bounded and every loop stops by itself.</summary>
internal sealed record Options(
    string Label,
    IPAddress Host,
    int Port,
    int Connections,
    int SourceAddresses,
    int ConnectConcurrency,
    TimeSpan Interval,
    double Jitter,
    TimeSpan Settle,
    TimeSpan Steady,
    TimeSpan Echo,
    double DataRate,
    int DataSize,
    double SilentFraction,
    TimeSpan Timeout,
    int ServerPid,
    int WarmupConnections,
    TimeSpan RampLimit,
    Arrivals Arrivals,
    bool SignalWindow,
    Protocol Protocol)
{
    public const string Usage = """
        LoadGen --port P --pid PID [options]
          --label NAME              name printed on the RESULT line (default: server)
          --host 127.0.0.1          server address (loopback only)
          --connections 19000       connections to hold
          --source-addresses 4      client sockets are bound to 127.0.0.1 .. 127.0.0.K, round robin
          --connect-concurrency 1000  connections connected but not yet answered, at most
          --interval 2s             heartbeat period; each gap is interval * (1 - U(0, jitter))
          --jitter 0.1              so gaps fall in [interval * (1 - jitter), interval]
          --settle 5s               wait after the ramp before the steady window
          --steady 60s              steady window: heartbeats only; RTT, CPU per heartbeat, RSS
          --echo 10s                echo window: heartbeats plus data frames (0s: skip)
          --data-rate 2000          data frames per second over all connections in the echo window
          --data-size 128           bytes of 'data' per data frame
          --silent-fraction 0.05    peers that stop sending after the echo window (0: skip)
          --timeout 6s              the server's heartbeat.timeout (for close time minus timeout)
          --warmup 200              connections opened, heartbeated and closed before the empty-process sample
          --ramp-limit 120s         give up the ramp after this long
          --arrivals burst          burst: one sender thread wakes every ~1 ms and sends all that is due (the
                                    server sees several frames per wake-up); spread: the sender sleeps to each
                                    frame's due time (nanosleep, 1 µs timer slack), so frames arrive one by
                                    one as independent clients' do (bench/run-load.sh uses spread)
          --signal-window no        yes: send SIGUSR1 to --pid when the steady window starts and ends (the
                                    native floor prints its counters on it; never for a .NET server)
          --protocol ours           ours: frames with "seq", answers matched by the echoed seq, a silent peer's
                                    close timed by the server's error notice (the service and both floors);
                                    source-doc: the source document's frames ({"type":0,"timestamp":T} and
                                    {"type":2,"timestamp":T,"data":"…"}) for bench/GoServer, whose answer
                                    {"type":1,"timestamp":<its clock>} echoes nothing: the k-th answer on a
                                    connection is matched to its k-th heartbeat (one reader goroutine answers
                                    in order), data frames are not answered (echo figures 0), and a silent
                                    peer's close is timed by the EOF/reset the generator reads (the server
                                    closes without a notice), from the peer's last heartbeat
        """;

    public static Options Parse(string[] args)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                throw new ArgumentException($"bad argument '{args[i]}'\n{Usage}");
            map[args[i][2..]] = args[++i];
        }
        string Get(string key, string fallback)
        {
            var value = map.GetValueOrDefault(key, fallback);
            map.Remove(key);
            return value;
        }
        var options = new Options(
            Get("label", "server"),
            IPAddress.Parse(Get("host", "127.0.0.1")),
            int.Parse(Get("port", "0"), CultureInfo.InvariantCulture),
            int.Parse(Get("connections", "19000"), CultureInfo.InvariantCulture),
            int.Parse(Get("source-addresses", "4"), CultureInfo.InvariantCulture),
            int.Parse(Get("connect-concurrency", "1000"), CultureInfo.InvariantCulture),
            Duration(Get("interval", "2s")),
            double.Parse(Get("jitter", "0.1"), CultureInfo.InvariantCulture),
            Duration(Get("settle", "5s")),
            Duration(Get("steady", "60s")),
            Duration(Get("echo", "10s")),
            double.Parse(Get("data-rate", "2000"), CultureInfo.InvariantCulture),
            int.Parse(Get("data-size", "128"), CultureInfo.InvariantCulture),
            double.Parse(Get("silent-fraction", "0.05"), CultureInfo.InvariantCulture),
            Duration(Get("timeout", "6s")),
            int.Parse(Get("pid", "0"), CultureInfo.InvariantCulture),
            int.Parse(Get("warmup", "200"), CultureInfo.InvariantCulture),
            Duration(Get("ramp-limit", "120s")),
            Get("arrivals", "burst") switch
            {
                "burst" => Arrivals.Burst,
                "spread" => Arrivals.Spread,
                var other => throw new ArgumentException($"--arrivals must be burst or spread, not '{other}'"),
            },
            Get("signal-window", "no") switch
            {
                "no" => false,
                "yes" => true,
                var other => throw new ArgumentException($"--signal-window must be yes or no, not '{other}'"),
            },
            Get("protocol", "ours") switch
            {
                "ours" => Protocol.Ours,
                "source-doc" => Protocol.SourceDoc,
                var other => throw new ArgumentException($"--protocol must be ours or source-doc, not '{other}'"),
            });
        if (map.Count > 0)
            throw new ArgumentException($"unknown option --{map.Keys.First()}\n{Usage}");
        if (options.Port is <= 0 or > 65535) throw new ArgumentException("--port is required");
        if (!IPAddress.IsLoopback(options.Host)) throw new ArgumentException("--host must be a loopback address");
        if (options.SourceAddresses is < 1 or > 254) throw new ArgumentException("--source-addresses must be 1..254");
        if (options.Jitter is < 0 or >= 1) throw new ArgumentException("--jitter must be in [0, 1)");
        if (options.SilentFraction is < 0 or > 1) throw new ArgumentException("--silent-fraction must be in [0, 1]");
        if (options.Steady > TimeSpan.FromMinutes(30) || options.Echo > TimeSpan.FromMinutes(10))
            throw new ArgumentException("windows are bounded: --steady at most 30m, --echo at most 10m");
        return options;
    }

    private static TimeSpan Duration(string text)
    {
        double Number(int suffix) => double.Parse(text[..^suffix], CultureInfo.InvariantCulture);
        if (text.EndsWith("ms", StringComparison.Ordinal)) return TimeSpan.FromMilliseconds(Number(2));
        if (text.EndsWith('s')) return TimeSpan.FromSeconds(Number(1));
        if (text.EndsWith('m')) return TimeSpan.FromMinutes(Number(1));
        throw new ArgumentException($"duration '{text}' needs a unit (ms, s, m)");
    }
}
