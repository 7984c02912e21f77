using Akka.Configuration;
using Akka.Configuration.Hocon;

namespace Supervisor.Configuration;

/// <summary>
/// Refuses keys the supervisor does not know. The reference configuration is the schema: every key it
/// has is known, blocks are blocks and values are values. A typo (<c>tcp.hots</c>) would otherwise be
/// ignored and its default used (0.0.0.0), so it is an error that names the key and the nearest known one.
/// Named entries (listeners, rules, probes) take the keys of their kind; <c>akka</c> is Akka's own.
/// </summary>
internal static class ConfigSchema
{
    private static readonly string[] RuleKeys = ["metric", "window", "raise-above", "clear-below", "for", "severity"];
    private static readonly string[] ProbeKeys = ["kind", "endpoint", "interval", "timeout", "rise", "fall"];

    /// <summary>Throws <see cref="ConfigurationError"/> for the first key of <paramref name="config"/> the reference does not know.</summary>
    public static void Check(Config config, Config reference)
    {
        var root = config.Root;
        if (!root.IsObject()) return;
        var referenceSupervisor = reference.GetValue("supervisor").GetObject();
        foreach (var (key, value) in root.GetObject().Items)
        {
            switch (key)
            {
                case "akka":
                    break;
                case "supervisor":
                    if (!value.IsObject())
                        throw new ConfigurationError("supervisor", $"must be a block of settings, not '{Text(value)}'");
                    CheckObject(value.GetObject(), referenceSupervisor, "supervisor", referenceSupervisor);
                    break;
                default:
                    throw Unknown(key, key, ["supervisor", "akka"]);
            }
        }
    }

    private static void CheckObject(HoconObject given, HoconObject known, string path, HoconObject supervisor)
    {
        foreach (var (key, value) in given.Items)
        {
            var keyPath = $"{path}.{key}";
            if (!known.Items.TryGetValue(key, out var schema))
                throw Unknown(keyPath, key, known.Items.Keys);
            CheckValue(value, schema, keyPath, supervisor);
        }
    }

    private static void CheckValue(HoconValue value, HoconValue schema, string path, HoconObject supervisor)
    {
        if (NamedEntries(path, supervisor) is { } entry)
        {
            if (!value.IsObject())
                throw new ConfigurationError(path, $"must be a block of named entries, not '{Text(value)}'");
            foreach (var (name, item) in value.GetObject().Items)
            {
                if (!item.IsObject())
                    throw new ConfigurationError($"{path}.{name}", $"must be a block {{ ... }}, not '{Text(item)}'");
                CheckEntry(item.GetObject(), entry, $"{path}.{name}", supervisor);
            }
            return;
        }
        if (schema.IsObject())
        {
            if (!value.IsObject())
                throw new ConfigurationError(path, $"must be a block {{ ... }}, not '{Text(value)}'");
            var known = schema.GetObject();
            // The WebSocket listener also takes the keys it shares with TCP listeners (limits, keep-alive, tls),
            // not the PROXY protocol, which is read off a raw TCP socket before any transport exists.
            if (path == "supervisor.websocket") known = Union(known, supervisor.Items["tcp"].GetObject(), except: "proxy-protocol");
            CheckObject(value.GetObject(), known, path, supervisor);
        }
        else if (value.IsObject())
        {
            throw new ConfigurationError(path, "is a value, not a block");
        }
    }

    /// <summary>The keys an entry of a named section takes, or null when <paramref name="path"/> is no such section.</summary>
    private static Entry? NamedEntries(string path, HoconObject supervisor) => path switch
    {
        "supervisor.listeners" => new Entry(supervisor.Items["tcp"].GetObject(), Listener: true),
        "supervisor.monitor.rules" or "supervisor.cluster.monitor.rules" => new Entry(Keys(RuleKeys), Listener: false),
        "supervisor.probes" => new Entry(Keys(ProbeKeys), Listener: false),
        _ => null,
    };

    private static void CheckEntry(HoconObject given, Entry entry, string path, HoconObject supervisor)
    {
        foreach (var (key, value) in given.Items)
        {
            var keyPath = $"{path}.{key}";
            if (entry.Listener && key == "profile") continue;
            if (entry.Listener && key == "heartbeat")
            {
                CheckValue(value, supervisor.Items["heartbeat"], keyPath, supervisor);
                continue;
            }
            if (!entry.Keys.Items.TryGetValue(key, out var schema))
            {
                var known = entry.Keys.Items.Keys.Concat(entry.Listener ? ["profile", "heartbeat"] : []);
                throw Unknown(keyPath, key, known);
            }
            CheckValue(value, schema, keyPath, supervisor);
        }
    }

    private static HoconObject Union(HoconObject first, HoconObject second, string except)
    {
        var union = new HoconObject();
        foreach (var (key, value) in second.Items)
            if (key != except) union.Items[key] = value;
        foreach (var (key, value) in first.Items) union.Items[key] = value;
        return union;
    }

    private sealed record Entry(HoconObject Keys, bool Listener);

    private static HoconObject Keys(IEnumerable<string> names)
    {
        var keys = new HoconObject();
        foreach (var name in names) keys.GetOrCreateKey(name).AppendValue(new HoconLiteral { Value = "" });
        return keys;
    }

    private static ConfigurationError Unknown(string path, string key, IEnumerable<string> known)
    {
        var nearest = known
            .Select(k => (Key: k, Distance: Distance(key, k)))
            .Where(k => k.Distance <= Math.Max(2, key.Length / 3))
            .OrderBy(k => k.Distance).ThenBy(k => k.Key, StringComparer.Ordinal)
            .Select(k => k.Key)
            .FirstOrDefault();
        var parent = path.Contains('.') ? path[..path.LastIndexOf('.')] + "." : "";
        return new ConfigurationError(path, nearest is null
            ? "is not a known key"
            : $"is not a known key; did you mean {parent}{nearest}?");
    }

    private static string Text(HoconValue value)
    {
        try { return value.ToString().Trim(); }
        catch (Exception) { return "(a value)"; }
    }

    /// <summary>Levenshtein distance (edits that turn one key into the other).</summary>
    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) previous[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
