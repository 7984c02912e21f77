using Akka.Actor;
using Akka.Cluster;
using Microsoft.Extensions.Logging;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Cluster;

/// <summary>
/// This node's window on the cluster (one per node, at <c>/user/cluster-registry</c>). It answers the operator's
/// registry questions for the whole cluster by asking every reachable member's own registry and connection
/// supervisor (scatter-gather: fresh figures, nothing copied ahead of time), and it keeps a replica of every
/// other member's connection ledger (ids, totals) so that a member's loss can be reported: its connections
/// closed with <c>node-down</c>, its totals folded into the cluster's, and the singleton monitor told once.
/// </summary>
internal sealed class ClusterRegistry : ReceiveActor, IWithTimers
{
    public const string Name = "cluster-registry";

    /// <summary>How long the ids of a lost node are kept while the singleton monitor decides who reports them.</summary>
    private static readonly TimeSpan ReportWait = TimeSpan.FromMinutes(1);

    private const int DeparturesKept = 50;

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

    /// <summary>How often a survivor repeats <see cref="NodeLost"/> until the singleton monitor answers.</summary>
    private static readonly TimeSpan ReportRepeat = TimeSpan.FromSeconds(1);

    private readonly ClusterSettings _settings;
    private readonly IActorRef _clusterMonitor;
    private readonly SupervisorMetrics _metrics;
    private readonly ILogger _log;
    private readonly Akka.Cluster.Cluster _cluster;
    private readonly string _self;
    private readonly long _incarnation;

    private readonly Dictionary<string, LedgerEntry> _own = [];
    private readonly List<LedgerEntry> _opened = [];
    private readonly List<ClosedEntry> _closed = [];
    private RegistryProtocol.Stats _ownTotals = RegistryProtocol.Stats.Empty;
    private bool _totalsAsked;
    private readonly List<IActorRef> _flushWaiters = [];

    private readonly Dictionary<Address, Member> _members = [];
    private readonly HashSet<Address> _unreachable = [];
    private readonly Dictionary<Address, long> _sentSequence = [];
    private readonly Dictionary<string, LedgerReplica> _replicas = [];
    private RegistryProtocol.Stats _departed = RegistryProtocol.Stats.Empty;
    private readonly LinkedList<Departure> _departures = new();
    private readonly Dictionary<string, IReadOnlyList<LedgerEntry>> _awaitingReport = [];
    // One entry per departed incarnation (few over a cluster's life): downed and removed both arrive for a lost node.
    private readonly HashSet<UniqueAddress> _departedMembers = [];

    public ITimerScheduler Timers { get; set; } = null!;

    public ClusterRegistry(ClusterSettings settings, IActorRef clusterMonitor, SupervisorMetrics metrics, ILogger log)
    {
        _settings = settings;
        _clusterMonitor = clusterMonitor;
        _metrics = metrics;
        _log = log;
        _cluster = Akka.Cluster.Cluster.Get(Context.System);
        _self = NodeName(_cluster.SelfAddress);
        _incarnation = _cluster.SelfUniqueAddress.Uid;

        // This node's own ledger: a subscriber to its inbound connections' lifecycle (opens and closes only; totals come
        // from the registry). A connection leaves the ledger when its close is decided, as it leaves `active`.
        Receive<ConnectionLifecycle.Opened>(opened =>
        {
            if (opened.Direction != ConnectionDirection.Inbound) return;
            var s = opened.Status;
            var entry = new LedgerEntry(s.Id, s.Remote, s.Listener, s.Protocol, s.ConnectedAt);
            _own[s.Id] = entry;
            _opened.Add(entry);
        });
        Receive<ConnectionLifecycle.Closed>(closed =>
        {
            if (closed.Direction != ConnectionDirection.Inbound) return;
            _own.Remove(closed.Status.Id);
            _closed.Add(new ClosedEntry(closed.Status.Id, closed.Reason.ToWireName()));
        });
        Receive<IConnectionLifecycleEvent>(_ => { });

        Receive<Replicate>(_ => AskLocalTotals());
        Receive<LocalTotals>(totals =>
        {
            _totalsAsked = false;
            _ownTotals = totals.Stats;
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
        Receive<ResendLedger>(resend =>
        {
            if (_members.ContainsKey(Sender.Path.Address)) SendCopy(Sender.Path.Address);
        });
        Receive<ReportLoss>(OnReportLoss);
        Receive<ForgetLoss>(forget =>
        {
            Timers.Cancel($"repeat-{forget.Node}");
            if (_awaitingReport.Remove(forget.Node))
                _log.LogWarning("The cluster monitor never answered for lost node {Node}; its connections were not logged one by one", forget.Node);
        });
        Receive<RepeatLoss>(repeat => _clusterMonitor.Tell(repeat.Lost));

        // Membership.
        Receive<ClusterEvent.MemberUp>(up => OnMemberSeen(up.Member));
        Receive<ClusterEvent.MemberJoined>(joined => _members[joined.Member.Address] = joined.Member);
        Receive<ClusterEvent.MemberWeaklyUp>(weakly => _members[weakly.Member.Address] = weakly.Member);
        Receive<ClusterEvent.MemberLeft>(left => _members[left.Member.Address] = left.Member);
        Receive<ClusterEvent.MemberExited>(exited => _members[exited.Member.Address] = exited.Member);
        Receive<ClusterEvent.MemberDowned>(downed =>
        {
            // Downed is the decision (the resolver's, or an operator's): report the loss now rather than at
            // removal, which waits for the leader's next round.
            _members[downed.Member.Address] = downed.Member;
            Depart(downed.Member, lost: true);
        });
        Receive<ClusterEvent.MemberRemoved>(OnMemberRemoved);
        Receive<ClusterEvent.UnreachableMember>(u => _unreachable.Add(u.Member.Address));
        Receive<ClusterEvent.ReachableMember>(r => _unreachable.Remove(r.Member.Address));
        Receive<ClusterEvent.IMemberEvent>(_ => { });

        // The operator's questions, for the whole cluster.
        Receive<RegistryProtocol.GetStats>(_ => GatherStats());
        Receive<RegistryProtocol.QueryConnections>(GatherPage);
        Receive<RegistryProtocol.GetConnection>(q => ToOwner(q.Id, "registry", q, () => new RegistryProtocol.ConnectionFound(q.Id, null)));
        Receive<ConnectionCommands.GetStatus>(q => ToOwner(q.Id, "connections", q, () => new RegistryProtocol.ConnectionFound(q.Id, null)));
        Receive<ConnectionCommands.CloseConnection>(q => ToOwner(q.Id, "connections", q, () => new ConnectionCommands.CloseAccepted(q.Id, false)));
        Receive<ConnectionCommands.GetTcpInfo>(q => ToOwner(q.Id, "connections", q, () => new ConnectionCommands.TcpInfoReport(q.Id, "", null)));
        Receive<GetClusterView>(_ => Sender.Tell(View()));
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
        foreach (var address in _members.Keys.Where(IsPeer).ToArray())
            SendBatches(address, reset: false, _opened, _closed);
        _opened.Clear();
        _closed.Clear();
        _clusterMonitor.Tell(new NodeCounts(_self, _incarnation, _ownTotals));
        foreach (var waiter in _flushWaiters) waiter.Tell(Flushed.Instance);
        _flushWaiters.Clear();
    }

    private bool IsPeer(Address address) => address != _cluster.SelfAddress && _sentSequence.ContainsKey(address);

    private void SendCopy(Address to)
    {
        _sentSequence.TryAdd(to, 0);
        SendBatches(to, reset: true, _own.Values.ToArray(), []);
    }

    private void SendBatches(Address to, bool reset, IReadOnlyList<LedgerEntry> opened, IReadOnlyList<ClosedEntry> closed)
    {
        var target = Context.ActorSelection(new RootActorPath(to) / "user" / Name);
        foreach (var batch in LedgerReplica.Split(_self, _incarnation, _sentSequence[to], reset, opened, closed, _ownTotals))
        {
            target.Tell(batch, Self);
            _sentSequence[to] = batch.Sequence;
        }
    }

    private void OnBatch(LedgerBatch batch)
    {
        // A straggler from a member already gone, or from one marked down that woke up before it stopped, would bring
        // back a replica of connections already reported node-down.
        if (!_members.TryGetValue(Sender.Path.Address, out var member) || member.Status is MemberStatus.Down or MemberStatus.Removed
            || _departedMembers.Contains(member.UniqueAddress)) return;
        if (!_replicas.TryGetValue(batch.Node, out var replica) || replica.Incarnation != batch.Incarnation)
            _replicas[batch.Node] = replica = new LedgerReplica(batch.Incarnation);
        if (!replica.Apply(batch, DateTimeOffset.UtcNow)) Sender.Tell(new ResendLedger(_self));
    }

    private void OnMemberSeen(Member member)
    {
        _members[member.Address] = member;
        if (member.Address == _cluster.SelfAddress) return;
        // Both sides copy their ledger to the other when they see each other up; whichever copy arrives
        // after the other side's actor started is the one that counts, and a lost one is asked for again.
        SendCopy(member.Address);
    }

    private void OnMemberRemoved(ClusterEvent.MemberRemoved removed)
    {
        var address = removed.Member.Address;
        _members.Remove(address);
        _unreachable.Remove(address);
        _sentSequence.Remove(address);
        // Lost members pass through Down, leaving ones through Exiting. Any other removal is this node's own view
        // being torn down (it was marked down itself and is stopping): the others did not go anywhere.
        if (removed.PreviousStatus is MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Leaving)
            Depart(removed.Member, lost: removed.PreviousStatus == MemberStatus.Down);
    }

    /// <summary>Folds a departed member's books into the cluster's once per incarnation, on whichever event comes first.</summary>
    private void Depart(Member member, bool lost)
    {
        if (member.Address == _cluster.SelfAddress || !_departedMembers.Add(member.UniqueAddress)) return;
        // A node that is stopping (marked down itself, or leaving) sees the others removed from its own view as its
        // cluster daemon shuts down: they did not leave, and it has nobody left to report to.
        if (_cluster.SelfMember.Status is MemberStatus.Down or MemberStatus.Removed || CoordinatedShutdown.Get(Context.System).ShutdownReason is not null) return;
        var node = NodeName(member.Address);
        var replica = _replicas.GetValueOrDefault(node);
        _replicas.Remove(node);
        var totals = replica?.Totals ?? RegistryProtocol.Stats.Empty;
        // The node's books as it last reported them; what it still held closes now, with node-down when it was
        // lost, or as server-shutdown when it left gracefully (its shutdown closed them; the last batch was in flight).
        var remainder = Math.Max(0, totals.Active);
        var reason = lost ? CloseReason.NodeDown : CloseReason.ServerShutdown;
        var closedNow = new RegistryProtocol.Stats(0, 0, new Dictionary<string, long> { [reason.ToWireName()] = remainder }, 0, 0, 0);
        _departed = _departed + (totals with { Active = 0 }) + closedNow;

        _departures.AddFirst(new Departure(node, DateTimeOffset.UtcNow, lost ? CloseReason.NodeDown.ToWireName() : "left", remainder));
        while (_departures.Count > DeparturesKept) _departures.RemoveLast();

        if (!lost)
        {
            _log.LogInformation("Cluster member {Node} left gracefully; {Remaining} connections it still held are counted server-shutdown", node, remainder);
            return;
        }
        _log.LogWarning("Cluster member {Node} was marked down; {Lost} connections it held are lost (node-down)", node, remainder);
        _awaitingReport[node] = replica?.Live.Values.ToArray() ?? [];
        Timers.StartSingleTimer($"forget-{node}", new ForgetLoss(node), ReportWait);
        var message = new NodeLost(node, replica?.Incarnation ?? 0, remainder, totals);
        _clusterMonitor.Tell(message);
        // Sent while the singleton is moving (its node may be the one lost), a message can go to the old one and
        // vanish; repeated until answered. The monitor counts a node once, whatever it is told.
        Timers.StartPeriodicTimer($"repeat-{node}", new RepeatLoss(message), ReportRepeat);
    }

    private void OnReportLoss(ReportLoss report)
    {
        Timers.Cancel($"forget-{report.Node}");
        Timers.Cancel($"repeat-{report.Node}");
        if (!_awaitingReport.Remove(report.Node, out var entries) || !report.Report) return;
        var now = DateTimeOffset.UtcNow;
        foreach (var entry in entries)
            ClusterLog.ConnectionLost(_log, entry.Id, report.Node, entry.Remote, entry.Listener, (now - entry.ConnectedAt).TotalSeconds);
        _metrics.ConnectionsLost(entries.Count);
    }

    /// <summary>
    /// Members that can answer now; the others are counted from their replicas. This node always answers for itself,
    /// joined or not (a node whose seeds are not up yet still reports its own connections).
    /// </summary>
    private Address[] Answering() =>
        _members.Values
            .Where(m => !_unreachable.Contains(m.Address) && m.Status is not (MemberStatus.Down or MemberStatus.Removed))
            .Select(m => m.Address)
            .Append(_cluster.SelfAddress)
            .Distinct()
            .ToArray();

    private ActorSelection At(Address address, string actor) =>
        address == _cluster.SelfAddress
            ? Context.ActorSelection($"/user/{actor}")
            : Context.ActorSelection(new RootActorPath(address) / "user" / actor);

    private RegistryProtocol.Stats ReplicaTotals(Address address) =>
        address == _cluster.SelfAddress ? _ownTotals : _replicas.GetValueOrDefault(NodeName(address))?.Totals ?? RegistryProtocol.Stats.Empty;

    private void GatherStats()
    {
        // A node killed a moment ago is still a member until the failure detector says otherwise, and asking it
        // only times out; its replica (at most replication-interval old) answers for it after this much shorter wait.
        var timeout = _settings.StatsTimeout;
        var answering = Answering();
        // Members marked down are in _departed already.
        var silent = _members.Values.Where(m => m.Status is not (MemberStatus.Down or MemberStatus.Removed))
            .Select(m => m.Address).Except(answering).Select(ReplicaTotals);
        var known = silent.Aggregate(_departed, (sum, part) => sum + part);
        var asks = answering.Select(address =>
        {
            var fallback = ReplicaTotals(address);
            return At(address, "registry").Ask<RegistryProtocol.Stats>(RegistryProtocol.GetStats.Instance, timeout)
                .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : fallback, TaskScheduler.Default);
        }).ToArray();
        Task.WhenAll(asks).PipeTo(Sender, success: parts => parts.Aggregate(known, (sum, part) => sum + part));
    }

    /// <summary>Each answering node filters and cuts its own table; nodes that miss the timeout are named in the answer, not hidden.</summary>
    private void GatherPage(RegistryProtocol.QueryConnections query)
    {
        var timeout = _settings.QueryTimeout;
        // Members being detected as gone; a node already marked down had its connections reported node-down.
        var unreachable = _members.Values
            .Where(m => _unreachable.Contains(m.Address) && m.Status is not (MemberStatus.Down or MemberStatus.Removed))
            .Select(m => NodeName(m.Address)).ToArray();
        var asks = Answering().Select(address =>
            At(address, "registry").Ask<RegistryProtocol.ConnectionsPage>(query, timeout)
                .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : new RegistryProtocol.ConnectionsPage(0, [], [NodeName(address)]),
                    TaskScheduler.Default)).ToArray();
        Task.WhenAll(asks).PipeTo(Sender, success: parts => RegistryProtocol.ConnectionsPage.Merge(parts, query.Take, unreachable));
    }

    /// <summary>Sends a question about one connection to the node its id names, as if the asker had sent it there.</summary>
    private void ToOwner(string id, string actor, object question, Func<object> unknown)
    {
        var node = NodeOf(id);
        var owner = node is null ? _cluster.SelfAddress : _members.Keys.FirstOrDefault(a => NodeName(a) == node);
        if (owner is null)
        {
            Sender.Tell(unknown());
            return;
        }
        if (_unreachable.Contains(owner))
        {
            Sender.Tell(new Status.Failure(new TimeoutException($"node {node} holding connection {id} is unreachable")));
            return;
        }
        At(owner, actor).Tell(question, Sender);
    }

    private ClusterView View()
    {
        var state = _cluster.State;
        var up = _members.Values.Where(m => m.Status == MemberStatus.Up).ToArray();
        var oldest = up.Length == 0 ? null : up.Aggregate((a, b) => b.IsOlderThan(a) ? b : a);
        var members = _members.Values
            .Select(m => new MemberView(
                NodeName(m.Address),
                m.Status.ToString().ToLowerInvariant(),
                !_unreachable.Contains(m.Address),
                m.Roles.OrderBy(r => r, StringComparer.Ordinal).ToArray(),
                m.Address == _cluster.SelfAddress ? _own.Count : _replicas.GetValueOrDefault(NodeName(m.Address))?.Live.Count ?? 0,
                m.Address == _cluster.SelfAddress))
            .ToList();
        // Until it has joined (its seeds are not up yet), this node is no member, yet it holds connections.
        if (!_members.ContainsKey(_cluster.SelfAddress))
            members.Add(new MemberView(_self, "not-joined", true, _settings.Roles, _own.Count, true));
        members.Sort((a, b) => string.CompareOrdinal(a.Node, b.Node));
        return new ClusterView(true, _self, state.Leader is { } leader ? NodeName(leader) : null,
            oldest is null ? null : NodeName(oldest.Address), members, _departures.ToArray());
    }
}
