namespace Supervisor.Configuration;

/// <summary>A configuration that cannot run; <see cref="Exception.Message"/> is the one line operators see.</summary>
public sealed class ConfigurationError(string key, string problem)
    : Exception($"bad configuration: {key}: {problem}")
{
    public string Key { get; } = key;
}
