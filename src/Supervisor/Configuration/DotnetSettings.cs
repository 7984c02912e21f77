using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Akka.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Configuration.Json;

namespace Supervisor.Configuration;

/// <summary>
/// Settings from Microsoft.Extensions.Configuration, as .NET users give them: environment variables
/// (<c>Supervisor__Tcp__Port=9123</c>), <c>appsettings.json</c> and <c>appsettings.{DOTNET_ENVIRONMENT}.json</c>
/// in the working directory (<c>{"Supervisor": {"Heartbeat": {"Interval": "5s"}}}</c>). They are layered
/// over the operator's HOCON file (DESIGN §4): environment over appsettings over the file. Section names
/// may be PascalCase (<c>MaxFrameLength</c>) or the HOCON key itself (<c>max-frame-length</c>); a key the
/// supervisor does not know stops start-up naming the variable or file it came from.
/// </summary>
internal static partial class DotnetSettings
{
    public const string Section = "Supervisor";

    /// <summary>The sources named above, read from <paramref name="directory"/>.</summary>
    public static IConfigurationRoot Load(string directory)
    {
        var environment = System.Environment.GetEnvironmentVariable("DOTNET_ENVIRONMENT")
                          ?? System.Environment.GetEnvironmentVariable("ASPNETCORE_ENVIRONMENT") ?? "Production";
        return new ConfigurationBuilder()
            .SetBasePath(directory)
            .AddJsonFile("appsettings.json", optional: true, reloadOnChange: false)
            .AddJsonFile($"appsettings.{environment}.json", optional: true, reloadOnChange: false)
            .AddEnvironmentVariables()
            .Build();
    }

    /// <summary>
    /// The <c>Supervisor</c> section as HOCON under <c>supervisor</c>, or null when there is none; every
    /// value is a string, as HOCON gives environment variables (it reads "9123" as a number, "30s" as a duration).
    /// </summary>
    public static Overrides? Read(IConfigurationRoot configuration)
    {
        var section = configuration.GetSection(Section);
        if (!section.Exists()) return null;
        var text = new StringBuilder();
        var origins = new Dictionary<string, string>(StringComparer.Ordinal);
        Append(section, ["supervisor"], text, origins, configuration);
        if (text.Length == 0) return null;
        try
        {
            return new Overrides(ConfigurationFactory.ParseString(text.ToString()), origins);
        }
        catch (Exception e) when (e is not ConfigurationError)
        {
            throw new ConfigurationError(Section, $"cannot be read as settings: {e.Message.Split('\n')[0]}");
        }
    }

    private static void Append(IConfigurationSection section, List<string> path, StringBuilder text,
        Dictionary<string, string> origins, IConfigurationRoot root)
    {
        var children = section.GetChildren().ToArray();
        foreach (var child in children)
        {
            var key = HoconKey(child.Key);
            var childPath = new List<string>(path) { key };
            var grandchildren = child.GetChildren().ToArray();
            if (grandchildren.Length == 0)
            {
                if (child.Value is null) continue;
                Line(text, childPath, JsonSerializer.Serialize(child.Value));
                origins[string.Join('.', childPath)] = Origin(child.Path, root);
            }
            else if (grandchildren.All(g => int.TryParse(g.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _) && g.Value is not null && !g.GetChildren().Any()))
            {
                // An array (Items__0, Items__1, or a JSON array): a HOCON list, in index order.
                var items = grandchildren.OrderBy(g => int.Parse(g.Key, CultureInfo.InvariantCulture)).Select(g => JsonSerializer.Serialize(g.Value));
                Line(text, childPath, "[" + string.Join(", ", items) + "]");
                origins[string.Join('.', childPath)] = Origin(child.Path, root);
            }
            else
            {
                Append(child, childPath, text, origins, root);
            }
        }
    }

    private static void Line(StringBuilder text, List<string> path, string value) =>
        text.Append(string.Join('.', path.Select(p => JsonSerializer.Serialize(p)))).Append(" = ").Append(value).Append('\n');

    /// <summary><c>MaxFrameLength</c> → <c>max-frame-length</c>; a key already in HOCON's spelling stays as it is.</summary>
    public static string HoconKey(string key) => PascalBoundary().Replace(key, "$1-$2").ToLowerInvariant();

    [GeneratedRegex("([a-z0-9])([A-Z])")]
    private static partial Regex PascalBoundary();

    /// <summary>Where an operator set <paramref name="path"/>: the environment variable's name, or the file and key.</summary>
    private static string Origin(string path, IConfigurationRoot root)
    {
        foreach (var provider in root.Providers.Reverse())
        {
            if (!provider.TryGet(path, out _)) continue;
            return provider switch
            {
                EnvironmentVariablesConfigurationProvider => path.Replace(":", "__", StringComparison.Ordinal),
                JsonConfigurationProvider json => $"{json.Source.Path}: {path}",
                _ => path,
            };
        }
        return path;
    }

    /// <param name="Config">The settings under <c>supervisor</c>.</param>
    /// <param name="Origins">For each HOCON key, the variable or file entry it came from.</param>
    public sealed record Overrides(Config Config, IReadOnlyDictionary<string, string> Origins)
    {
        /// <summary>The same problem, named by where the operator wrote the key (a key's parent block counts too).</summary>
        public ConfigurationError Rename(ConfigurationError error)
        {
            if (Origins.TryGetValue(error.Key, out var origin))
                return new ConfigurationError(origin, error.Problem);
            var below = Origins.FirstOrDefault(o => o.Key.StartsWith(error.Key + ".", StringComparison.Ordinal));
            return below.Value is null ? error : new ConfigurationError($"{below.Value} ({error.Key})", error.Problem);
        }
    }
}
