using System.Reflection;

namespace Supervisor.Monitoring;

/// <summary>
/// Who this process is to the tools that collect from it: the OpenTelemetry resource (<c>service.name</c>,
/// <c>service.instance.id</c>, shown as Prometheus's <c>target_info</c>) and the Alertmanager labels.
/// </summary>
internal static class ServiceIdentity
{
    /// <summary>The service's name: the name of its systemd unit and of its Alertmanager <c>service</c> label.</summary>
    public const string Name = "connection-supervisor";

    public static string? Version { get; } =
        typeof(ServiceIdentity).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;

    /// <summary>
    /// The platform's own meters, built into .NET and ASP.NET Core (no instrumentation package): the runtime
    /// (GC, thread pool, JIT, exceptions, process CPU time and working set), the HTTP server and Kestrel's
    /// connections (the operator surface and the WebSocket listener), and the HTTP client and DNS that the
    /// probes, webhook and Alertmanager sinks use.
    /// </summary>
    public static readonly string[] PlatformMeters =
    [
        "System.Runtime",
        "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Server.Kestrel",
        "System.Net.Http",
        "System.Net.NameResolution",
    ];

    /// <summary>
    /// Instruments exported to Prometheus under another name (OpenTelemetry views). Their convention names end in
    /// <c>.count</c> and are gauges, and a Prometheus gauge named <c>*_count</c> collides with a histogram's count
    /// series (<c>promtool check metrics</c> refuses it). The descriptors take the names of Prometheus's own process
    /// collector (<c>process_open_fds</c>, <c>process_max_fds</c>), which existing dashboards and rules use.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> PrometheusNames = new Dictionary<string, string>
    {
        ["process.unix.file_descriptor.count"] = "process.open_fds",
        ["process.unix.file_descriptor.limit"] = "process.max_fds",
        ["dotnet.assembly.count"] = "dotnet.assembly.loaded",
        ["dotnet.process.cpu.count"] = "dotnet.process.cpu.available",
        ["dotnet.timer.count"] = "dotnet.timer.active",
    };

    /// <summary>
    /// Unique among the instances of the service: a cluster node's address, else the host and the operator port
    /// (two processes on one host cannot share it).
    /// </summary>
    public static string InstanceId(Configuration.SupervisorSettings settings, int httpPort) =>
        settings.Cluster.Enabled ? $"{settings.Cluster.Hostname}:{settings.Cluster.Port}" : $"{Environment.MachineName}:{httpPort}";
}
