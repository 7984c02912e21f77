using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
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
    public async Task A_listener_must_send_the_chain_of_its_certificate_file_and_a_client_trusting_only_the_root_must_accept_it()
    {
        // A root, an intermediate, and a leaf the intermediate issued; the file holds the leaf and the intermediate,
        // as a CA delivers them. The listener's certificate context is made from the file with no downloads, so the
        // intermediate reaches the client only if the listener sends it.
        using var rootKey = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        using var intermediateKey = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        using var leafKey = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var sha256 = System.Security.Cryptography.HashAlgorithmName.SHA256;
        var notBefore = DateTimeOffset.UtcNow.AddMinutes(-5);
        var notAfter = DateTimeOffset.UtcNow.AddDays(1);
        static System.Security.Cryptography.X509Certificates.CertificateRequest Authority(string name, System.Security.Cryptography.ECDsa key)
        {
            var request = new System.Security.Cryptography.X509Certificates.CertificateRequest(name, key, System.Security.Cryptography.HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new System.Security.Cryptography.X509Certificates.X509BasicConstraintsExtension(true, false, 0, true));
            request.CertificateExtensions.Add(new System.Security.Cryptography.X509Certificates.X509KeyUsageExtension(
                System.Security.Cryptography.X509Certificates.X509KeyUsageFlags.KeyCertSign | System.Security.Cryptography.X509Certificates.X509KeyUsageFlags.CrlSign, true));
            request.CertificateExtensions.Add(new System.Security.Cryptography.X509Certificates.X509SubjectKeyIdentifierExtension(request.PublicKey, false));
            return request;
        }
        using var root = Authority("CN=Test Root", rootKey).CreateSelfSigned(notBefore, notAfter);
        using var intermediate = Authority("CN=Test Intermediate", intermediateKey)
            .Create(root, notBefore, notAfter, [1, 2, 3, 4]).CopyWithPrivateKey(intermediateKey);
        var leafRequest = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=localhost", leafKey, sha256);
        var names = new System.Security.Cryptography.X509Certificates.SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        leafRequest.CertificateExtensions.Add(names.Build());
        using var leaf = leafRequest.Create(intermediate, notBefore, notAfter, [5, 6, 7, 8]);
        var directory = Directory.CreateTempSubdirectory("supervisor-chain-").FullName;
        try
        {
            var certificateFile = Path.Combine(directory, "chain.crt");
            var keyFile = Path.Combine(directory, "leaf.key");
            File.WriteAllText(certificateFile, leaf.ExportCertificatePem() + "\n" + intermediate.ExportCertificatePem() + "\n");
            File.WriteAllText(keyFile, leafKey.ExportPkcs8PrivateKeyPem());
            await using var service = await TestService.StartAsync(
                $$"""supervisor.tcp.tls { enabled = on, certificate = "{{certificateFile}}", key = "{{keyFile}}" }""");

            using var client = new TcpClient();
            await client.ConnectAsync(System.Net.IPAddress.Loopback, service.Port);
            await using var tls = new SslStream(client.GetStream(), false);
            var policy = new System.Security.Cryptography.X509Certificates.X509ChainPolicy
            {
                TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust,
                RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                DisableCertificateDownloads = true,
            };
            policy.CustomTrustStore.Add(root);
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost", CertificateChainPolicy = policy });
            await tls.WriteAsync("{\"type\":0,\"seq\":9}\n"u8.ToArray());
            var line = await new StreamReader(tls, Encoding.UTF8).ReadLineAsync();
            Assert.Equal(9, JsonLinesCodec.Decode(Encoding.UTF8.GetBytes(line!)).Frame!.Seq);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
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
