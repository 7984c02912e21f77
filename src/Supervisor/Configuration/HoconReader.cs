using Akka.Configuration;

namespace Supervisor.Configuration;

/// <summary>
/// Typed reads of HOCON values where every failure is a <see cref="ConfigurationError"/> naming the full
/// key (<c>prefix</c> + key) and the value found.
/// </summary>
internal static class HoconReader
{
    public static string Key(string? prefix, string key) => prefix is null ? key : $"{prefix}.{key}";

    public static string Raw(Config config, string key)
    {
        try { return config.GetString(key) ?? "(unset)"; }
        catch (Exception) { return "(not a value)"; }
    }

    public static T Read<T>(Config config, string key, string? prefix, string expected, Func<T> read)
    {
        if (!config.HasPath(key))
            throw new ConfigurationError(Key(prefix, key), "is missing");
        try
        {
            return read();
        }
        catch (Exception e) when (e is not ConfigurationError)
        {
            throw new ConfigurationError(Key(prefix, key), $"'{Raw(config, key)}' is not {expected}");
        }
    }

    public static string ReadString(Config c, string key, string? prefix = null) => Read(c, key, prefix, "a string", () => c.GetString(key));

    public static bool ReadBool(Config c, string key, string? prefix = null) => Read(c, key, prefix, "on or off", () => c.GetBoolean(key));

    public static int ReadInt(Config c, string key, string? prefix = null) => Read(c, key, prefix, "an integer", () => c.GetInt(key));

    public static int ReadSize(Config c, string key, string? prefix)
    {
        var bytes = Read(c, key, prefix, "a size such as 64KiB", () => c.GetByteSize(key) ?? throw new FormatException());
        if (bytes is < 1 or > int.MaxValue)
            throw new ConfigurationError(Key(prefix, key), $"{bytes} is out of range");
        return (int)bytes;
    }

    public static TimeSpan ReadPositiveDuration(Config c, string key, string? prefix = null)
    {
        RequireUnit(c, key, prefix);
        var value = Read(c, key, prefix, "a duration such as 30s", () => c.GetTimeSpan(key, null, allowInfinite: false));
        if (value <= TimeSpan.Zero)
            throw new ConfigurationError(Key(prefix, key), $"{Raw(c, key)} must be a positive duration");
        return value;
    }

    /// <summary>HOCON reads a bare number as milliseconds: <c>interval = 5</c> would be 5 ms, so a duration needs its unit.</summary>
    public static void RequireUnit(Config c, string key, string? prefix)
    {
        var raw = Raw(c, key).Trim();
        if (raw.Length > 0 && double.TryParse(raw, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _))
            throw new ConfigurationError(Key(prefix, key), $"'{raw}' needs a unit (ms, s, m, h), e.g. {raw}s");
    }

    /// <summary>Whether an optional limit is switched off (<c>off</c>, <c>false</c> or <c>no</c>).</summary>
    public static bool IsOff(Config c, string key) => Raw(c, key) is "off" or "false" or "no";

    public static TimeSpan? ReadOptionalDuration(Config c, string key, string? prefix) =>
        IsOff(c, key) ? null : ReadPositiveDuration(c, key, prefix);

    /// <summary>The kernel takes keep-alive times in whole seconds; anything else would be silently rounded.</summary>
    public static TimeSpan ReadWholeSeconds(Config c, string key, string? prefix)
    {
        var value = ReadPositiveDuration(c, key, prefix);
        if (value.Ticks % TimeSpan.TicksPerSecond != 0 || value.TotalSeconds > 32767)
            throw new ConfigurationError(Key(prefix, key), $"{Raw(c, key)} must be whole seconds between 1s and 32767s");
        return value;
    }

    public static double ReadDouble(Config c, string key, string? prefix = null) => Read(c, key, prefix, "a number", () => c.GetDouble(key));
}
