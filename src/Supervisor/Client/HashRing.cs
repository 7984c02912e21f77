using System.IO.Hashing;
using System.Text;

namespace Supervisor.Client;

/// <summary>
/// A consistent-hash ring (the source document's shard-by-hash pool, done so that losing one member moves
/// only its keys): every member owns <c>virtualNodes</c> points; a key belongs to the first point at or
/// after its hash, clockwise. <see cref="Walk"/> yields the owner and then the other members in ring order,
/// which is where a key goes when its owner cannot serve it.
/// </summary>
internal sealed class HashRing
{
    private readonly ulong[] _points;
    private readonly int[] _owners;

    public HashRing(IReadOnlyList<string> members, int virtualNodes)
    {
        ArgumentOutOfRangeException.ThrowIfZero(members.Count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(virtualNodes);
        Members = members;
        var points = new List<(ulong Point, int Member)>(members.Count * virtualNodes);
        for (var m = 0; m < members.Count; m++)
            for (var v = 0; v < virtualNodes; v++)
                points.Add((Hash($"{members[m]}#{v}"), m));
        points.Sort((a, b) => a.Point != b.Point ? a.Point.CompareTo(b.Point) : a.Member.CompareTo(b.Member));
        _points = points.Select(p => p.Point).ToArray();
        _owners = points.Select(p => p.Member).ToArray();
    }

    public IReadOnlyList<string> Members { get; }

    /// <summary>64-bit XxHash3 of the UTF-8 text: stable across processes and machines.</summary>
    public static ulong Hash(string text) => XxHash3.HashToUInt64(Encoding.UTF8.GetBytes(text));

    /// <summary>The member that owns the key.</summary>
    public int Owner(string key) => _owners[StartIndex(key)];

    /// <summary>Every member once, starting with the key's owner and going clockwise round the ring.</summary>
    public IEnumerable<int> Walk(string key)
    {
        var seen = new bool[Members.Count];
        var found = 0;
        var start = StartIndex(key);
        for (var i = 0; i < _points.Length && found < Members.Count; i++)
        {
            var member = _owners[(start + i) % _points.Length];
            if (seen[member]) continue;
            seen[member] = true;
            found++;
            yield return member;
        }
    }

    private int StartIndex(string key)
    {
        var index = Array.BinarySearch(_points, Hash(key));
        if (index < 0) index = ~index;
        return index == _points.Length ? 0 : index;
    }
}
