using Akka.Actor;
using Akka.TestKit;
using Supervisor.Client;
using Supervisor.Monitoring;
using Supervisor.Tests.Support;
using Xunit.Abstractions;
using static Supervisor.Messages.Protocol.ClientProtocol;
using static Supervisor.Tests.Client.ClientTestSupport;

namespace Supervisor.Tests.Client;

/// <summary>The heartbeat client over TLS against our TLS listener: validated by a pinned hash or a given CA.</summary>
public sealed class ClientTlsTests : Akka.TestKit.Xunit2.TestKit
{
    private readonly ITestOutputHelper _output;

    public ClientTlsTests(ITestOutputHelper output) : base(output: output) => _output = output;

    private readonly LogCapture _logs = new();
    private readonly SupervisorMetrics _metrics = new();
    private readonly TestCertificates _certificates = new();

    protected override void AfterAll()
    {
        _metrics.Dispose();
        _certificates.Dispose();
        base.AfterAll();
    }

    private TestProbe Start(string name, ClientSettings settings)
    {
        var events = CreateTestProbe();
        Sys.ActorOf(HeartbeatClient.Props(name, settings, Services(_logs, _metrics), [events.Ref]), name);
        return events;
    }

    [Theory]
    [InlineData("pin")]
    [InlineData("ca")]
    public async Task Client_must_heartbeat_over_tls_when_the_server_certificate_checks_out(string check)
    {
        await using var service = await TestService.StartAsync(_certificates.Hocon("supervisor.tcp.tls"));
        var tls = check == "pin" ? new ClientTls(null, null, _certificates.PinSha256) : new ClientTls("localhost", _certificates.Issued, null);
        var events = Start($"tls-{check}", Fast(service.Port) with { Tls = tls });
        var answered = (HeartbeatAnswered)events.FishForMessage(m => m is HeartbeatAnswered, TimeSpan.FromSeconds(10));
        _output.WriteLine($"heartbeat answered over TLS ({check}): RTT {answered.RttMs:F2} ms");
        Assert.Contains((await service.ConnectionsAsync()).Items, c => c.Protocol == "tls");
    }

    [Fact]
    public async Task Client_must_refuse_a_server_whose_certificate_does_not_match_the_pin()
    {
        await using var service = await TestService.StartAsync(_certificates.Hocon("supervisor.tcp.tls"));
        var events = Start("tls-wrong-pin", Fast(service.Port) with { Tls = new ClientTls(null, null, new string('A', 64)) });
        var disconnected = (Disconnected)events.FishForMessage(m => m is Disconnected, TimeSpan.FromSeconds(10));
        _output.WriteLine($"disconnected: {disconnected}");
        Assert.Contains("TLS handshake failed", disconnected.ToString());
        events.FishForMessage(m => m is Reconnecting, TimeSpan.FromSeconds(5));
        Assert.DoesNotContain((await service.ConnectionsAsync()).Items, c => c.Protocol == "tls" && c.HeartbeatsReceived > 0);
    }
}
