using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using Supervisor.Http;
using Supervisor.Messages.Protocol;

namespace Supervisor.Hosting;

/// <summary>
/// <c>Supervisor status [--url http://127.0.0.1:8080]</c> (DESIGN §6): totals, the connections that are
/// suspect, and the active alerts of a running service, as terminal tables, from its HTTP API.
/// Exit codes: 0 printed, 1 the service could not be reached or answered badly, 2 bad arguments.
/// </summary>
internal static class StatusCommand
{
    public const string DefaultUrl = "http://127.0.0.1:8080";

    /// <summary>Suspect connections listed at most; the count says how many there are in all.</summary>
    public const int SuspectShown = 50;

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    /// <param name="Url">The API's base URL, or null.</param>
    /// <param name="ConfigFile">A service configuration to find the API in, when no URL is given.</param>
    /// <param name="Json">Print one JSON object instead of tables.</param>
    /// <param name="Watch">Print again every two seconds until interrupted.</param>
    public sealed record Arguments(string? Url, string? ConfigFile, bool Json, bool Watch);

    /// <summary>How often <c>--watch</c> prints.</summary>
    public static readonly TimeSpan WatchEvery = TimeSpan.FromSeconds(2);

    public static async Task<int> RunAsync(Arguments args)
    {
        Uri url;
        try
        {
            url = ResolveUrl(args);
        }
        catch (Exception e) when (e is ArgumentException or Configuration.ConfigurationError)
        {
            await Console.Error.WriteLineAsync($"supervisor: {e.Message}");
            return SupervisorProgram.ExitUsage;
        }

        using var http = new HttpClient { BaseAddress = url, Timeout = Timeout };
        if (!args.Watch) return await PrintOnceAsync(http, url, args.Json);

        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        while (!stop.IsCancellationRequested)
        {
            if (!args.Json && !Console.IsOutputRedirected) Console.Write("\u001b[H\u001b[2J");
            await PrintOnceAsync(http, url, args.Json);
            try { await Task.Delay(WatchEvery, stop.Token); }
            catch (OperationCanceledException) { break; }
        }
        return SupervisorProgram.ExitOk;
    }

    /// <summary>The status as one JSON document (<c>status --json</c>).</summary>
    public sealed record StatusDocument(string Url, DateTimeOffset At, StatsView Stats, ConnectionPage Suspect, MonitorProtocol.Alerts? Alerts,
        IReadOnlyList<ProbeProtocol.ProbeStatus> Probes, ClusterProtocol.ClusterView? Cluster);

    private static async Task<int> PrintOnceAsync(HttpClient http, Uri url, bool json)
    {
        StatsView stats;
        ConnectionPage suspect;
        MonitorProtocol.Alerts? alerts;
        string? alertsProblem = null;
        IReadOnlyList<ProbeProtocol.ProbeStatus> probes = [];
        ClusterProtocol.ClusterView? cluster = null;
        try
        {
            stats = await GetAsync<StatsView>(http, "api/stats");
            suspect = await GetAsync<ConnectionPage>(http, $"api/connections?state=suspect&limit={SuspectShown}");
            try
            {
                alerts = await GetAsync<MonitorProtocol.Alerts>(http, "api/alerts");
            }
            catch (UnexpectedAnswer e)
            {
                alerts = null;
                alertsProblem = e.Message;
            }
            try
            {
                probes = await GetAsync<ProbeProtocol.ProbeStatus[]>(http, "api/probes");
            }
            catch (UnexpectedAnswer)
            {
                // A service without the probes route (older) or without probes: nothing to show.
            }
            try
            {
                cluster = await GetAsync<ClusterProtocol.ClusterView>(http, "api/cluster");
            }
            catch (UnexpectedAnswer)
            {
                // A service without the cluster route (older): a single node.
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or UnexpectedAnswer)
        {
            var why = e switch
            {
                TaskCanceledException => $"no answer within {Timeout.TotalSeconds:0} s",
                HttpRequestException { InnerException: { } inner } => inner.Message,
                _ => e.Message,
            };
            await Console.Error.WriteLineAsync($"supervisor: cannot get the status of {url}: {why}");
            return SupervisorProgram.ExitFailure;
        }

        if (json)
            Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(
                new StatusDocument(url.ToString(), DateTimeOffset.UtcNow, stats, suspect, alerts, probes, cluster), Http.ApiJson.Options));
        else
            Console.Out.Write(Render(url, stats, suspect, alerts, alertsProblem, DateTimeOffset.UtcNow, probes, cluster));
        return SupervisorProgram.ExitOk;
    }

    private static Uri ResolveUrl(Arguments args)
    {
        if (args.Url is not null && args.ConfigFile is not null)
            throw new ArgumentException("bad arguments: give --url or --config, not both");
        var url = args.Url ?? (args.ConfigFile is { } file ? ApiUrlOf(file) : DefaultUrl);
        if (!Uri.TryCreate(url.EndsWith('/') ? url : url + "/", UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new ArgumentException($"bad arguments: --url: '{url}' is not an http:// or https:// URL");
        return uri;
    }

    /// <summary>Where the service configured by <paramref name="configFile"/> serves its API.</summary>
    private static string ApiUrlOf(string configFile)
    {
        var config = Configuration.SupervisorConfig.Load(configFile, null);
        var operatorSettings = OperatorConfig.Read(config, Configuration.SupervisorConfig.Read(config));
        if (!operatorSettings.Http.Enabled)
            throw new Configuration.ConfigurationError("supervisor.http.enabled", $"is off in {configFile}: the service serves no API to ask");
        var host = operatorSettings.Http.Host is "0.0.0.0" ? "127.0.0.1" : operatorSettings.Http.Host is "::" ? "[::1]"
            : System.Net.IPAddress.Parse(operatorSettings.Http.Host).AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
                ? $"[{operatorSettings.Http.Host}]" : operatorSettings.Http.Host;
        return $"http://{host}:{operatorSettings.Http.Port}";
    }

    /// <summary>An answer that is not a 200 with the expected JSON.</summary>
    private sealed class UnexpectedAnswer(string message) : Exception(message);

    private static async Task<T> GetAsync<T>(HttpClient http, string path)
    {
        using var response = await http.GetAsync(path);
        if (!response.IsSuccessStatusCode)
        {
            var body = await response.Content.ReadAsStringAsync();
            throw new UnexpectedAnswer($"GET /{path} answered {(int)response.StatusCode} {response.ReasonPhrase}{(body.Length > 0 ? ": " + body.Trim() : "")}");
        }
        try
        {
            return await response.Content.ReadFromJsonAsync<T>(ApiJson.Options)
                ?? throw new UnexpectedAnswer($"GET /{path} answered null");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new UnexpectedAnswer($"GET /{path} answered something that is not its JSON: {e.Message}");
        }
    }

    /// <summary>The tables, as printed.</summary>
    public static string Render(Uri url, StatsView stats, ConnectionPage suspect, MonitorProtocol.Alerts? alerts, string? alertsProblem, DateTimeOffset now,
        IReadOnlyList<ProbeProtocol.ProbeStatus>? probes = null, ClusterProtocol.ClusterView? cluster = null)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Supervisor at {url} ({now:yyyy-MM-dd HH:mm:ss}Z)");
        text.AppendLine();

        text.AppendLine("TOTALS");
        Table(text, ["active", "accepted", "closed", "heartbeats", "bytes in", "bytes out"],
            [[Count(stats.Active), Count(stats.Accepted), Count(stats.Closed), Count(stats.Heartbeats), Bytes(stats.BytesIn), Bytes(stats.BytesOut)]]);
        text.AppendLine();

        if (cluster is { Enabled: true })
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"NODES ({cluster.Members.Count(m => m.Status == "up" && m.Reachable)} of {cluster.Members.Count} up and reachable; totals above are the cluster's)");
            Table(text, ["node", "status", "reachable", "connections", "notes"],
                cluster.Members.Select(m => new[]
                {
                    m.Node, m.Status, m.Reachable ? "yes" : "no", Count(m.Connections),
                    string.Join(", ", new[] { m.IsSelf ? "this node" : "", m.Node == cluster.Leader ? "leader" : "", m.Node == cluster.Singleton ? "cluster monitor" : "" }
                        .Where(n => n.Length > 0)),
                }).ToArray());
            foreach (var departed in cluster.Departures)
                text.AppendLine(CultureInfo.InvariantCulture, $"  departed {departed.Node} {Ago(now - departed.At)}: {departed.Reason}, {Count(departed.Lost)} connections");
            text.AppendLine();
        }

        var reasons = stats.ClosedByReason.Where(r => r.Value > 0).OrderByDescending(r => r.Value).ToArray();
        text.AppendLine("CLOSED BY REASON");
        if (reasons.Length == 0) text.AppendLine("  none");
        else Table(text, ["reason", "count"], reasons.Select(r => new[] { r.Key, Count(r.Value) }).ToArray());
        text.AppendLine();

        text.AppendLine(CultureInfo.InvariantCulture, $"SUSPECT CONNECTIONS ({suspect.Total} of {stats.Active} live)");
        if (suspect.Total == 0) text.AppendLine("  none");
        else
        {
            Table(text, ["id", "remote", "protocol", "listener", "missed", "last frame", "rtt"],
                suspect.Items.Select(c => new[]
                {
                    c.Id, c.Remote, c.Protocol, c.Listener, Count(c.MissedHeartbeats),
                    c.LastFrameAt is { } at ? Ago(now - at) : "never",
                    c.RttMs is { } rtt ? $"{rtt:F1} ms" : "-",
                }).ToArray());
            if (suspect.Total > suspect.Items.Count)
                text.AppendLine(CultureInfo.InvariantCulture, $"  … and {suspect.Total - suspect.Items.Count} more (GET /api/connections?state=suspect)");
        }
        text.AppendLine();

        if (probes is { Count: > 0 })
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"PROBES ({probes.Count(p => p.State == ProbeState.Up)} of {probes.Count} up)");
            Table(text, ["name", "kind", "endpoint", "state", "latency", "last error"],
                probes.Select(p => new[]
                {
                    p.Name, p.Kind, p.Endpoint, p.State.ToWireName(),
                    p.LastLatencyMs is { } ms ? $"{ms:F1} ms" : "-", p.LastError ?? "",
                }).ToArray());
            text.AppendLine();
        }

        if (alerts is null)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"ACTIVE ALERTS: unknown ({alertsProblem})");
        }
        else
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"ACTIVE ALERTS ({alerts.Active.Count})");
            if (alerts.Active.Count == 0) text.AppendLine("  none");
            else Table(text, ["severity", "rule", "value", "peak", "threshold", "raised", "message"],
                alerts.Active.Select(a => new[]
                {
                    a.Severity.ToString().ToLowerInvariant(), a.Rule, Number(a.Value), Number(a.Peak), Number(a.Threshold), Ago(now - a.RaisedAt), a.Message,
                }).ToArray());
        }
        return text.ToString();
    }

    private static void Table(StringBuilder text, IReadOnlyList<string> headers, IReadOnlyList<string[]> rows)
    {
        var widths = headers.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        void Row(IReadOnlyList<string> cells) =>
            text.AppendLine(("  " + string.Join("  ", cells.Select((c, i) => i == cells.Count - 1 ? c : c.PadRight(widths[i])))).TrimEnd());
        Row(headers.Select(h => h.ToUpperInvariant()).ToArray());
        foreach (var row in rows) Row(row);
    }

    private static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Number(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    private static string Bytes(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F1} KiB"),
        < 1024L * 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024):F1} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024 * 1024):F1} GiB"),
    };

    private static string Ago(TimeSpan age) => age.TotalSeconds switch
    {
        < 1 => "now",
        < 120 => string.Create(CultureInfo.InvariantCulture, $"{age.TotalSeconds:F0} s ago"),
        < 7200 => string.Create(CultureInfo.InvariantCulture, $"{age.TotalMinutes:F0} min ago"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{age.TotalHours:F1} h ago"),
    };
}
