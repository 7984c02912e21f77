using Akka.Actor;
using Akka.Hosting;
using Supervisor.Connections;
using Supervisor.Hosting;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Registry;

namespace Supervisor.Http;

/// <summary>The actor system is not there to answer (starting, stopped, or a query timed out).</summary>
internal sealed class ServiceUnavailable(string message, Exception? cause = null) : Exception(message, cause);

/// <summary>
/// Every question the HTTP side asks the actors, by message (the registry for tables and totals, the
/// connection supervisor for one live connection, the monitor for alerts). In a cluster the same messages go
/// to this node's cluster ledger (<see cref="ClusterLedger"/>), which answers for every node. Failures become
/// <see cref="ServiceUnavailable"/>, which the routes answer with 503.
/// </summary>
internal sealed class SupervisorQueries(ActorRegistry actors, ActorSystem system, Configuration.SupervisorSettings settings)
{
    public static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long a connection actor may take to report its TCP_INFO before it is shown as not answering.</summary>
    public static readonly TimeSpan TcpInfoTimeout = TimeSpan.FromSeconds(2);

    /// <summary>True when this node is a cluster member: registry questions are then answered for the whole cluster.</summary>
    public bool IsCluster => actors.TryGet<ClusterLedger>(out _);

    public Task<RegistryProtocol.Stats> StatsAsync(CancellationToken cancel) =>
        IsCluster
            ? AskAsync<ClusterLedger, RegistryProtocol.Stats>(RegistryProtocol.GetStats.Instance, cancel)
            : AskAsync<ConnectionRegistry, RegistryProtocol.Stats>(RegistryProtocol.GetStats.Instance, cancel);

    /// <summary>Membership as this node sees it; a single node answers with itself and <c>Enabled</c> false.</summary>
    public async Task<ClusterProtocol.ClusterView> ClusterAsync(CancellationToken cancel)
    {
        if (IsCluster)
            return await AskAsync<ClusterLedger, ClusterProtocol.ClusterView>(ClusterProtocol.GetClusterView.Instance, cancel);
        var stats = await StatsAsync(cancel);
        return new ClusterProtocol.ClusterView(false, "local", null, null,
            [new ClusterProtocol.MemberView("local", "up", true, [], stats.Active, true)], []);
    }

    /// <summary>
    /// The singleton cluster monitor's counters, asked of it wherever it runs; null when this node is no cluster member, and
    /// while the singleton moves or does not answer within <c>cluster.query-timeout</c> (the view answers without them).
    /// </summary>
    public async Task<ClusterProtocol.MonitorCounts?> ClusterMonitorCountsAsync(CancellationToken cancel)
    {
        if (!actors.TryGet<ClusterAlerts>(out _)) return null;
        try
        {
            var counters = await AskAsync<ClusterAlerts, MonitorProtocol.Counters>(MonitorProtocol.GetCounters.Instance, cancel, settings.Cluster.QueryTimeout);
            return new ClusterProtocol.MonitorCounts(counters.Active, counters.Accepted, counters.ClosedByReason, counters.Refused);
        }
        catch (ServiceUnavailable)
        {
            return null;
        }
    }

    /// <summary>One filtered page of the connection table (of the whole cluster, in a cluster): the filter and the page bound go to every registry shard and node.</summary>
    public async Task<ConnectionPage> ConnectionPageAsync(ConnectionQuery query, CancellationToken cancel)
    {
        var ask = new RegistryProtocol.QueryConnections(query.Filter, query.Take);
        return query.PageOf(IsCluster
            ? await AskAsync<ClusterLedger, RegistryProtocol.ConnectionsPage>(ask, cancel)
            : await AskAsync<ConnectionRegistry, RegistryProtocol.ConnectionsPage>(ask, cancel));
    }

    /// <summary>The status of one live connection, asked of its actor now; null when there is none.</summary>
    public async Task<ConnectionStatus?> LiveStatusAsync(string id, CancellationToken cancel) =>
        (await AskConnectionsAsync<RegistryProtocol.ConnectionFound>(new ConnectionCommands.GetStatus(id), cancel)).Status;

    /// <summary>Closes one connection with <c>admin-closed</c> (on whichever node holds it); false when there is no such live connection.</summary>
    public async Task<bool> CloseAsync(string id, CancellationToken cancel) =>
        (await AskConnectionsAsync<ConnectionCommands.CloseAccepted>(new ConnectionCommands.CloseConnection(id, CloseReason.AdminClosed), cancel)).Found;

    /// <summary>The kernel's TCP_INFO of one connection, asked of its actor through the connection supervisor;
    /// <c>Info</c> is null when the connection is unknown or has no TCP socket.</summary>
    public Task<ConnectionCommands.TcpInfoReport> TcpInfoAsync(string id, CancellationToken cancel) =>
        AskConnectionsAsync<ConnectionCommands.TcpInfoReport>(new ConnectionCommands.GetTcpInfo(id), cancel);

    /// <summary>A question for one connection's actor: through this node's supervisor, or in a cluster to the node its id names.</summary>
    private Task<TReply> AskConnectionsAsync<TReply>(IConnectionCommand command, CancellationToken cancel) =>
        IsCluster ? AskAsync<ClusterLedger, TReply>(command, cancel) : AskAsync<ConnectionSupervisor, TReply>(command, cancel);

    /// <summary>Every configured dependency probe, from the probes actor; none when no probe is configured (the probes
    /// package is then not even loaded, so there is no actor to ask).</summary>
    public Task<ProbeProtocol.Probes> ProbesAsync(CancellationToken cancel) =>
        settings.Probes.Count == 0 && !actors.TryGet<ProbeReports>(out _)
            ? Task.FromResult(new ProbeProtocol.Probes([]))
            : AskAsync<ProbeReports, ProbeProtocol.Probes>(ProbeProtocol.GetProbes.Instance, cancel);

    /// <summary>
    /// Active alerts and their history, from this node's monitor and, in a cluster, the singleton cluster monitor
    /// (scope <c>cluster</c>). While the singleton moves to another node its alerts are left out rather than failing the answer.
    /// </summary>
    public async Task<MonitorProtocol.Alerts> AlertsAsync(CancellationToken cancel)
    {
        var local = AskAsync<MonitorActor, MonitorProtocol.Alerts>(MonitorProtocol.GetAlerts.Instance, cancel);
        if (!actors.TryGet<ClusterAlerts>(out _)) return await local;
        // Not the full ask timeout: while the singleton moves its proxy holds the question, and this node's own
        // alerts should not wait for it.
        var cluster = AskAsync<ClusterAlerts, MonitorProtocol.Alerts>(MonitorProtocol.GetAlerts.Instance, cancel, settings.Cluster.QueryTimeout);
        try
        {
            return await local + await cluster;
        }
        catch (ServiceUnavailable) when (local.IsCompletedSuccessfully)
        {
            return await local;
        }
    }

    /// <summary>Every TCP listener's binding; an endpoint is null once it has stopped accepting.</summary>
    public async Task<IReadOnlyList<TcpListenerActor.Binding>> BindingsAsync(CancellationToken cancel) =>
        (await AskAsync<TcpListenerActor, ListenerGroup.Bindings>(TcpListenerActor.GetBinding.Instance, cancel)).Items;

    private IActorRef Actor<TKey>()
    {
        if (system.WhenTerminated.IsCompleted)
            throw new ServiceUnavailable("the actor system has stopped");
        return actors.TryGet<TKey>(out var actor)
            ? actor
            : throw new ServiceUnavailable($"{typeof(TKey).Name} is not running");
    }

    private async Task<TReply> AskAsync<TKey, TReply>(object message, CancellationToken cancel, TimeSpan? timeout = null)
    {
        var actor = Actor<TKey>();
        var within = timeout ?? AskTimeout;
        try
        {
            return await actor.Ask<TReply>(message, within, cancel);
        }
        catch (AskTimeoutException e)
        {
            throw new ServiceUnavailable($"{typeof(TKey).Name} did not answer within {within.TotalSeconds:0.#} s", e);
        }
        catch (TimeoutException e)
        {
            // A registry gather whose shards did not all answer.
            throw new ServiceUnavailable(e.Message, e);
        }
    }
}
