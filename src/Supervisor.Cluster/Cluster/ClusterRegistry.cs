using Akka.Actor;
using Akka.Cluster;
using Microsoft.Extensions.Logging;
using Supervisor.Messages.Protocol;
using Supervisor.Monitoring;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Cluster;

/// <summary>
/// This node's window on the cluster (one per node, at <c>/user/cluster-registry</c>). It answers the operator's
/// registry questions for the whole cluster, replicates this node's connection ledger to every other member and
/// keeps a replica of theirs, so that a member's loss can be reported: its connections closed with
/// <c>node-down</c>, its totals folded into the cluster's, and the singleton monitor told once.
/// <para>
/// The actor owns all of that state and is the only one to touch it; each job is a plain object it owns and feeds
/// from its handlers: <see cref="OwnLedger"/> (this node's ledger), <see cref="LedgerReplication"/> (batches out,
/// replicas in), <see cref="ClusterMembership"/> (members and reachability), <see cref="LossReports"/> (departed
/// members' books and the node-down reports) and <see cref="ClusterQueries"/> (scatter-gather and routing). Here
/// stay the messages, the timers, the subscriptions and the decisions that join two of them.
/// </para>
/// </summary>
internal sealed class ClusterRegistry : ReceiveActor, IWithTimers
{
    public const string Name = "cluster-registry";

    /// <summary>How long the ids of a lost node are kept while the singleton monitor decides who reports them.</summary>
    private static readonly TimeSpan ReportWait = TimeSpan.FromMinutes(1);

    /// <summary>How often a survivor repeats <see cref="NodeLost"/> until the singleton monitor answers.</summary>
    private static readonly TimeSpan ReportRepeat = TimeSpan.FromSeconds(1);

    public static Props Props(ClusterSettings settings, IActorRef clusterMonitor, SupervisorMetrics metrics, ILogger log) =>
        Akka.Actor.Props.Create(() => new ClusterRegistry(settings, clusterMonitor, metrics, log));

    /// <summary>Sends what changed since the last call now (a graceful leave does this before leaving); answered with <see cref="Flushed"/>.</summary>
    public sealed record Flush
    {
        public static Flush Instance { get; } = new();
    }

    public sealed record Flushed
    {
        public static Flushed Instance { get; } = new();
    }

    private sealed class Replicate
    {
        public static readonly Replicate Instance = new();
    }

    private sealed record LocalTotals(RegistryProtocol.Stats Stats);

    private sealed record ForgetLoss(string Node);

    private sealed record RepeatLoss(NodeLost Lost);

    private readonly ClusterSettings _settings;
    private readonly IActorRef _clusterMonitor;
    private readonly Akka.Cluster.Cluster _cluster;
    private readonly string _self;
    private readonly long _incarnation;

    private readonly OwnLedger _ledger = new();
    private readonly LedgerReplication _replication;
    private readonly ClusterMembership _members;
    private readonly LossReports _losses;
    private readonly ClusterQueries _queries;
    private bool _totalsAsked;
    private readonly List<IActorRef> _flushWaiters = [];

    public ITimerScheduler Timers { get; set; } = null!;

    public ClusterRegistry(ClusterSettings settings, IActorRef clusterMonitor, SupervisorMetrics metrics, ILogger log)
    {
        _settings = settings;
        _clusterMonitor = clusterMonitor;
        _cluster = Akka.Cluster.Cluster.Get(Context.System);
        _self = NodeName(_cluster.SelfAddress);
        _incarnation = _cluster.SelfUniqueAddress.Uid;
        _replication = new LedgerReplication(_cluster.SelfAddress, _self, _incarnation);
        _members = new ClusterMembership(_cluster.SelfAddress);
        _losses = new LossReports(metrics, log);
        _queries = new ClusterQueries(settings, _members, LastTotals, Context);

        // This node's own ledger: opens and closes from the lifecycle; totals from the registry, asked each tick.
        Receive<ConnectionLifecycle.Opened>(_ledger.Apply);
        Receive<ConnectionLifecycle.Closed>(_ledger.Apply);
        Receive<IConnectionLifecycleEvent>(_ => { });
        Receive<Replicate>(_ => AskLocalTotals());
        Receive<LocalTotals>(totals =>
        {
            _totalsAsked = false;
            _ledger.Totals = totals.Stats;
            Publish();
        });
        Receive<Status.Failure>(_ =>
        {
            // The local registry did not answer in time: publish the entries with the last totals.
            _totalsAsked = false;
            Publish();
        });
        Receive<Flush>(_ =>
        {
            _flushWaiters.Add(Sender);
            AskLocalTotals();
        });

        // Other members' ledgers.
        Receive<LedgerBatch>(OnBatch);
        Receive<ResendLedger>(_ =>
        {
            if (_members.IsMember(Sender.Path.Address)) SendCopy(Sender.Path.Address);
        });

        // Departed members: the singleton monitor's answer about who reports a loss.
        Receive<ReportLoss>(report =>
        {
            Timers.Cancel($"forget-{report.Node}");
            Timers.Cancel($"repeat-{report.Node}");
            _losses.Reported(report);
        });
        Receive<ForgetLoss>(forget =>
        {
            Timers.Cancel($"repeat-{forget.Node}");
            _losses.Forget(forget.Node);
        });
        Receive<RepeatLoss>(repeat => _clusterMonitor.Tell(repeat.Lost));

        // Membership.
        Receive<ClusterEvent.MemberUp>(up => OnMemberSeen(up.Member));
        Receive<ClusterEvent.MemberJoined>(joined => _members.Seen(joined.Member));
        Receive<ClusterEvent.MemberWeaklyUp>(weakly => _members.Seen(weakly.Member));
        Receive<ClusterEvent.MemberLeft>(left => _members.Seen(left.Member));
        Receive<ClusterEvent.MemberExited>(exited => _members.Seen(exited.Member));
        Receive<ClusterEvent.MemberDowned>(downed =>
        {
            // Downed is the decision (the resolver's, or an operator's): report the loss now rather than at
            // removal, which waits for the leader's next round.
            _members.Seen(downed.Member);
            Depart(downed.Member, lost: true);
        });
        Receive<ClusterEvent.MemberRemoved>(OnMemberRemoved);
        Receive<ClusterEvent.UnreachableMember>(u => _members.Unreachable(u.Member.Address));
        Receive<ClusterEvent.ReachableMember>(r => _members.Reachable(r.Member.Address));
        Receive<ClusterEvent.IMemberEvent>(_ => { });

        // The operator's questions, for the whole cluster.
        Receive<RegistryProtocol.GetStats>(_ => _queries.Stats(_losses.Departed, Sender));
        Receive<RegistryProtocol.QueryConnections>(q => _queries.Page(q, Sender));
        Receive<RegistryProtocol.GetConnection>(q => _queries.ToOwner(q.Id, "registry", q, () => new RegistryProtocol.ConnectionFound(q.Id, null), Sender));
        Receive<ConnectionCommands.GetStatus>(q => _queries.ToOwner(q.Id, "connections", q, () => new RegistryProtocol.ConnectionFound(q.Id, null), Sender));
        Receive<ConnectionCommands.CloseConnection>(q => _queries.ToOwner(q.Id, "connections", q, () => new ConnectionCommands.CloseAccepted(q.Id, false), Sender));
        Receive<ConnectionCommands.GetTcpInfo>(q => _queries.ToOwner(q.Id, "connections", q, () => new ConnectionCommands.TcpInfoReport(q.Id, "", null), Sender));
        Receive<GetClusterView>(_ => Sender.Tell(_members.View(_cluster.State.Leader, Connections, _settings.Roles, _losses.Departures)));
    }

    /// <summary><c>host:port</c> of a member, the suffix of its connection ids.</summary>
    public static string NodeName(Address address) => $"{address.Host}:{address.Port}";

    /// <summary>The node a connection id names (<c>c17@127.0.0.1:4053</c> → <c>127.0.0.1:4053</c>); null for an id without one.</summary>
    public static string? NodeOf(string id)
    {
        var at = id.LastIndexOf('@');
        return at < 0 || at == id.Length - 1 ? null : id[(at + 1)..];
    }

    protected override void PreStart()
    {
        Context.System.EventStream.Subscribe(Self, typeof(IConnectionLifecycleEvent));
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        Timers.StartPeriodicTimer("replicate", Replicate.Instance, _settings.ReplicationInterval);
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
    }

    /// <summary>A member's totals as last known: this node's own, else its replica's (empty before one came).</summary>
    private RegistryProtocol.Stats LastTotals(Address address) =>
        address == _cluster.SelfAddress ? _ledger.Totals : _replication.Replica(NodeName(address))?.Totals ?? RegistryProtocol.Stats.Empty;

    /// <summary>Live connections a member holds: this node's own count, else its replica's.</summary>
    private long Connections(Address address) =>
        address == _cluster.SelfAddress ? _ledger.Count : _replication.Replica(NodeName(address))?.Live.Count ?? 0;

    private void AskLocalTotals()
    {
        if (_totalsAsked) return;
        _totalsAsked = true;
        Context.ActorSelection("/user/registry")
            .Ask<RegistryProtocol.Stats>(RegistryProtocol.GetStats.Instance, _settings.QueryTimeout)
            .PipeTo(Self, success: stats => new LocalTotals(stats));
    }

    /// <summary>
    /// Every tick each member gets a batch, changes or not: the totals move with every heartbeat anyway, and a
    /// receiver that missed one sees the gap in the sequence and asks for a full copy.
    /// </summary>
    private void Publish()
    {
        var (opened, closed) = _ledger.TakeChanges();
        foreach (var address in _members.Addresses.Where(_replication.IsPeer).ToArray())
            Send(address, _replication.Changes(address, opened, closed, _ledger.Totals));
        _clusterMonitor.Tell(new NodeCounts(_self, _incarnation, _ledger.Totals));
        foreach (var waiter in _flushWaiters) waiter.Tell(Flushed.Instance);
        _flushWaiters.Clear();
    }

    private void SendCopy(Address to) => Send(to, _replication.Copy(to, _ledger.Live(), _ledger.Totals));

    private void Send(Address to, IReadOnlyList<LedgerBatch> batches)
    {
        var target = Context.ActorSelection(new RootActorPath(to) / "user" / Name);
        foreach (var batch in batches) target.Tell(batch, Self);
    }

    private void OnBatch(LedgerBatch batch)
    {
        // A straggler from a member already gone, or from one marked down that woke up before it stopped, would bring
        // back a replica of connections already reported node-down.
        if (!_members.TryGet(Sender.Path.Address, out var member) || member.Status is MemberStatus.Down or MemberStatus.Removed
            || _losses.HasDeparted(member.UniqueAddress)) return;
        if (!_replication.Receive(batch, DateTimeOffset.UtcNow)) Sender.Tell(new ResendLedger(_self));
    }

    private void OnMemberSeen(Member member)
    {
        _members.Seen(member);
        if (member.Address == _cluster.SelfAddress) return;
        // Both sides copy their ledger to the other when they see each other up; whichever copy arrives
        // after the other side's actor started is the one that counts, and a lost one is asked for again.
        SendCopy(member.Address);
    }

    private void OnMemberRemoved(ClusterEvent.MemberRemoved removed)
    {
        var address = removed.Member.Address;
        _members.Removed(address);
        _replication.ForgetPeer(address);
        // Lost members pass through Down, leaving ones through Exiting. Any other removal is this node's own view
        // being torn down (it was marked down itself and is stopping): the others did not go anywhere.
        if (removed.PreviousStatus is MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Leaving)
            Depart(removed.Member, lost: removed.PreviousStatus == MemberStatus.Down);
    }

    /// <summary>Folds a departed member's books into the cluster's once per incarnation, on whichever event comes first.</summary>
    private void Depart(Member member, bool lost)
    {
        if (member.Address == _cluster.SelfAddress || !_losses.FirstDeparture(member.UniqueAddress)) return;
        // A node that is stopping (marked down itself, or leaving) sees the others removed from its own view as its
        // cluster daemon shuts down: they did not leave, and it has nobody left to report to.
        if (_cluster.SelfMember.Status is MemberStatus.Down or MemberStatus.Removed || CoordinatedShutdown.Get(Context.System).ShutdownReason is not null) return;
        var node = NodeName(member.Address);
        if (_losses.Depart(node, _replication.Take(node), lost) is not { } message) return;
        Timers.StartSingleTimer($"forget-{node}", new ForgetLoss(node), ReportWait);
        _clusterMonitor.Tell(message);
        // Sent while the singleton is moving (its node may be the one lost), a message can go to the old one and
        // vanish; repeated until answered. The monitor counts a node once, whatever it is told.
        Timers.StartPeriodicTimer($"repeat-{node}", new RepeatLoss(message), ReportRepeat);
    }
}
