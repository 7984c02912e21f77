namespace Supervisor.Hosting;

// Keys in the ActorRegistry under which the feature packages register their actors, so that the core and the
// operator surface find them without a reference to those packages (issue 13: the dependency points inward).

/// <summary>
/// The cluster's ledger (ConnectionSupervisor.Cluster): the registry shards tell it every open and close, in order, and
/// the operator surface asks it the registry's questions for the whole cluster. Registered before
/// <see cref="SupervisorHosting"/> starts the registry; absent on a single node.
/// </summary>
internal sealed class ClusterLedger
{
    private ClusterLedger() { }
}

/// <summary>The cluster-wide monitor's proxy (ConnectionSupervisor.Cluster): the cluster's alerts. Absent on a single node.</summary>
internal sealed class ClusterAlerts
{
    private ClusterAlerts() { }
}

/// <summary>The dependency probes (ConnectionSupervisor.Probes), asked for their states by the operator surface.</summary>
internal sealed class ProbeReports
{
    private ProbeReports() { }
}
