using Akka.Actor;
using Akka.Cluster;
using static Supervisor.Messages.Protocol.ClusterProtocol;

namespace Supervisor.Cluster;

/// <summary>
/// The members and their reachability as this node's cluster events report them, and what follows from that alone:
/// who can answer a question now, who is being detected as gone, which node holds a connection, the view
/// <c>/api/cluster</c> shows. Owned by one <see cref="ClusterRegistry"/>, which feeds it the events; a plain object
/// so the registry's other parts read one picture of the membership.
/// </summary>
internal sealed class ClusterMembership(Address self)
{
    private readonly Dictionary<Address, Member> _members = [];
    private readonly HashSet<Address> _unreachable = [];

    public Address Self { get; } = self;

    /// <summary>Every member in the view, in the order they were first seen (replication goes to them in this order).</summary>
    public IEnumerable<Address> Addresses => _members.Keys;

    /// <summary>A member's latest state (up, leaving, exiting, down, …), from whichever event came last.</summary>
    public void Seen(Member member) => _members[member.Address] = member;

    public void Removed(Address address)
    {
        _members.Remove(address);
        _unreachable.Remove(address);
    }

    public void Unreachable(Address address) => _unreachable.Add(address);

    public void Reachable(Address address) => _unreachable.Remove(address);

    public bool IsMember(Address address) => _members.ContainsKey(address);

    public bool TryGet(Address address, out Member member) => _members.TryGetValue(address, out member!);

    public bool IsUnreachable(Address address) => _unreachable.Contains(address);

    private static bool Gone(Member member) => member.Status is MemberStatus.Down or MemberStatus.Removed;

    /// <summary>
    /// Members that can answer now; the others are counted from their replicas. This node always answers for itself,
    /// joined or not (a node whose seeds are not up yet still reports its own connections).
    /// </summary>
    public Address[] Answering() =>
        _members.Values
            .Where(m => !_unreachable.Contains(m.Address) && !Gone(m))
            .Select(m => m.Address)
            .Append(Self)
            .Distinct()
            .ToArray();

    /// <summary>Members not marked down that cannot answer now (<paramref name="answering"/> left out): their replicas answer for them.</summary>
    public IEnumerable<Address> Silent(IEnumerable<Address> answering) =>
        _members.Values.Where(m => !Gone(m)).Select(m => m.Address).Except(answering);

    /// <summary>Members being detected as gone; a node already marked down had its connections reported node-down.</summary>
    public string[] UnreachableNodes() =>
        _members.Values
            .Where(m => _unreachable.Contains(m.Address) && !Gone(m))
            .Select(m => ClusterRegistry.NodeName(m.Address)).ToArray();

    /// <summary>The member whose <c>host:port</c> is <paramref name="node"/> (this node for an id without one); null when none is.</summary>
    public Address? Owner(string? node) =>
        node is null ? Self : _members.Keys.FirstOrDefault(a => ClusterRegistry.NodeName(a) == node);

    /// <summary>What <c>/api/cluster</c> shows (without the cluster monitor's counters, which the operator surface asks for).</summary>
    /// <param name="connections">Live connections a member holds: this node's own count, a replica's for the others.</param>
    /// <param name="roles">This node's configured roles, shown while it has not joined.</param>
    public ClusterView View(Address? leader, Func<Address, long> connections, IReadOnlyList<string> roles, IReadOnlyList<Departure> departures)
    {
        var up = _members.Values.Where(m => m.Status == MemberStatus.Up).ToArray();
        var oldest = up.Length == 0 ? null : up.Aggregate((a, b) => b.IsOlderThan(a) ? b : a);
        var members = _members.Values
            .Select(m => new MemberView(
                ClusterRegistry.NodeName(m.Address),
                m.Status.ToString().ToLowerInvariant(),
                !_unreachable.Contains(m.Address),
                m.Roles.OrderBy(r => r, StringComparer.Ordinal).ToArray(),
                connections(m.Address),
                m.Address == Self))
            .ToList();
        // Until it has joined (its seeds are not up yet), this node is no member, yet it holds connections.
        if (!_members.ContainsKey(Self))
            members.Add(new MemberView(ClusterRegistry.NodeName(Self), "not-joined", true, roles, connections(Self), true));
        members.Sort((a, b) => string.CompareOrdinal(a.Node, b.Node));
        return new ClusterView(true, ClusterRegistry.NodeName(Self), leader is null ? null : ClusterRegistry.NodeName(leader),
            oldest is null ? null : ClusterRegistry.NodeName(oldest.Address), members, departures);
    }
}
