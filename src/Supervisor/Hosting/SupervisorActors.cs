namespace Supervisor.Hosting;

/// <summary>
/// Keys of the actors an embedder may talk to, for <c>IRequiredActor&lt;T&gt;</c> (Akka.Hosting) or
/// <c>ActorRegistry.Get&lt;T&gt;()</c>, registered by
/// <see cref="SupervisorHosting.WithConnectionSupervisor(Akka.Hosting.AkkaConfigurationBuilder, Action{ConnectionSupervisorOptions})"/>.
/// Their messages are in the ConnectionSupervisor.Messages package.
/// </summary>
public static class SupervisorActors
{
    /// <summary>The connection registry: <c>RegistryProtocol.GetStats</c>, <c>QueryConnections</c> (filtered pages of the connection table).</summary>
    public sealed class Registry
    {
        private Registry() { }
    }

    /// <summary>The monitor: <c>MonitorProtocol.GetAlerts</c> (active alerts and their history).</summary>
    public sealed class Monitor
    {
        private Monitor() { }
    }

    /// <summary>The connection supervisor: <c>ConnectionCommands.CloseConnection</c>, <c>GetStatus</c> of one live connection by id.</summary>
    public sealed class Connections
    {
        private Connections() { }
    }
}
