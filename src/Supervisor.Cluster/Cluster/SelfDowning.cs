using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Remote;
using Microsoft.Extensions.Logging;
using Supervisor.Connections;

namespace Supervisor.Cluster;

/// <summary>
/// Downs this node when the rest of the cluster has certainly downed it but cannot tell it so: the node was frozen
/// (SIGSTOP, a paused VM, a stop-the-world pause) for longer than the downing time, or another member quarantined it.
/// <para>
/// A frozen node that wakes has heard nothing for the whole stall, so its failure detector marks every other node
/// unreachable at once, while the others have downed it, removed it and quarantined it: they close its association
/// and Akka's remoting then gates the address for seconds, so no gossip tells it that it is down. Left alone, its own
/// split-brain resolver acts on that stale picture, the stragglers' last heartbeats making it look like the majority
/// for a moment: it downs the healthy nodes in its view, lives on as a one-node island and never exits (seen in the
/// frozen-node test, 3 of 13 runs). So on waking it judges for itself, before its resolver's stable-after has passed:
/// stalled longer than acceptable-heartbeat-pause + stable-after, and alone against the others the configured
/// strategy would down it (what their resolver decided while it slept), it marks itself down; Akka then stops it with
/// the cluster-downing reason, the process exits 1 and is restarted as a new member. A quarantine notice from a member
/// means the same (no association with that node is possible until a restart) and is acted on the same way.
/// </para>
/// If every node was frozen together (one paused VM host), each of them downs itself and all restart: a whole-cluster
/// restart, where acting on the stale picture could leave several one-node islands serving at once.
/// </summary>
internal sealed class SelfDowning : ReceiveActor
{
    private readonly ClusterSettings _settings;
    private readonly ILogger _log;
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private bool _downed;

    public static Props Props(ClusterSettings settings, ILogger log) => Akka.Actor.Props.Create(() => new SelfDowning(settings, log));

    public SelfDowning(ClusterSettings settings, ILogger log)
    {
        _settings = settings;
        _log = log;
        Receive<ProcessStalled>(OnStalled);
        Receive<ThisActorSystemQuarantinedEvent>(OnQuarantined);
    }

    /// <summary>How long the others take at least to down an unreachable node: the failure detector's pause, then the resolver's wait.</summary>
    internal TimeSpan DowningTime => _settings.AcceptableHeartbeatPause + _settings.StableAfter;

    protected override void PreStart()
    {
        Context.System.EventStream.Subscribe(Self, typeof(ProcessStalled));
        Context.System.EventStream.Subscribe(Self, typeof(ThisActorSystemQuarantinedEvent));
        // The queue's thread is the one that notices a stall; a node with no connection yet has not started it.
        DeadlineQueue.Get(Context.System);
    }

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);

    private void OnStalled(ProcessStalled stalled)
    {
        if (_downed || stalled.Stall < DowningTime) return;
        var state = _cluster.State;
        if (!OthersDownAloneNode(_settings.Downing, state.Members, _cluster.SelfUniqueAddress)) return;
        ClusterLog.DowningSelfAfterStall(_log, ClusterRegistry.NodeName(_cluster.SelfAddress), stalled.Stall.TotalMilliseconds, DowningTime.TotalMilliseconds);
        DownSelf();
    }

    private void OnQuarantined(ThisActorSystemQuarantinedEvent quarantined)
    {
        if (_downed || !_cluster.State.Members.Any(m => m.Address.Equals(quarantined.RemoteAddress))) return;
        ClusterLog.DowningSelfQuarantined(_log, ClusterRegistry.NodeName(_cluster.SelfAddress), ClusterRegistry.NodeName(quarantined.RemoteAddress));
        DownSelf();
    }

    private void DownSelf()
    {
        _downed = true;
        _cluster.Down(_cluster.SelfAddress);
    }

    /// <summary>
    /// Whether the other members, finding <paramref name="self"/> alone unreachable, down it under
    /// <paramref name="strategy"/>: Akka's keep-majority (the larger side stays; of two equal sides the one with the
    /// lowest address) and keep-oldest with down-if-alone (the side with the oldest stays, unless the oldest is alone
    /// against two or more). Only members that count for the resolver are counted (Up and Leaving).
    /// </summary>
    internal static bool OthersDownAloneNode(DowningStrategy strategy, IEnumerable<Member> members, UniqueAddress self)
    {
        var counted = members.Where(m => m.Status is MemberStatus.Up or MemberStatus.Leaving).ToImmutableList();
        if (!counted.Any(m => m.UniqueAddress.Equals(self))) return false;
        var others = counted.Count - 1;
        if (others == 0) return false;
        switch (strategy)
        {
            case DowningStrategy.KeepOldest:
                var oldest = counted.Aggregate((a, b) => b.IsOlderThan(a) ? b : a);
                return !oldest.UniqueAddress.Equals(self) || others >= 2;
            default:
                if (others > 1) return true;
                var lowest = counted.Select(m => m.Address).Min(Member.AddressOrdering)!;
                return !lowest.Equals(self.Address);
        }
    }
}
