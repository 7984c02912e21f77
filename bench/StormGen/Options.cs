using System.Globalization;
using System.Net;

namespace StormGen;

/// <summary>How peers come back after they lost their connection.</summary>
internal enum Comeback
{
    /// <summary>Every attempt uniformly within <c>--naive-window</c> of the loss or of the failed attempt; notices ignored.</summary>
    Naive,
    /// <summary>As the heartbeat client: full-jitter exponential backoff, and the server's reconnect hint when its notice has one.</summary>
    Client,
}

/// <summary>What ends the connections.</summary>
internal enum Storm
{
    /// <summary>A network blip: a fraction of the connections reset at once (RST, SO_LINGER 0) by this side.</summary>
    Reset,
    /// <summary>The server is stopped (SIGTERM) and started again; every connection ends.</summary>
    Restart,
}

internal sealed record Options
{
    public IPAddress Host { get; init; } = IPAddress.Loopback;
    public int Port { get; init; }
    public int Connections { get; init; } = 19_000;
    public int SourceAddresses { get; init; } = 8;
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(2);
    public double Jitter { get; init; } = 0.1;
    public Storm Storm { get; init; } = Storm.Reset;
    public Comeback Comeback { get; init; } = Comeback.Naive;
    public double ResetFraction { get; init; } = 0.9;
    public TimeSpan NaiveWindow { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan MinBackoff { get; init; } = TimeSpan.FromMilliseconds(500);
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);
    public double Multiplier { get; init; } = 2.0;
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan Settle { get; init; } = TimeSpan.FromSeconds(6);
    public TimeSpan Limit { get; init; } = TimeSpan.FromSeconds(90);
    public int ConnectConcurrency { get; init; } = 512;
    public bool Tls { get; init; }
    public bool TlsResume { get; init; } = true;
    /// <summary>The server's command line; StormGen starts it, samples its CPU, restarts it (<see cref="Storm.Restart"/>) and stops it.</summary>
    public string ServerCommand { get; init; } = "";
    public string Label { get; init; } = "storm";

    public const string Usage = """
        StormGen --port P --server "CMD ARGS" [options]   (bench/run-storm.sh runs it; bench/README.md, issue 16)
          --connections 19000  --source-addresses 8  --interval 2s  --jitter 0.1
          --storm reset|restart        reset: --reset-fraction of the connections RST at once; restart: SIGTERM the server, start it again
          --comeback naive|client      naive: every attempt within --naive-window (1s), notices ignored;
                                       client: the heartbeat client's backoff (--min-backoff 500ms --max-backoff 30s --multiplier 2)
                                       and the server's reconnect-after hint
          --tls [--tls-resume on|off]  TLS to the server (certificate not checked); resume: offer the cached session
          --settle 6s  --limit 90s  --connect-timeout 5s  --connect-concurrency 512  --label NAME
        """;

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            o = args[i] switch
            {
                "--host" => o with { Host = IPAddress.Parse(Value()) },
                "--port" => o with { Port = int.Parse(Value(), CultureInfo.InvariantCulture) },
                "--connections" => o with { Connections = int.Parse(Value(), CultureInfo.InvariantCulture) },
                "--source-addresses" => o with { SourceAddresses = int.Parse(Value(), CultureInfo.InvariantCulture) },
                "--interval" => o with { Interval = Duration(Value()) },
                "--jitter" => o with { Jitter = double.Parse(Value(), CultureInfo.InvariantCulture) },
                "--storm" => o with { Storm = Value() switch { "reset" => Storm.Reset, "restart" => Storm.Restart, var v => throw new ArgumentException($"--storm {v}?") } },
                "--comeback" => o with { Comeback = Value() switch { "naive" => Comeback.Naive, "client" => Comeback.Client, var v => throw new ArgumentException($"--comeback {v}?") } },
                "--reset-fraction" => o with { ResetFraction = double.Parse(Value(), CultureInfo.InvariantCulture) },
                "--naive-window" => o with { NaiveWindow = Duration(Value()) },
                "--min-backoff" => o with { MinBackoff = Duration(Value()) },
                "--max-backoff" => o with { MaxBackoff = Duration(Value()) },
                "--multiplier" => o with { Multiplier = double.Parse(Value(), CultureInfo.InvariantCulture) },
                "--connect-timeout" => o with { ConnectTimeout = Duration(Value()) },
                "--settle" => o with { Settle = Duration(Value()) },
                "--limit" => o with { Limit = Duration(Value()) },
                "--connect-concurrency" => o with { ConnectConcurrency = int.Parse(Value(), CultureInfo.InvariantCulture) },
                "--tls" => o with { Tls = true },
                "--tls-resume" => o with { TlsResume = Value() is "on" or "true" },
                "--server" => o with { ServerCommand = Value() },
                "--label" => o with { Label = Value() },
                var unknown => throw new ArgumentException($"unknown option {unknown}"),
            };
        }
        if (o.Port <= 0) throw new ArgumentException("--port is required");
        if (o.ServerCommand.Length == 0) throw new ArgumentException("--server is required");
        if (o.SourceAddresses is < 1 or > 254) throw new ArgumentException("--source-addresses is 1-254");
        return o;
    }

    private static TimeSpan Duration(string text) => text.EndsWith("ms", StringComparison.Ordinal)
        ? TimeSpan.FromMilliseconds(double.Parse(text[..^2], CultureInfo.InvariantCulture))
        : TimeSpan.FromSeconds(double.Parse(text.TrimEnd('s'), CultureInfo.InvariantCulture));
}
