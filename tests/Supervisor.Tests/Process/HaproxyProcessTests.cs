using System.Net;
using System.Text.Json;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Client;
using Supervisor.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Supervisor.Tests.Processes;

/// <summary>
/// The service behind a real HAProxy (Debian's package, installed by scripts/setup.sh) in TCP mode, sending
/// PROXY protocol v2 (<c>send-proxy-v2</c>) and v1 (<c>send-proxy</c>). Clients connect to HAProxy from
/// addresses of their own (127.0.0.2, 127.0.0.3: all of 127.0.0.0/8 is loopback) while HAProxy reaches the
/// service from 127.0.0.1, so the client's address and the balancer's differ as behind a real balancer.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class HaproxyProcessTests(ITestOutputHelper output)
{
    private static readonly IPAddress ClientA = IPAddress.Parse("127.0.0.2");
    private static readonly IPAddress ClientB = IPAddress.Parse("127.0.0.3");

    /// <summary>HAProxy in the foreground with a generated configuration; killed on dispose.</summary>
    private sealed class Haproxy : ChildProcess
    {
        private readonly DirectoryInfo _directory;

        private Haproxy(DirectoryInfo directory, string config, ITestOutputHelper output)
            : base("haproxy", Program, ["-db", "-f", config], output: output) => _directory = directory;

        private static string Program => Tools.Find("haproxy")
            ?? throw new InvalidOperationException("haproxy is not installed: run scripts/setup.sh (it installs Debian's haproxy package)");

        /// <param name="service">The service's PROXY protocol listener.</param>
        /// <returns>HAProxy and its frontends: v2 (<c>send-proxy-v2</c>), v1 (<c>send-proxy</c>), and v2 from 127.0.0.9, outside the trusted networks.</returns>
        public static async Task<(Haproxy Process, int V2, int V1, int Untrusted)> StartAsync(int service, ITestOutputHelper output)
        {
            var (v2, v1, untrusted) = (ClientTestSupport.FreePort(), ClientTestSupport.FreePort(), ClientTestSupport.FreePort());
            var directory = Directory.CreateTempSubdirectory("haproxy-");
            var config = Path.Combine(directory.FullName, "haproxy.cfg");
            File.WriteAllText(config, $"""
                global
                    maxconn 200
                defaults
                    mode tcp
                    timeout connect 5s
                    timeout client 60s
                    timeout server 60s
                frontend v2
                    bind 127.0.0.1:{v2}
                    default_backend v2
                backend v2
                    server s1 127.0.0.1:{service} send-proxy-v2 source 127.0.0.1
                frontend v1
                    bind 127.0.0.1:{v1}
                    default_backend v1
                backend v1
                    server s1 127.0.0.1:{service} send-proxy source 127.0.0.1
                frontend untrusted
                    bind 127.0.0.1:{untrusted}
                    default_backend untrusted
                backend untrusted
                    server s1 127.0.0.1:{service} send-proxy-v2 source 127.0.0.9

                """);
            var haproxy = new Haproxy(directory, config, output);
            try
            {
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
                foreach (var port in new[] { v2, v1, untrusted })
                    while (!IsListening(port))
                    {
                        if (haproxy.HasExited || DateTime.UtcNow > deadline) throw haproxy.Failure($"haproxy is not accepting on 127.0.0.1:{port}");
                        await Task.Delay(50);
                    }
                return (haproxy, v2, v1, untrusted);
            }
            catch
            {
                haproxy.Dispose();
                throw;
            }
        }

        /// <summary>
        /// Whether 127.0.0.1:<paramref name="port"/> is in LISTEN in the kernel's table: a probe connection would be
        /// forwarded to the service and show up in what the test counts.
        /// </summary>
        private static bool IsListening(int port)
        {
            var local = $"0100007F:{port:X4}";
            return File.ReadLines("/proc/net/tcp").Skip(1)
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Any(f => f.Length > 3 && f[1] == local && f[3] == "0A");
        }

        protected override void Dispose(bool disposing)
        {
            base.Dispose(disposing);
            _directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Behind_haproxy_the_registry_logs_and_per_address_cap_must_see_the_clients_address_and_an_untrusted_header_must_be_refused()
    {
        var httpPort = ClientTestSupport.FreePort();
        using var service = ServiceProcess.Start(ServiceProcess.Config($$"""
            supervisor {
              http { enabled = on, port = {{httpPort}} }
              tcp.proxy-protocol { enabled = on, trusted-networks = ["127.0.0.1/32"] }
              tcp.limits.max-connections-per-address = 2
            }
            """), output: output);
        var port = await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20));
        await service.WaitForLineAsync(l => l.Contains($"Listener http accepting on 127.0.0.1:{httpPort}", StringComparison.Ordinal), TimeSpan.FromSeconds(20), "the http listener");
        var (haproxy, v2, v1, untrusted) = await Haproxy.StartAsync(port, output);
        using var _ = haproxy;
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}"), Timeout = TimeSpan.FromSeconds(10) };

        // Two clients of A through send-proxy-v2, one of B through send-proxy (v1): all three reach the service
        // from HAProxy's 127.0.0.1, so a cap of 2 on the socket's address would refuse the third.
        using var a1 = await ConnectAndHeartbeatAsync(v2, ClientA);
        using var a2 = await ConnectAndHeartbeatAsync(v2, ClientA);
        using var b1 = await ConnectAndHeartbeatAsync(v1, ClientB);

        var remotes = await RemotesAsync(http);
        output.WriteLine($"/api/connections remotes: {string.Join(", ", remotes)}");
        Assert.Equal(new[] { Endpoint(a1), Endpoint(a2), Endpoint(b1) }.Order(), remotes.Order());
        foreach (var peer in new[] { a1, a2, b1 })
            await service.WaitForLineAsync(l => l.Contains($"opened from {Endpoint(peer)} on listener tcp", StringComparison.Ordinal), TimeSpan.FromSeconds(10),
                $"the open line of {Endpoint(peer)}");

        // A third connection of A is over the cap of its own address: refused after the admission grace (1 s).
        using (var a3 = await TestPeer.ConnectAsync(v2, ClientA))
        {
            await a3.SendHeartbeatAsync(1);
            var notice = Assert.Single(await a3.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal("rejected-capacity: address 127.0.0.2 holds its maximum of 2 connections on listener tcp", notice.Data);
            await service.WaitForLineAsync(l => l.Contains($"Connection from {Endpoint(a3)} on listener tcp refused: rejected-capacity", StringComparison.Ordinal),
                TimeSpan.FromSeconds(10), "the refusal line naming the client");
        }

        // HAProxy reaching the service from 127.0.0.9, outside the trusted networks: its v2 header is refused, and
        // the notice reaches the client through HAProxy.
        using (var stranger = await TestPeer.ConnectAsync(untrusted, IPAddress.Parse("127.0.0.4")))
        {
            await stranger.SendHeartbeatAsync(1);
            var notice = Assert.Single(await stranger.ReceiveUntilClosedAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal("protocol-error: PROXY protocol listener: 127.0.0.9 is not in proxy-protocol.trusted-networks, and only trusted proxies may connect", notice.Data);
            await service.WaitForLineAsync(l => l.Contains("Connection from 127.0.0.9:", StringComparison.Ordinal)
                && l.Contains("refused: protocol-error (PROXY protocol listener: 127.0.0.9 is not in proxy-protocol.trusted-networks", StringComparison.Ordinal),
                TimeSpan.FromSeconds(10), "the refusal line of the untrusted source");
        }

        using var stats = JsonDocument.Parse(await http.GetStringAsync("/api/stats"));
        var closed = stats.RootElement.GetProperty("closedByReason");
        output.WriteLine($"/api/stats: {stats.RootElement}");
        Assert.Equal(3, stats.RootElement.GetProperty("active").GetInt32());
        Assert.Equal(1, closed.GetProperty("rejected-capacity").GetInt32());
        Assert.True(closed.GetProperty("protocol-error").GetInt32() >= 1);

        // The clients are served as before: the header was taken exactly, nothing of their frames with it.
        foreach (var peer in new[] { a1, a2, b1 }) await HeartbeatAsync(peer, 2);
    }

    private static string Endpoint(TestPeer peer) => peer.Socket.LocalEndPoint!.ToString()!;

    private static async Task<TestPeer> ConnectAndHeartbeatAsync(int port, IPAddress from)
    {
        var peer = await TestPeer.ConnectAsync(port, from);
        await HeartbeatAsync(peer, 1);
        return peer;
    }

    private static async Task HeartbeatAsync(TestPeer peer, long seq)
    {
        await peer.SendHeartbeatAsync(seq);
        var response = await peer.ReceiveFrameAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((FrameType.HeartbeatResponse, seq), (response?.Type, response?.Seq));
    }

    private static async Task<string[]> RemotesAsync(HttpClient http)
    {
        using var page = JsonDocument.Parse(await http.GetStringAsync("/api/connections"));
        return page.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("remote").GetString()!).ToArray();
    }
}
