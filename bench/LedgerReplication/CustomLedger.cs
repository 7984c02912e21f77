using Akka.Actor;
using Akka.Cluster;
using Supervisor.Cluster;
using Supervisor.Messages.Protocol;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace LedgerReplication;

/// <summary>
/// The replication half of the product's <c>ClusterRegistry</c> (src/Supervisor.Cluster/Cluster/ClusterRegistry.cs), kept
/// as it is there: this node's ledger (opens and closes since the last tick), every <c>replication-interval</c> one
/// or more numbered <see cref="LedgerBatch"/>es (at most 2,000 ids each) with the totals to every other member that
/// is up, a full copy when a member comes up or asks for one, and the product's own <see cref="LedgerReplica"/> on
/// the receiving side. Left out: the operator queries, departures and loss reports, and asking the registry for
/// its totals (they are counted here).
/// </summary>
public sealed class CustomLedger : ReceiveActor, IWithTimers
{
    public const string Name = "ledger";

    private sealed class Replicate
    {
        public static readonly Replicate Instance = new();
    }

    private readonly Options _options;
    private readonly Report _report;
    private readonly Akka.Cluster.Cluster _cluster;
    private readonly string _self;
    private readonly long _incarnation;

    private readonly Dictionary<string, LedgerEntry> _own = [];
    private readonly List<LedgerEntry> _opened = [];
    private readonly List<ClosedEntry> _closed = [];
    private long _accepted, _closedCount, _heartbeats;
    private RegistryProtocol.Stats _ownTotals = RegistryProtocol.Stats.Empty;

    private readonly HashSet<Address> _members = [];
    private readonly Dictionary<Address, long> _sentSequence = [];
    private readonly Dictionary<string, LedgerReplica> _replicas = [];

    public ITimerScheduler Timers { get; set; } = null!;

    public CustomLedger(Options options, Report report)
    {
        _options = options;
        _report = report;
        _cluster = Akka.Cluster.Cluster.Get(Context.System);
        _self = $"{_cluster.SelfAddress.Host}:{_cluster.SelfAddress.Port}";
        _incarnation = _cluster.SelfUniqueAddress.Uid;

        Receive<Open>(o =>
        {
            _own[o.Entry.Id] = o.Entry;
            _opened.Add(o.Entry);
            _accepted++;
        });
        Receive<Close>(c =>
        {
            _own.Remove(c.Id);
            _closed.Add(new ClosedEntry(c.Id, "client-closed"));
            _closedCount++;
        });
        Receive<Replicate>(_ => Publish());
        Receive<LedgerBatch>(OnBatch);
        Receive<ResendLedger>(_ =>
        {
            if (_members.Contains(Sender.Path.Address)) SendCopy(Sender.Path.Address);
        });
        Receive<ClusterEvent.MemberUp>(up =>
        {
            _members.Add(up.Member.Address);
            if (up.Member.Address != _cluster.SelfAddress) SendCopy(up.Member.Address);
        });
        Receive<ClusterEvent.MemberRemoved>(removed =>
        {
            _members.Remove(removed.Member.Address);
            _sentSequence.Remove(removed.Member.Address);
            _replicas.Remove($"{removed.Member.Address.Host}:{removed.Member.Address.Port}");
        });
        Receive<ClusterEvent.IMemberEvent>(_ => { });

        Receive<IsReady>(_ => Sender.Tell(_report.Others.All(o => _replicas.TryGetValue(o, out var r) && r.Complete)));
        Receive<StartRamp>(r => _report.Ramp(r.Schedule));
        Receive<StartChurn>(c => _report.Churn(c.Schedule, c.ChurnEndMs));
        Receive<TakeSample>(_ =>
        {
            foreach (var owner in _report.Others)
            {
                if (!_replicas.TryGetValue(owner, out var replica)) continue;
                var live = replica.Live;
                _report.Ids(owner, _report.Probe(owner, live.Count, k => live.ContainsKey(Schedule.Id(k, owner))));
                _report.Totals(owner, replica.Totals.Accepted);
            }
        });
        Receive<Check>(_ =>
        {
            Report.Own(Views.Of(_own.Keys, digest: true));
            foreach (var owner in _report.Others)
                Report.Replica(owner, _replicas.TryGetValue(owner, out var r) && r.Complete ? Views.Of(r.Live.Keys, digest: true) : default);
            Sender.Tell(true);
        });
    }

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));
        Timers.StartPeriodicTimer("replicate", Replicate.Instance, _options.Interval);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    private void Publish()
    {
        // The product asks its registry for these; here they are counted. Heartbeats move every tick, as they do there.
        _heartbeats += (long)(_own.Count * _options.Interval.TotalSeconds / 2);
        _ownTotals = Schedule.Totals(_own.Count, _accepted, _closedCount, _heartbeats);
        foreach (var address in _members.Where(IsPeer).ToArray())
            SendBatches(address, reset: false, _opened, _closed);
        _opened.Clear();
        _closed.Clear();
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
        if (!_members.Contains(Sender.Path.Address)) return;
        if (!_replicas.TryGetValue(batch.Node, out var replica) || replica.Incarnation != batch.Incarnation)
            _replicas[batch.Node] = replica = new LedgerReplica(batch.Incarnation);
        if (!replica.Apply(batch, DateTimeOffset.UtcNow)) Sender.Tell(new ResendLedger(_self));
        if (_report.Converging && replica.Complete) _report.Seen(batch.Node, replica.Live.Count);
    }
}
