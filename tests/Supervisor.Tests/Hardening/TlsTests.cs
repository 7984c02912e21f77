using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Hardening;

/// <summary>TLS on the TCP listener, checked with a real OpenSSL client and with .NET's SslStream.</summary>
public sealed class TlsTests(ITestOutputHelper output) : IDisposable
{
    private readonly TestCertificates _certificates = new();

    private Task<TestService> StartTlsService() => TestService.StartAsync(_certificates.Hocon("supervisor.tcp.tls"));

    [Fact]
    public async Task An_openssl_client_must_get_heartbeat_responses_over_tls()
    {
        await using var service = await StartTlsService();
        var start = new ProcessStartInfo("openssl") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "s_client", "-connect", $"127.0.0.1:{service.Port}", "-quiet" }) start.ArgumentList.Add(arg);
        using var openssl = Process.Start(start)!;
        try
        {
            await openssl.StandardInput.WriteAsync("{\"type\":0,\"timestamp\":1,\"seq\":77}\n");
            await openssl.StandardInput.FlushAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var line = await openssl.StandardOutput.ReadLineAsync(cts.Token);
            output.WriteLine($"openssl s_client received: {line}");
            var frame = JsonLinesCodec.Decode(Encoding.UTF8.GetBytes(line!)).Frame;
            Assert.Equal(FrameType.HeartbeatResponse, frame!.Type);
            Assert.Equal(77, frame.Seq);
            var connection = (await service.ConnectionsAsync()).Items.Single();
            Assert.Equal("tls", connection.Protocol);
        }
        finally
        {
            openssl.Kill(entireProcessTree: true);
            await openssl.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task A_dotnet_tls_client_must_exchange_frames_and_be_closed_cleanly()
    {
        var issued = _certificates.Issued;
        await using var service = await StartTlsService();
        using var client = new TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, service.Port);
        await using var tls = new SslStream(client.GetStream(), false,
            (_, presented, _, errors) => presented is not null && presented.GetCertHashString() == issued.GetCertHashString());
        await tls.AuthenticateAsClientAsync("localhost");
        var reader = new StreamReader(tls, Encoding.UTF8);
        for (var seq = 1; seq <= 3; seq++)
        {
            await tls.WriteAsync(Encoding.UTF8.GetBytes($"{{\"type\":0,\"seq\":{seq}}}\n"));
            Assert.Equal(seq, JsonLinesCodec.Decode(Encoding.UTF8.GetBytes((await reader.ReadLineAsync())!)).Frame!.Seq);
        }
        await tls.WriteAsync("{\"type\":2,\"data\":\"over tls\"}\n"u8.ToArray());
        Assert.Equal("over tls", JsonLinesCodec.Decode(Encoding.UTF8.GetBytes((await reader.ReadLineAsync())!)).Frame!.Data);
        await tls.WriteAsync("not json\n"u8.ToArray());
        var notice = JsonLinesCodec.Decode(Encoding.UTF8.GetBytes((await reader.ReadLineAsync())!)).Frame!;
        Assert.StartsWith("protocol-error: ", notice.Data);
        Assert.Null(await reader.ReadLineAsync());
    }

    [Fact]
    public async Task A_plaintext_client_on_the_tls_port_must_get_nothing_but_a_close()
    {
        await using var service = await StartTlsService();
        using var plain = await TestPeer.ConnectAsync(service.Port);
        await plain.SendAsync("{\"type\":0,\"timestamp\":1,\"seq\":1}\n");
        var received = new List<byte>();
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        while (true)
        {
            int read;
            try { read = await plain.Socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token); }
            catch (SocketException) { break; }
            if (read == 0) break;
            received.AddRange(buffer.AsSpan(0, read).ToArray());
        }
        output.WriteLine($"plaintext client received {received.Count} bytes before the close");
        Assert.DoesNotContain((byte)'{', received);
        await service.WaitForStatsAsync(s => s.Closed(CloseReason.ProtocolError) == 1 && s.Active == 0);
    }

    [Fact]
    public async Task A_dotnet_websocket_client_must_exchange_frames_over_wss()
    {
        var issued = _certificates.Issued;
        await using var service = await TestService.StartAsync(_certificates.Hocon("supervisor.websocket.tls"));
        using var client = new System.Net.WebSockets.ClientWebSocket();
        client.Options.RemoteCertificateValidationCallback = (_, presented, _, _) =>
            presented is not null && presented.GetCertHashString() == issued.GetCertHashString();
        await client.ConnectAsync(new Uri($"wss://127.0.0.1:{service.WebSocketPort}/ws"), CancellationToken.None);
        await client.SendAsync("{\"type\":0,\"seq\":5}"u8.ToArray(), System.Net.WebSockets.WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[1024];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var received = await client.ReceiveAsync(buffer, cts.Token);
        var frame = JsonLinesCodec.Decode(buffer.AsSpan(0, received.Count).TrimEnd((byte)'\n')).Frame;
        Assert.Equal(FrameType.HeartbeatResponse, frame!.Type);
        Assert.Equal(5, frame.Seq);
        Assert.Contains((await service.ConnectionsAsync()).Items, c => c.Protocol == "ws");
        // The plain TCP listener stays plain: only the WebSocket listener was given TLS.
        using var plain = await TestPeer.ConnectAsync(service.Port);
        await plain.SendHeartbeatAsync(1);
        Assert.Equal(1, (await plain.ReceiveFrameAsync())!.Seq);
    }

    [Fact]
    public async Task OpenSSL_must_free_a_tls_connections_record_buffers_between_records_and_records_must_still_flow()
    {
        // Without the mode an idle TLS connection keeps ~34 KB of OpenSSL buffers (bench/README.md, issue 16); this
        // fails when a .NET or OpenSSL update moves what OpenSslBuffers reaches into, instead of silently costing it.
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, ((System.Net.IPEndPoint)listener.LocalEndpoint).Port);
        using var accepted = await listener.AcceptTcpClientAsync();
        await using var server = new SslStream(accepted.GetStream());
        await using var peer = new SslStream(client.GetStream(), false, (_, _, _, _) => true);
        await Task.WhenAll(
            server.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificates.Issued }),
            peer.AuthenticateAsClientAsync("localhost"));

        Assert.True(Supervisor.Transport.OpenSslBuffers.Release(server), "SSL_MODE_RELEASE_BUFFERS could not be set");

        var buffer = new byte[64];
        for (var round = 0; round < 3; round++)
        {
            await peer.WriteAsync("ping\n"u8.ToArray());
            Assert.Equal("ping\n", Encoding.UTF8.GetString(buffer, 0, await server.ReadAsync(buffer)));
            await server.WriteAsync("pong\n"u8.ToArray());
            Assert.Equal("pong\n", Encoding.UTF8.GetString(buffer, 0, await peer.ReadAsync(buffer)));
        }
    }

    public void Dispose() => _certificates.Dispose();
}
