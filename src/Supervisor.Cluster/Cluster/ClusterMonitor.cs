using Akka.Actor;
using Akka.Cluster;
using Microsoft.Extensions.Logging;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Cluster;

/// <summary>
/// The cluster's one monitor (a cluster singleton on the oldest node; it moves when that node goes). It turns
/// every node's totals into the events a <see cref="MonitorActor"/> counts, so the cluster rules run on the
/// same rule engine (windows, hysteresis, sinks) as each node's own, and it makes a node's loss one event:
/// the first survivor to report it is told to log its connections, and <c>node-down:NODE</c> is raised once.
/// </summary>
internal sealed class ClusterMonitor : ReceiveActor
{
    public static Props Props(MonitorSettings settings, ILogger log) =>
        Akka.Actor.Props.Create(() => new ClusterMonitor(settings, log));

    private readonly IActorRef _rules;
    private readonly Akka.Cluster.Cluster _cluster;
    private readonly Dictionary<string, NodeCounts> _last = [];
    /// <summary>Lost nodes, each with the survivor chosen to report its connections (the first to tell).</summary>
    private readonly Dictionary<string, IActorRef> _lostNodes = [];

    public ClusterMonitor(MonitorSettings settings, ILogger log)
    {
        _cluster = Akka.Cluster.Cluster.Get(Context.System);
        // No meter: /metrics reports each node's own alerts, and the cluster's are not this node's.
        _rules = Context.ActorOf(MonitorActor.Props(settings, metrics: null, log), "rules");

        Receive<NodeCounts>(OnCounts);
        Receive<NodeLost>(lost =>
        {
            // Survivors repeat NodeLost until answered (a message sent while the singleton moves is lost with
            // the old one), so the choice is remembered and the chosen survivor hears "report" every time.
            var first = _lostNodes.TryAdd(lost.Node, Sender);
            if (first)
            {
                // A node this monitor never heard from (it started after the node went): its books were never counted
                // in, so they are adopted (live connections as the survivor's replica counts them) before its live
                // connections close, and the cluster's counters stay the nodes' sum.
                if (!_last.Remove(lost.Node))
                    _rules.Tell(new MonitorEvents.BooksAdopted((lost.Totals ?? RegistryProtocol.Stats.Empty) with { Active = lost.Lost }));
                _rules.Tell(new MonitorEvents.NodeDown(lost.Node, lost.Lost));
            }
            Sender.Tell(new ReportLoss(lost.Node, lost.Incarnation, _lostNodes[lost.Node].Equals(Sender)));
        });
        Receive<ClusterEvent.MemberUp>(up =>
        {
            var node = ClusterRegistry.NodeName(up.Member.Address);
            _lostNodes.Remove(node);
            _rules.Tell(new MonitorEvents.NodeUp(node));
        });
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<MonitorProtocol.GetAlerts>(query => _rules.Forward(query));
        Receive<MonitorProtocol.GetCounters>(query => _rules.Forward(query));
    }

    protected override void PreStart() =>
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    private void OnCounts(NodeCounts counts)
    {
        if (_lostNodes.ContainsKey(counts.Node)) return; // a straggler from a node already reported lost
        if (!_last.TryGetValue(counts.Node, out var last) || last.Incarnation != counts.Incarnation)
        {
            // First word from this node since this monitor started (a new incarnation is a new node's books): what
            // it has counted so far joins the cluster's counters, though in no window (it happened before the monitor
            // could see it).
            _rules.Tell(new MonitorEvents.BooksAdopted(counts.Totals));
        }
        else
        {
            // The node's books as they are (DESIGN §3, "One lifecycle"): a refusal is in accepted and in its close reason at once, as on the
            // node, so the cluster's counters add up to the nodes' exactly.
            var opened = Math.Max(0, counts.Totals.Accepted - last.Totals.Accepted);
            var refused = Math.Max(0, counts.Totals.Refused - last.Totals.Refused);
            var closed = new Dictionary<CloseReason, long>();
            foreach (var (name, count) in counts.Totals.ClosedByReason)
            {
                var delta = count - last.Totals.ClosedByReason.GetValueOrDefault(name);
                if (delta > 0 && CloseReasons.TryParse(name, out var reason)) closed[reason] = delta;
            }
            if (opened > 0 || closed.Count > 0)
                _rules.Tell(new MonitorEvents.ConnectionsCounted(opened, closed, refused));
        }
        _last[counts.Node] = counts;
    }
}
