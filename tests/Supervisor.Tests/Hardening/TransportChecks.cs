using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Supervisor.Http;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;

namespace Supervisor.Tests.Hardening;

/// <summary>What every transport test checks after a connection ends: the kernel's socket table, the registry, a bystander.</summary>
internal static class TransportChecks
{
    /// <summary>A data frame whose string is no text (a lone surrogate escape), then a heartbeat that must not be answered.</summary>
    public const string LoneSurrogateLines = "{\"type\":2,\"timestamp\":1,\"data\":\"\\ud800\"}\n{\"type\":0,\"timestamp\":1,\"seq\":1}\n";

    public static readonly string[] LoneSurrogateMessages = ["{\"type\":2,\"timestamp\":1,\"data\":\"\\ud800\"}", "{\"type\":0,\"timestamp\":1,\"seq\":1}"];

    /// <summary>
    /// The first bytes of a TLS 1.2 ClientHello record (handshake, version 3.1, 512 bytes announced), cut short: a
    /// handshake that has begun and waits for the rest.
    /// </summary>
    public static readonly byte[] PartialClientHello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x5a, 0x5b, 0x5c];

    /// <summary>Closes <paramref name="socket"/> with an RST instead of a FIN (SO_LINGER 0).</summary>
    public static void Reset(Socket socket)
    {
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
    }

    /// <summary>Sockets of the local <paramref name="port"/> in CLOSE-WAIT (peer closed, we did not), from /proc/net/tcp and tcp6.</summary>
    public static async Task<int> CloseWaitOnPortAsync(int port) =>
        (await ProcNet.ReadTcpTablesAsync(CancellationToken.None)).Count(s => s.Port == port && s.State == ProcNet.CloseWait);

    /// <summary>Waits until no socket of <paramref name="port"/> is left in CLOSE-WAIT; fails with the count otherwise.</summary>
    public static async Task AssertNoCloseWaitAsync(int port, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(5));
        int count;
        while ((count = await CloseWaitOnPortAsync(port)) > 0)
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"{count} sockets of port {port} left in CLOSE-WAIT");
            await Task.Delay(20);
        }
    }

    /// <summary>Waits until the registry lists exactly <paramref name="expected"/> connections.</summary>
    public static async Task AssertRegistryRowsAsync(TestService service, int expected, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(5));
        int rows;
        while ((rows = (await service.ConnectionsAsync()).Items.Count) != expected)
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"the registry lists {rows} connections, expected {expected}");
            await Task.Delay(20);
        }
    }

    /// <summary>The bystander's heartbeat is answered with its seq.</summary>
    public static async Task AssertAnsweredAsync(TestPeer bystander, long seq)
    {
        await bystander.SendHeartbeatAsync(seq);
        var answer = await bystander.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
        Assert.NotNull(answer);
        Assert.Equal(FrameType.HeartbeatResponse, answer!.Type);
        Assert.Equal(seq, answer.Seq);
    }

    /// <summary>A TLS client of the service, trusting exactly the test certificate.</summary>
    public static async Task<(Socket Socket, SslStream Tls)> ConnectTlsAsync(int port, TestCertificates certificates)
    {
        var issued = certificates.Issued.GetCertHashString();
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, port);
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true), false,
            (_, presented, _, _) => presented is not null && presented.GetCertHashString() == issued);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" }, timeout.Token);
        return (socket, tls);
    }

    /// <summary>Reads lines from <paramref name="tls"/> until the server closes it; the frames they hold.</summary>
    public static async Task<IReadOnlyList<Frame>> ReadTlsUntilClosedAsync(SslStream tls, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var frames = new List<Frame>();
        var pending = new List<byte>();
        var buffer = new byte[4096];
        while (true)
        {
            int read;
            try { read = await tls.ReadAsync(buffer, cts.Token); }
            catch (IOException) { break; }
            if (read == 0) break;
            pending.AddRange(buffer.AsSpan(0, read).ToArray());
            int newline;
            while ((newline = pending.IndexOf((byte)'\n')) >= 0)
            {
                frames.Add(JsonLinesCodec.Decode(pending.GetRange(0, newline).ToArray()).Frame
                    ?? throw new InvalidDataException($"server sent an invalid line: {Encoding.UTF8.GetString(pending.GetRange(0, newline).ToArray())}"));
                pending.RemoveRange(0, newline + 1);
            }
        }
        return frames;
    }
}

/// <summary>What a heartbeat client publishes, collected for the test thread.</summary>
internal sealed class ClientEvents
{
    private readonly List<object> _events = [];

    public void Add(object e) { lock (_events) _events.Add(e); }

    public IReadOnlyList<T> OfType<T>() { lock (_events) return _events.OfType<T>().ToList(); }

    /// <summary>The <paramref name="nth"/> event of type <typeparamref name="T"/> (1 = the first), once it has come.</summary>
    public async Task<T> WaitForAsync<T>(TimeSpan timeout, int nth = 1)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var seen = OfType<T>();
            if (seen.Count >= nth) return seen[nth - 1];
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no {typeof(T).Name} #{nth} within {timeout}");
            await Task.Delay(10);
        }
    }

    /// <summary>The subscriber handed to the client: adds every event it is told.</summary>
    public sealed class Collector : Akka.Actor.ReceiveActor
    {
        public Collector(ClientEvents events) => ReceiveAny(events.Add);
    }
}
