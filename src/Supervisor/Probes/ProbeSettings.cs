using Akka.Configuration;
using Supervisor.Configuration;
using static Supervisor.Configuration.HoconReader;

namespace Supervisor.Probes;

internal enum ProbeKind
{
    /// <summary>A real Redis <c>PING</c> round trip through StackExchange.Redis.</summary>
    Redis,
    /// <summary>A TCP connect to the endpoint, closed at once.</summary>
    TcpConnect,
    /// <summary>An HTTP GET; any 2xx status is up.</summary>
    HttpGet,
}

/// <summary>One dependency probe (<c>supervisor.probes.NAME</c>), validated.</summary>
/// <param name="Endpoint"><c>host:port</c> for redis and tcp-connect; an http(s) URL for http-get.</param>
/// <param name="Interval">Time from the start of one check to the start of the next. Default 5 s.</param>
/// <param name="Timeout">A check that takes longer fails. Default 1 s; at most <paramref name="Interval"/>.</param>
/// <param name="Rise">Consecutive successes that make the probe up. Default 2.</param>
/// <param name="Fall">Consecutive failures that make it down. Default 3.</param>
internal sealed record ProbeSettings(string Name, ProbeKind Kind, string Endpoint, TimeSpan Interval, TimeSpan Timeout, int Rise, int Fall)
{
    public const string Path = "supervisor.probes";
    public const string DefaultsPath = "supervisor.probe-defaults";

    public string KindName => Kind switch
    {
        ProbeKind.Redis => "redis",
        ProbeKind.TcpConnect => "tcp-connect",
        _ => "http-get",
    };

    /// <summary>Every probe under <c>supervisor.probes</c>, each falling back to <c>supervisor.probe-defaults</c>.</summary>
    public static IReadOnlyList<ProbeSettings> ReadAll(Config config)
    {
        if (!config.HasPath(Path)) return [];
        var defaults = config.HasPath(DefaultsPath) ? config.GetConfig(DefaultsPath) : Config.Empty;
        var probes = new List<ProbeSettings>();
        foreach (var name in config.GetValue(Path).GetObject().Items.Keys.Order(StringComparer.Ordinal))
        {
            var prefix = $"{Path}.{name}";
            if (!config.GetValue(prefix).IsObject())
                throw new ConfigurationError(prefix, "must be a block { kind = ..., endpoint = ... }");
            probes.Add(Read(name, config.GetConfig(prefix).WithFallback(defaults), prefix));
        }
        return probes;
    }

    public static ProbeSettings Read(string name, Config probe, string prefix)
    {
        var kindText = ReadString(probe, "kind", prefix);
        var kind = kindText switch
        {
            "redis" => ProbeKind.Redis,
            "tcp-connect" => ProbeKind.TcpConnect,
            "http-get" => ProbeKind.HttpGet,
            _ => throw new ConfigurationError(Key(prefix, "kind"), $"'{kindText}' is not one of redis, tcp-connect, http-get"),
        };
        var endpoint = ReadString(probe, "endpoint", prefix);
        if (kind == ProbeKind.HttpGet)
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
                throw new ConfigurationError(Key(prefix, "endpoint"), $"'{endpoint}' is not an http(s) URL");
        }
        else
        {
            HostPort.Parse(endpoint, Key(prefix, "endpoint"));
        }

        var interval = ReadPositiveDuration(probe, "interval", prefix);
        var timeout = ReadPositiveDuration(probe, "timeout", prefix);
        if (timeout > interval)
            throw new ConfigurationError(Key(prefix, "timeout"), $"{timeout.ToHocon()} must not be above {Key(prefix, "interval")} = {interval.ToHocon()}");
        var rise = ReadInt(probe, "rise", prefix);
        if (rise is < 1 or > 1000)
            throw new ConfigurationError(Key(prefix, "rise"), $"{rise} is out of range 1-1000");
        var fall = ReadInt(probe, "fall", prefix);
        if (fall is < 1 or > 1000)
            throw new ConfigurationError(Key(prefix, "fall"), $"{fall} is out of range 1-1000");
        return new ProbeSettings(name, kind, endpoint, interval, timeout, rise, fall);
    }
}
