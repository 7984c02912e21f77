using Akka.Actor;
using Akka.Configuration;
using Akka.Dispatch;

namespace Supervisor.Connections;

/// <summary>
/// Where connection actors run: on the thread that hands them their message. The transport's read loop
/// frames a heartbeat and tells its connection; with this dispatcher the connection answers on that same
/// thread instead of waking another thread-pool thread for it, which was the largest cost of a heartbeat
/// after the socket calls themselves (bench/README.md, issue 7). The mailbox still admits one thread at
/// a time, so the actor model holds; what changes is only that a connection actor, and so a data
/// handler, may run on a socket or timer thread, which is why neither may ever block.
/// </summary>
internal static class ConnectionDispatcher
{
    /// <summary>The dispatcher id, known to a system once <see cref="Deploy"/> ran on it.</summary>
    public const string Id = "supervisor.connection-dispatcher";

    private static readonly Config Definition = ConfigurationFactory.ParseString($$"""
        {{Id}} {
          type = "{{typeof(InlineDispatcherConfigurator).FullName}}, {{typeof(InlineDispatcherConfigurator).Assembly.GetName().Name}}"
          # A connection drains its whole mailbox in one turn; there is nobody to be fair to on its thread.
          throughput = 1000000
          throughput-deadline-time = 0ms
        }
        {{ConnectionMailbox.Id}} {
          mailbox-type = "{{typeof(ConnectionMailbox).FullName}}, {{typeof(ConnectionMailbox).Assembly.GetName().Name}}"
        }
        """);

    /// <summary>Makes the connection dispatcher and mailbox known to the system (idempotent) and returns their deployment.</summary>
    public static Deploy Deploy(ActorSystem system)
    {
        if (!system.Settings.Config.HasPath(Id))
            system.Settings.InjectTopLevelFallback(Definition);
        return Akka.Actor.Deploy.Local.WithMailbox(ConnectionMailbox.Id).WithDispatcher(Id);
    }
}

/// <summary>Configures the inline dispatcher of <see cref="ConnectionDispatcher"/>.</summary>
internal sealed class InlineDispatcherConfigurator : MessageDispatcherConfigurator
{
    private readonly MessageDispatcher _dispatcher;

    public InlineDispatcherConfigurator(Config config, IDispatcherPrerequisites prerequisites) : base(config, prerequisites) =>
        _dispatcher = new InlineDispatcher(this);

    public override MessageDispatcher Dispatcher() => _dispatcher;

    private sealed class InlineDispatcher(MessageDispatcherConfigurator configurator) : MessageDispatcher(configurator)
    {
        protected override void ExecuteTask(IRunnable run) => run.Run();

        protected override void Shutdown()
        {
        }
    }
}
