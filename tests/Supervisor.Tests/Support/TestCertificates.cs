using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Supervisor.Tests.Support;

/// <summary>A self-signed certificate for localhost/127.0.0.1 written as PEM files into a temporary folder.</summary>
public sealed class TestCertificates : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("supervisor-tls-").FullName;

    public TestCertificates()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        Issued = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        CertificateFile = Path.Combine(_directory, "server.crt");
        KeyFile = Path.Combine(_directory, "server.key");
        File.WriteAllText(CertificateFile, Issued.ExportCertificatePem());
        File.WriteAllText(KeyFile, key.ExportPkcs8PrivateKeyPem());
    }

    public X509Certificate2 Issued { get; }
    public string CertificateFile { get; }
    public string KeyFile { get; }

    /// <summary>Hex SHA-256 of the certificate, as <c>tls.pin-sha256</c> takes it.</summary>
    public string PinSha256 => Convert.ToHexString(Issued.GetCertHash(HashAlgorithmName.SHA256));

    /// <summary>HOCON that turns TLS on for <paramref name="block"/> (e.g. <c>supervisor.tcp.tls</c>).</summary>
    public string Hocon(string block) => $$"""{{block}} { enabled = on, certificate = "{{CertificateFile}}", key = "{{KeyFile}}" }""";

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
