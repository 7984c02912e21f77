using Supervisor.Configuration;

namespace Supervisor.Client;

/// <summary>
/// The order in which one client prefers the endpoints of one service (<c>client.endpoints</c>): rendezvous hashing
/// (highest random weight), each endpoint scored by a hash of the client's key and the endpoint, best first. The
/// first is the client's home; a crowd of clients spreads evenly over the endpoints as homes, and the clients of one
/// endpoint that goes away spread evenly over the others as their second choice, with nothing shared between clients.
/// Taking an endpoint out of the list moves only the clients whose home it was (unlike a modulo of the hash).
/// </summary>
internal sealed class EndpointRanking
{
    public EndpointRanking(IReadOnlyList<HostPort> endpoints, string key)
    {
        ArgumentOutOfRangeException.ThrowIfZero(endpoints.Count);
        Ranked = endpoints
            .Select(endpoint => (Endpoint: endpoint, Score: HashRing.Hash($"{key}|{endpoint}")))
            .OrderByDescending(scored => scored.Score)
            .ThenBy(scored => scored.Endpoint.ToString(), StringComparer.Ordinal)
            .Select(scored => scored.Endpoint)
            .ToArray();
    }

    /// <summary>Every endpoint once, the client's home first.</summary>
    public IReadOnlyList<HostPort> Ranked { get; }

    public int Count => Ranked.Count;

    /// <summary>
    /// The default key of a client: its name, the host and the process, so that one client name used by many
    /// instances of an application still spreads them over the nodes. Stable for the process's life.
    /// </summary>
    public static string DefaultKey(string name) => $"{name}@{Environment.MachineName}/{Environment.ProcessId}";

    /// <summary>Where to go after the endpoint at <paramref name="leaving"/> said it is shutting down: the most preferred other one.</summary>
    public int AfterShutdown(int leaving) => leaving != 0 || Count == 1 ? 0 : 1;

    /// <summary>Where to try after the endpoint at <paramref name="failed"/> failed (a refused connect, a lost connection): the next, round the ranking.</summary>
    public int Next(int failed) => (failed + 1) % Count;
}
