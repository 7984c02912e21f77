using Akka.Actor;
using Microsoft.Extensions.Logging;
using Supervisor.Messages.Protocol;
using static Supervisor.Messages.Protocol.PoolProtocol;

namespace Supervisor.Client;

/// <summary>
/// N heartbeat-supervised connections to one endpoint (issue 5). <see cref="PoolProtocol.Get"/> hashes the
/// key onto a <see cref="HashRing"/> and leases the owner if it is healthy, else the next healthy member
/// clockwise; a suspect or reconnecting member is never leased. Members are <see cref="HeartbeatClient"/>
/// children that heal themselves; the pool only follows their events. A member that fails is restarted
/// (its PostStop releases the socket), which for an outbound connection means a fresh connect.
/// </summary>
internal sealed class HeartbeatPool : ReceiveActor
{
    public static Props Props(string name, PoolSettings settings, ClientServices services, Random? random = null) =>
        Akka.Actor.Props.Create(() => new HeartbeatPool(name, settings, services, random ?? Random.Shared));

    private readonly string _name;
    private readonly PoolSettings _settings;
    private readonly ClientServices _services;
    private readonly Random _random;
    private readonly HashRing _ring;
    private readonly IActorRef[] _members;
    private readonly MemberHealth[] _health;
    private readonly Dictionary<string, int> _indexOf = [];

    public HeartbeatPool(string name, PoolSettings settings, ClientServices services, Random random)
    {
        _name = name;
        _settings = settings;
        _services = services;
        _random = random;
        var names = Enumerable.Range(0, settings.Size).Select(i => MemberName(name, i)).ToArray();
        for (var i = 0; i < names.Length; i++) _indexOf[names[i]] = i;
        _ring = new HashRing(names, settings.VirtualNodes);
        _members = new IActorRef[settings.Size];
        _health = Enumerable.Repeat(MemberHealth.Reconnecting, settings.Size).ToArray();

        Receive<Get>(get => Sender.Tell(Pick(get.Key) is { } member
            ? new Lease(get.Key, member, _ring.Members[member], _members[member])
            : new NoHealthyConnection(get.Key, _name)));
        Receive<SendTo>(send =>
        {
            if (Pick(send.Key) is { } member) _members[member].Forward(new ClientProtocol.Send(send.Data));
            else Sender.Tell(new NoHealthyConnection(send.Key, _name));
        });
        Receive<GetStats>(_ => Sender.Tell(Stats()));
        Receive<ClientProtocol.IClientEvent>(OnMemberEvent);
    }

    /// <summary>The client name of member <paramref name="index"/>, and its name on the ring: <c>POOL-INDEX</c>.</summary>
    public static string MemberName(string pool, int index) => $"{pool}-{index}";

    protected override void PreStart()
    {
        for (var i = 0; i < _members.Length; i++)
            _members[i] = Context.ActorOf(HeartbeatClient.Props(_ring.Members[i], _settings.Client, _services, [Self], _random), $"member-{i}");
        _services.Metrics.SetPoolStats(Stats());
    }

    protected override void PostStop() => _services.Metrics.RemovePool(_name);

    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(cause =>
    {
        _services.Log.LogError(cause, "Pool {Pool}: member {Member} failed and is restarted", _name, Sender.Path.Name);
        return Directive.Restart;
    });

    private int? Pick(string key)
    {
        foreach (var member in _ring.Walk(key))
            if (_health[member] == MemberHealth.Healthy) return member;
        return null;
    }

    private void OnMemberEvent(ClientProtocol.IClientEvent @event)
    {
        if (!_indexOf.TryGetValue(@event.Client, out var member)) return;
        MemberHealth? health = @event switch
        {
            ClientProtocol.Connected => MemberHealth.Healthy,
            ClientProtocol.Disconnected or ClientProtocol.Reconnecting => MemberHealth.Reconnecting,
            ClientProtocol.StateChanged { State: ClientState.Active } => MemberHealth.Healthy,
            ClientProtocol.StateChanged { State: ClientState.Suspect } => MemberHealth.Suspect,
            ClientProtocol.StateChanged => MemberHealth.Reconnecting,
            _ => null,
        };
        if (health is not { } changed || _health[member] == changed) return;
        _services.Log.LogInformation("Pool {Pool}: member {Member} is {Health}", _name, _ring.Members[member], changed.ToString().ToLowerInvariant());
        _health[member] = changed;
        _services.Metrics.SetPoolStats(Stats());
    }

    private PoolStats Stats() => new(
        _name,
        _settings.Client.Endpoint?.ToString() ?? "",
        _health.Length,
        _health.Count(h => h == MemberHealth.Healthy),
        _health.Count(h => h == MemberHealth.Suspect),
        _health.Count(h => h == MemberHealth.Reconnecting),
        _health.Select((h, i) => new MemberStatus(i, _ring.Members[i], h)).ToArray());
}
