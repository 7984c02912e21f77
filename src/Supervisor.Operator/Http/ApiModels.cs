using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;

namespace Supervisor.Http;

/// <summary>JSON as the API writes it: camelCase names, enums as kebab-case strings (<c>"suspect"</c>, <c>"warning"</c>).</summary>
internal static class ApiJson
{
    public static JsonSerializerOptions Options { get; } = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower));
        return options;
    }
}

/// <summary>An error the API answers with, e.g. <c>{"error":"no connection c9"}</c>.</summary>
internal sealed record ApiError(string Error);

/// <summary>One page of the connection table (<c>GET /api/connections</c>).</summary>
/// <param name="Total">Connections that match the filter, on every page.</param>
/// <param name="Offset">Index of the first item within the matches.</param>
/// <param name="Limit">The page size asked for; null: no limit.</param>
/// <param name="Items">The page, oldest connection first.</param>
internal sealed record ConnectionPage(int Total, int Offset, int? Limit, IReadOnlyList<ConnectionStatus> Items)
{
    /// <summary>Cluster nodes that did not answer in time: their connections are missing from <c>Total</c> and <c>Items</c>.</summary>
    public IReadOnlyList<string> Unanswered { get; init; } = [];

    /// <summary>True when some node's connections are missing (see <see cref="Unanswered"/>).</summary>
    public bool Partial => Unanswered.Count > 0;
}

/// <summary>
/// Totals (<c>GET /api/stats</c>); <c>closedByReason</c> names every close reason, zeros included, and <c>closedByCause</c> every
/// cause of a <c>heartbeat-timeout</c> close (DESIGN §3, "Cause of death"), zeros included. Inbound connections:
/// accepted = active + closed, refusals included in both (<c>refused</c> of them); outbound ones in <c>outbound</c> (DESIGN §3, "One lifecycle").
/// </summary>
internal sealed record StatsView(
    long Active,
    long Accepted,
    long Closed,
    IReadOnlyDictionary<string, long> ClosedByReason,
    long Heartbeats,
    long BytesIn,
    long BytesOut,
    long Refused,
    RegistryProtocol.OutboundTotals Outbound,
    IReadOnlyDictionary<string, long> ClosedByCause)
{
    public static StatsView Of(RegistryProtocol.Stats stats)
    {
        var byReason = new Dictionary<string, long>();
        foreach (var reason in CloseReasons.All)
            byReason[reason.ToWireName()] = stats.Closed(reason);
        var byCause = new Dictionary<string, long>();
        foreach (var cause in SilenceCauses.All)
            byCause[cause.ToWireName()] = stats.ClosedByCause?.GetValueOrDefault(cause.ToWireName()) ?? 0;
        return new StatsView(stats.Active, stats.Accepted, byReason.Values.Sum(), byReason, stats.Heartbeats, stats.BytesIn, stats.BytesOut,
            stats.Refused, stats.Outbound, byCause);
    }
}

/// <summary>
/// Server-side filtering and paging of the connection table: <c>?state=suspect,closing&amp;protocol=ws&amp;listener=tcp&amp;offset=100&amp;limit=50</c>.
/// </summary>
internal sealed record ConnectionQuery(
    IReadOnlySet<ConnectionState>? States,
    string? Protocol,
    string? Listener,
    int Offset,
    int? Limit)
{
    /// <summary>Parses the query string; a bad value is an error naming the parameter.</summary>
    /// <param name="defaultLimit">The page size when none is asked for; null: every match.</param>
    /// <param name="maxLimit">The largest page served.</param>
    public static (ConnectionQuery? Query, string? Error) Parse(IQueryCollection query, int? defaultLimit, int maxLimit)
    {
        HashSet<ConnectionState>? states = null;
        if (query["state"].ToString() is { Length: > 0 } stateText)
        {
            states = [];
            foreach (var name in stateText.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                var match = Enum.GetValues<ConnectionState>().Where(s => JsonNamingPolicy.KebabCaseLower.ConvertName(s.ToString()) == name).ToArray();
                if (match.Length == 0)
                    return (null, $"state: '{name}' is not one of {string.Join(", ", Enum.GetValues<ConnectionState>().Select(s => JsonNamingPolicy.KebabCaseLower.ConvertName(s.ToString())))}");
                states.Add(match[0]);
            }
        }
        if (!TryInt(query, "offset", 0, int.MaxValue, out var offset, out var error)) return (null, error);
        int? limit = defaultLimit;
        if (query.ContainsKey("limit"))
        {
            if (!TryInt(query, "limit", 1, maxLimit, out var asked, out error)) return (null, error);
            limit = asked;
        }
        var protocol = query["protocol"].ToString();
        var listener = query["listener"].ToString();
        return (new ConnectionQuery(states, protocol.Length > 0 ? protocol : null, listener.Length > 0 ? listener : null, offset ?? 0, limit), null);
    }

    private static bool TryInt(IQueryCollection query, string name, int min, int max, out int? value, out string? error)
    {
        value = null;
        error = null;
        var text = query[name].ToString();
        if (text.Length == 0) return true;
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) || parsed < min || parsed > max)
        {
            error = $"{name}: '{text}' is not an integer in {min}-{max}";
            return false;
        }
        value = parsed;
        return true;
    }

    public ConnectionFilter Filter => new(States?.ToArray(), Protocol, Listener);

    /// <summary>How many of the first matches each shard and node must send for this page.</summary>
    public int? Take => Limit is { } limit ? (int)Math.Min(int.MaxValue, (long)Offset + limit) : null;

    /// <summary>This page of an answer to <see cref="RegistryProtocol.QueryConnections"/> asked with <see cref="Take"/>.</summary>
    public ConnectionPage PageOf(RegistryProtocol.ConnectionsPage answer) =>
        new(answer.Matching, Offset, Limit, answer.Items.Skip(Offset).ToArray()) { Unanswered = answer.Unanswered };
}
