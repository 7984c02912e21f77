using System.Globalization;
using Akka.Configuration;
using Supervisor.Configuration;
using Supervisor.Connections;

namespace Supervisor.Hosting;

/// <summary>
/// The options of <see cref="SupervisorHosting.WithConnectionSupervisor(Akka.Hosting.AkkaConfigurationBuilder, Action{ConnectionSupervisorOptions})"/>.
/// The properties set here are the strongest layer; then <see cref="Hocon"/> and <see cref="Config"/>; then the profile;
/// then the shipped defaults (hocon/supervisor.conf documents every key, its unit and its default).
/// </summary>
public sealed class ConnectionSupervisorOptions
{
    /// <summary>HOCON text with <c>supervisor { ... }</c> keys (any key of hocon/supervisor.conf); null: none.</summary>
    public string? Hocon { get; set; }

    /// <summary>Parsed HOCON with <c>supervisor { ... }</c> keys, under <see cref="Hocon"/>; null: none.</summary>
    public Config? Config { get; set; }

    /// <summary>The scenario profile: <c>web-service</c> (the default), <c>realtime-game</c>, <c>iot-device</c>, <c>database-connection</c>.</summary>
    public string? Profile { get; set; }

    /// <summary>The address the TCP listener binds (<c>supervisor.tcp.host</c>); null: the configured one.</summary>
    public string? Host { get; set; }

    /// <summary>The TCP listener's port (<c>supervisor.tcp.port</c>), 0 for one the kernel picks; null: the configured one.</summary>
    public int? Port { get; set; }

    /// <summary>How often peers are expected to send a heartbeat (<c>supervisor.heartbeat.interval</c>); null: the profile's.</summary>
    public TimeSpan? HeartbeatInterval { get; set; }

    /// <summary>The silence after which a peer is closed with <c>heartbeat-timeout</c> (<c>supervisor.heartbeat.timeout</c>); null: the profile's.</summary>
    public TimeSpan? HeartbeatTimeout { get; set; }

    /// <summary>The application's connection handler; null: a <see cref="Connections.ConnectionHandler"/> from the container, else the echo handler.</summary>
    public Connections.ConnectionHandler? Handler { get; set; }

    /// <summary>The layered configuration these options describe; throws <see cref="ConfigurationError"/> for a key or value it refuses.</summary>
    internal Config Build()
    {
        var fromCode = new List<string>();
        if (Host is not null) fromCode.Add($"supervisor.tcp.host = \"{Host}\"");
        if (Port is { } port) fromCode.Add(string.Create(CultureInfo.InvariantCulture, $"supervisor.tcp.port = {port}"));
        if (HeartbeatInterval is { } interval) fromCode.Add(string.Create(CultureInfo.InvariantCulture, $"supervisor.heartbeat.interval = {interval.TotalMilliseconds}ms"));
        if (HeartbeatTimeout is { } timeout) fromCode.Add(string.Create(CultureInfo.InvariantCulture, $"supervisor.heartbeat.timeout = {timeout.TotalMilliseconds}ms"));
        var text = string.Join("\n", fromCode.Prepend(Hocon ?? ""));
        return SupervisorConfig.Build(text, Profile, "WithConnectionSupervisor", Config);
    }
}
