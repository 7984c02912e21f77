using System.Diagnostics;
using System.Text.Json;
using Supervisor.Tests.Client;
using Supervisor.Tests.Http;
using Supervisor.Tests.Processes;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Cluster;

/// <summary>One supervisor node: its own OS process, TCP listener, HTTP surface and cluster address.</summary>
public sealed class ClusterNode(ServiceProcess process, int tcpPort, ApiClient api, string name) : IDisposable
{
    public ServiceProcess Process { get; } = process;
    public int TcpPort { get; } = tcpPort;
    public ApiClient Api { get; } = api;

    /// <summary><c>127.0.0.1:PORT</c>: the cluster address, and the suffix of this node's connection ids.</summary>
    public string Name { get; } = name;

    public void Dispose()
    {
        Api.Dispose();
        Process.Dispose();
    }
}

/// <summary>
/// N supervisor processes on loopback forming one Akka.Cluster: the first two are the seed nodes (fixed ports
/// picked free just before), the others take kernel-chosen ports. Test-sized failure detection: a silent node is
/// unreachable after 1 s and downed 1 s later.
/// </summary>
public sealed class ClusterNodes : IAsyncDisposable
{
    public const string FailureDetection = """
        downing.stable-after = 1s
        failure-detector { heartbeat-interval = 200ms, acceptable-heartbeat-pause = 1s }
        """;

    /// <summary>Unreachable after the acceptable pause, downed after stable-after: 2 s, plus gossip and scheduling slack.</summary>
    public static readonly TimeSpan DowningBudget = TimeSpan.FromSeconds(6);

    private readonly List<ClusterNode> _nodes;

    private ClusterNodes(List<ClusterNode> nodes) => _nodes = nodes;

    public IReadOnlyList<ClusterNode> Nodes => _nodes;

    public ClusterNode this[int index] => _nodes[index];

    public static async Task<ClusterNodes> StartAsync(int count, ITestOutputHelper output)
    {
        var seeds = new[] { ClientTestSupport.FreePort(), ClientTestSupport.FreePort() };
        var processes = Enumerable.Range(0, count).Select(i => ServiceProcess.Start(ServiceProcess.Config($$"""
            supervisor {
              http { enabled = on, port = 0 }
              cluster {
                enabled = on
                port = {{(i < seeds.Length ? seeds[i] : 0)}}
                seed-nodes = ["127.0.0.1:{{seeds[0]}}", "127.0.0.1:{{seeds[1]}}"]
                {{FailureDetection}}
              }
            }
            """), output: output)).ToList();
        var nodes = new List<ClusterNode>();
        try
        {
            foreach (var process in processes)
            {
                var tcp = await process.WaitForListenerPortAsync(TimeSpan.FromSeconds(30));
                var http = await process.WaitForListenerPortAsync(TimeSpan.FromSeconds(30), listener: "http");
                var api = new ApiClient(new Uri($"http://127.0.0.1:{http}/"));
                var self = (await api.GetOkAsync("/api/cluster")).GetProperty("self").GetString()!;
                nodes.Add(new ClusterNode(process, tcp, api, self));
            }
            var cluster = new ClusterNodes(nodes);
            foreach (var node in nodes)
                await node.Api.WaitForAsync("/api/cluster", view => UpMembers(view) == count, TimeSpan.FromSeconds(30));
            return cluster;
        }
        catch
        {
            foreach (var node in nodes) node.Dispose();
            foreach (var process in processes.Skip(nodes.Count)) process.Dispose();
            throw;
        }
    }

    public static int UpMembers(JsonElement view) =>
        view.GetProperty("members").EnumerateArray().Count(m => m.GetProperty("status").GetString() == "up" && m.GetProperty("reachable").GetBoolean());

    /// <summary>Opens <paramref name="count"/> peers on the node, each proved registered by one heartbeat answered.</summary>
    public static async Task<List<TestPeer>> ConnectAsync(ClusterNode node, int count)
    {
        var peers = new List<TestPeer>();
        for (var i = 0; i < count; i++)
        {
            var peer = await TestPeer.ConnectAsync(node.TcpPort);
            peers.Add(peer);
            await peer.SendHeartbeatAsync(seq: i);
            var answer = await peer.ReceiveFrameAsync();
            Assert.NotNull(answer);
        }
        return peers;
    }

    /// <summary>How long until every node's <c>/api/stats</c> satisfies the condition at once.</summary>
    public async Task<TimeSpan> UntilAllStatsAsync(Func<JsonElement, bool> condition, TimeSpan timeout, IEnumerable<ClusterNode>? among = null)
    {
        var nodes = (among ?? _nodes).ToArray();
        var watch = Stopwatch.StartNew();
        JsonElement[] last = [];
        while (watch.Elapsed < timeout)
        {
            last = await Task.WhenAll(nodes.Select(n => n.Api.GetOkAsync("/api/stats")));
            if (last.All(condition)) return watch.Elapsed;
            await Task.Delay(20);
        }
        throw new TimeoutException($"stats never agreed within {timeout.TotalSeconds:F1} s; last: {string.Join(" | ", last.Select(s => s.ToString()))}");
    }

    /// <summary>Kills what is left: a graceful leave of every node takes seconds, and the tests that want one ask for it.</summary>
    public ValueTask DisposeAsync()
    {
        foreach (var node in _nodes) node.Dispose();
        return ValueTask.CompletedTask;
    }
}
