namespace Supervisor.Configuration;

/// <summary>A configuration that cannot run; <see cref="Exception.Message"/> is the one line operators see.</summary>
public sealed class ConfigurationError(string key, string problem)
    : Exception($"bad configuration: {key}: {problem}")
{
    /// <summary>The key, option, or file:line:column the problem is at.</summary>
    public string Key { get; } = key;

    /// <summary>What is wrong there.</summary>
    public string Problem { get; } = problem;
}
