using Akka.Actor;
using Supervisor.Messages.Protocol;

namespace Supervisor.Cluster;

/// <summary>
/// The operator's registry questions answered for the whole cluster: lists and totals gathered fresh from every
/// member that can answer (scatter-gather), the silent ones counted from their replicas, and a question about one
/// connection sent to the node its id names. Owned by one <see cref="ClusterRegistry"/> and called from its
/// handlers: everything a gather needs is read from the registry's state before the asks go out, and the answers
/// are combined from those values alone, never from the state the actor goes on changing.
/// </summary>
/// <param name="lastTotals">A member's totals as last known: this node's own, or its replica's (empty if none).</param>
/// <param name="actors">The registry's context, to reach this node's and other members' actors.</param>
internal sealed class ClusterQueries(ClusterSettings settings, ClusterMembership members, Func<Address, RegistryProtocol.Stats> lastTotals, IActorRefFactory actors)
{
    private ActorSelection At(Address address, string actor) =>
        address == members.Self
            ? actors.ActorSelection($"/user/{actor}")
            : actors.ActorSelection(new RootActorPath(address) / "user" / actor);

    /// <summary>Answers <paramref name="asker"/> with the cluster's totals: <paramref name="departed"/> members' books, the silent members' replicas, and every other member's answer.</summary>
    public void Stats(RegistryProtocol.Stats departed, IActorRef asker)
    {
        // A node killed a moment ago is still a member until the failure detector says otherwise, and asking it
        // only times out; its replica (at most replication-interval old) answers for it after this much shorter wait.
        var timeout = settings.StatsTimeout;
        var answering = members.Answering();
        // Members marked down are in departed already.
        var known = members.Silent(answering).Select(lastTotals).Aggregate(departed, (sum, part) => sum + part);
        var asks = answering.Select(address =>
        {
            var fallback = lastTotals(address);
            return At(address, "registry").Ask<RegistryProtocol.Stats>(RegistryProtocol.GetStats.Instance, timeout)
                .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : fallback, TaskScheduler.Default);
        }).ToArray();
        Task.WhenAll(asks).PipeTo(asker, success: parts => parts.Aggregate(known, (sum, part) => sum + part));
    }

    /// <summary>
    /// Answers <paramref name="asker"/> with one page of the cluster's table: each answering node filters and cuts its own;
    /// nodes that miss the timeout are named in the answer, not hidden.
    /// </summary>
    public void Page(RegistryProtocol.QueryConnections query, IActorRef asker)
    {
        var timeout = settings.QueryTimeout;
        var unreachable = members.UnreachableNodes();
        var asks = members.Answering().Select(address =>
            At(address, "registry").Ask<RegistryProtocol.ConnectionsPage>(query, timeout)
                .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : new RegistryProtocol.ConnectionsPage(0, [], [ClusterRegistry.NodeName(address)]),
                    TaskScheduler.Default)).ToArray();
        Task.WhenAll(asks).PipeTo(asker, success: parts => RegistryProtocol.ConnectionsPage.Merge(parts, query.Take, unreachable));
    }

    /// <summary>Sends a question about one connection to the node its id names, as if <paramref name="asker"/> had sent it there.</summary>
    /// <param name="actor">The actor that answers it on that node: <c>registry</c> or <c>connections</c>.</param>
    /// <param name="unknown">The answer when no member holds such an id.</param>
    public void ToOwner(string id, string actor, object question, Func<object> unknown, IActorRef asker)
    {
        var node = ClusterRegistry.NodeOf(id);
        var owner = members.Owner(node);
        if (owner is null)
        {
            asker.Tell(unknown());
            return;
        }
        if (members.IsUnreachable(owner))
        {
            asker.Tell(new Status.Failure(new TimeoutException($"node {node} holding connection {id} is unreachable")));
            return;
        }
        At(owner, actor).Tell(question, asker);
    }
}
