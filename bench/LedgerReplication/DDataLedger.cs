using Akka.Actor;
using Akka.Cluster;
using Akka.DistributedData;
using Supervisor.Messages.Protocol;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace LedgerReplication;

/// <summary>
/// The same ledger over Akka.DistributedData. This node owns two keys and is their only writer:
/// <c>ledger-host:port</c>, its live connections, and <c>totals-host:port</c>, an <c>LWWRegister</c> of the
/// product's totals record. Both are written with WriteLocal (the replicator spreads them: deltas where the type has
/// them, gossip otherwise); the other nodes read them from their own replicator with ReadLocal. The ledger key is
/// either an <c>ORSet&lt;string&gt;</c> of encoded entries (default) or an <c>LWWDictionary&lt;string, LedgerEntry&gt;</c>.
/// </summary>
public sealed class DDataLedger : ReceiveActor, IWithTimers
{
    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }

    private sealed class Poll
    {
        public static readonly Poll Instance = new();
    }

    private sealed record ConvergeRead(string Owner);

    private sealed record SampleRead(string Owner, bool Totals);

    private sealed record CheckRead(string Owner, IActorRef ReplyTo);

    private readonly Options _options;
    private readonly Report _report;
    private readonly IActorRef _replicator;
    private readonly UniqueAddress _selfAddress;
    private readonly string _self;

    private readonly Dictionary<string, LedgerEntry> _own = [];
    private readonly List<LedgerEntry> _added = [];
    private readonly List<LedgerEntry> _removed = [];
    private long _accepted, _closedCount, _heartbeats;
    private int _checksPending;
    private Schedule? _schedule;

    public ITimerScheduler Timers { get; set; } = null!;

    private static ORSetKey<string> SetKey(string node) => new($"ledger-{node}");

    private static LWWDictionaryKey<string, LedgerEntry> MapKey(string node) => new($"ledger-{node}");

    /// <summary>Reads another node's ledger key from this node's replicator (ReadLocal: no remote round trip).</summary>
    private void ReadLedger(string owner, object request)
    {
        if (_options.Type == DDataType.OrSet) _replicator.Tell(Dsl.Get(SetKey(owner), ReadLocal.Instance, request));
        else _replicator.Tell(Dsl.Get(MapKey(owner), ReadLocal.Instance, request));
    }

    private static LWWRegisterKey<RegistryProtocol.Stats> TotalsKey(string node) => new($"totals-{node}");

    public DDataLedger(Options options, Report report)
    {
        _options = options;
        _report = report;
        _replicator = DistributedData.Get(Context.System).Replicator;
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        _selfAddress = cluster.SelfUniqueAddress;
        _self = $"{cluster.SelfAddress.Host}:{cluster.SelfAddress.Port}";

        Receive<Open>(o =>
        {
            _own[o.Entry.Id] = o.Entry;
            _accepted++;
            _added.Add(o.Entry);
            if (_options.Write == DDataWrite.Event) Write();
        });
        Receive<Close>(c =>
        {
            if (!_own.Remove(c.Id, out var entry)) return;
            _closedCount++;
            _removed.Add(entry);
            if (_options.Write == DDataWrite.Event) Write();
        });
        Receive<Tick>(_ =>
        {
            if (_options.Write == DDataWrite.Tick) Write();
            _heartbeats += (long)(_own.Count * _options.Interval.TotalSeconds / 2);
            var totals = Schedule.Totals(_own.Count, _accepted, _closedCount, _heartbeats);
            _replicator.Tell(Dsl.Update(TotalsKey(_self), new LWWRegister<RegistryProtocol.Stats>(_selfAddress, RegistryProtocol.Stats.Empty),
                WriteLocal.Instance, r => r.WithValue(_selfAddress, totals)));
        });

        Receive<UpdateSuccess>(_ => { });
        Receive<IUpdateFailure>(f => Report.Line($"ERROR update {f.Key}: {f}"));

        Receive<IsReady>(_ => Sender.Tell(true));
        Receive<StartRamp>(r =>
        {
            _report.Ramp(r.Schedule);
            Timers.StartPeriodicTimer("poll", Poll.Instance, TimeSpan.FromMilliseconds(25));
        });
        Receive<Poll>(_ =>
        {
            if (!_report.Converging)
            {
                Timers.Cancel("poll");
                return;
            }
            foreach (var owner in _report.Others.Where(o => !_report.IsConverged(o)))
                ReadLedger(owner, new ConvergeRead(owner));
        });
        Receive<StartChurn>(c =>
        {
            _schedule = c.Schedule;
            _report.Churn(c.Schedule, c.ChurnEndMs);
        });
        Receive<TakeSample>(_ =>
        {
            foreach (var owner in _report.Others)
            {
                ReadLedger(owner, new SampleRead(owner, false));
                _replicator.Tell(Dsl.Get(TotalsKey(owner), ReadLocal.Instance, new SampleRead(owner, true)));
            }
        });
        Receive<Check>(_ =>
        {
            Report.Own(Views.Of(_own.Keys, digest: true));
            _checksPending = _options.Nodes - 1;
            foreach (var owner in _report.Others)
                ReadLedger(owner, new CheckRead(owner, Sender));
        });

        Receive<GetSuccess>(g =>
        {
            switch (g.Request)
            {
                case ConvergeRead c:
                    _report.Seen(c.Owner, Count(g.Data));
                    break;
                case SampleRead { Totals: true } s:
                    _report.Totals(s.Owner, ((LWWRegister<RegistryProtocol.Stats>)g.Data).Value.Accepted);
                    break;
                case SampleRead s:
                    _report.Ids(s.Owner, Probe(s.Owner, g.Data));
                    break;
                case CheckRead c:
                    Report.Replica(c.Owner, Views.Of(Ids(g.Data), digest: true));
                    CheckDone(c.ReplyTo);
                    break;
            }
        });
        Receive<NotFound>(n =>
        {
            if (n.Request is CheckRead c)
            {
                Report.Replica(c.Owner, default);
                CheckDone(c.ReplyTo);
            }
        });
    }

    protected override void PreStart() => Timers.StartPeriodicTimer("tick", Tick.Instance, _options.Interval);

    private void CheckDone(IActorRef replyTo)
    {
        if (--_checksPending == 0) replyTo.Tell(true);
    }

    /// <summary>Everything since the last write, as one Update of this node's key (one open or close in the per-event mode).</summary>
    private void Write()
    {
        if (_added.Count == 0 && _removed.Count == 0) return;
        var added = _added.ToArray();
        var removed = _removed.ToArray();
        _added.Clear();
        _removed.Clear();
        var self = _selfAddress;
        if (_options.Type == DDataType.OrSet)
        {
            _replicator.Tell(Dsl.Update(SetKey(_self), ORSet<string>.Empty, WriteLocal.Instance, set =>
            {
                foreach (var e in added) set = set.Add(self, Schedule.Encode(e));
                foreach (var e in removed) set = set.Remove(self, Schedule.Encode(e));
                return set;
            }));
        }
        else
        {
            _replicator.Tell(Dsl.Update(MapKey(_self), LWWDictionary<string, LedgerEntry>.Empty,
                WriteLocal.Instance, map =>
                {
                    foreach (var e in added) map = map.SetItem(self, e.Id, e);
                    foreach (var e in removed) map = map.Remove(self, e.Id);
                    return map;
                }));
        }
    }

    /// <summary>The replica's oldest and newest id, by lookups of the element the owner would have written for connection k.</summary>
    private ReplicaView Probe(string owner, IReplicatedData data) => data switch
    {
        ORSet<string> set => _report.Probe(owner, set.Count, k => set.Contains(Schedule.Encode(_schedule!.Entry(k, owner)))),
        LWWDictionary<string, LedgerEntry> map => _report.Probe(owner, map.Count, k => map.ContainsKey(Schedule.Id(k, owner))),
        _ => default,
    };

    private static long Count(IReplicatedData data) => data switch
    {
        ORSet<string> set => set.Count,
        LWWDictionary<string, LedgerEntry> map => map.Count,
        _ => 0,
    };

    private static IEnumerable<string> Ids(IReplicatedData data) => data switch
    {
        ORSet<string> set => set.Elements,
        LWWDictionary<string, LedgerEntry> map => map.Keys,
        _ => [],
    };
}
