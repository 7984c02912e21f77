using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Supervisor.Http;

/// <summary>
/// The service's host builder: an ASP.NET Core <see cref="WebApplicationBuilder"/> (Kestrel in the same host,
/// same DI container, same lifetime) when the operator HTTP surface or the WebSocket listener is on, a plain
/// generic host when both are off, so that <c>supervisor.http.enabled = off</c> with the WebSocket listener
/// off opens no HTTP port at all. Both expose the same <see cref="IHostApplicationBuilder"/> surface.
/// </summary>
internal sealed class SupervisorHostBuilder : IHostApplicationBuilder
{
    private readonly IHostApplicationBuilder _inner;
    private readonly Func<IHost> _build;

    private SupervisorHostBuilder(IHostApplicationBuilder inner, Func<IHost> build, bool isWebHost)
    {
        _inner = inner;
        _build = build;
        IsWebHost = isWebHost;
    }

    public static SupervisorHostBuilder Create(bool webHost)
    {
        if (webHost)
        {
            // The slim builder: Kestrel without HTTPS/HTTP3 and routing; endpoints come from OperatorSurface.
            var web = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = HostArgs });
            return new SupervisorHostBuilder(web, web.Build, isWebHost: true);
        }
        var plain = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = false, Args = HostArgs });
        return new SupervisorHostBuilder(plain, plain.Build, isWebHost: false);
    }

    /// <summary>
    /// What the service's hosts are started with in place of the command line (which the service parses itself):
    /// the default hosts' <c>appsettings.json</c> providers would otherwise watch for changes with a recursive
    /// file-system watcher on the working directory, one inotify watch per directory under it (347 for this
    /// repository; every directory of the machine for a service started in <c>/</c>) and a thread woken by every file
    /// written below it. The service reads its settings once, at start (<c>DotnetSettings</c>):
    /// nothing would use a change.
    /// </summary>
    public static readonly string[] HostArgs = ["--hostBuilder:reloadConfigOnChange=false"];

    /// <summary>True when <see cref="Build"/> makes a web application (Kestrel runs).</summary>
    public bool IsWebHost { get; }

    public IDictionary<object, object> Properties => _inner.Properties;
    public IConfigurationManager Configuration => _inner.Configuration;
    public IHostEnvironment Environment => _inner.Environment;
    public ILoggingBuilder Logging => _inner.Logging;
    public IMetricsBuilder Metrics => _inner.Metrics;
    public IServiceCollection Services => _inner.Services;

    public void ConfigureContainer<TContainerBuilder>(IServiceProviderFactory<TContainerBuilder> factory, Action<TContainerBuilder>? configure = null)
        where TContainerBuilder : notnull => _inner.ConfigureContainer(factory, configure);

    public IHost Build() => _build();
}
