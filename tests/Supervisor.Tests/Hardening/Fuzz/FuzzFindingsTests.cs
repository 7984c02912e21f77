using Supervisor.Messages.Wire;
using Supervisor.Tests.Support;
using Xunit.Abstractions;

namespace Supervisor.Tests.Hardening.Fuzz;

/// <summary>
/// The smallest inputs behind what the hostile-peer fuzz run (<see cref="HostilePeerFuzzTests"/>) found, each as a
/// fixed example, so a fix can be checked in a second and stays checked whatever seed the fuzz run uses.
/// </summary>
public sealed class FuzzFindingsTests(ITestOutputHelper output) : IDisposable
{
    private readonly TestCertificates _certificates = new();

    private Task<TestService> StartAsync() => TestService.StartAsync(
        "supervisor.heartbeat { interval = 2s, timeout = 5s }\n"
        + "supervisor.listeners.secure { host = \"127.0.0.1\", port = 0 }\n"
        + _certificates.Hocon("supervisor.listeners.secure.tls"));

    /// <summary>
    /// A field name that is an escape of no text (a lone surrogate): the codec must answer it as it answers any
    /// other line, with a frame (an unknown field is ignored) or a protocol error; it must not throw out of the
    /// read loop and freeze the connection until heartbeat-timeout blames the peer.
    /// </summary>
    [Theory]
    [InlineData("tcp")]
    [InlineData("tls")]
    [InlineData("ws")]
    public async Task A_field_name_that_is_a_lone_surrogate_escape_must_be_answered_at_once_not_freeze_the_connection(string transport)
    {
        await using var service = await StartAsync();
        var line = "{\"\\ud800\":0,\"type\":0,\"seq\":1}"u8.ToArray();
        var next = "{\"type\":0,\"seq\":2}"u8.ToArray();
        var run = transport switch
        {
            "ws" => await RunWsAsync(service.WebSocketPort, [line, next]),
            _ => await RunStreamAsync(transport == "tls" ? service.PortOf("secure") : service.Port, transport == "tls", [.. line, (byte)'\n', .. next, (byte)'\n']),
        };
        var frames = run.Received.Select(r => JsonLinesCodec.Decode(r.AsSpan().TrimEnd((byte)'\r')).Frame!).ToArray();
        output.WriteLine($"{transport}: {string.Join(" | ", frames.Select(f => f.ToString()))}; then {run.Ending}");
        var ignored = frames.Length >= 2 && frames[0].Seq == 1 && frames[1].Seq == 2;
        var refused = frames.Length == 1 && frames[0].Type == FrameType.ErrorNotice && frames[0].Data!.StartsWith("protocol-error: ", StringComparison.Ordinal);
        Assert.True(ignored || refused, $"expected both heartbeats answered, or one protocol-error notice; got [{string.Join(", ", frames.Select(f => f.ToString()))}], then {run.Ending}");
    }

    /// <summary>
    /// A WebSocket text message that is not UTF-8 is the peer's protocol error: the log must say
    /// <c>protocol-error</c>, not <c>peer-reset</c> (what the peer still receives is the WebSocket layer's, below).
    /// </summary>
    [Fact]
    public async Task A_websocket_text_message_that_is_not_utf8_must_close_as_protocol_error_not_peer_reset()
    {
        await using var service = await StartAsync();
        var run = await RunWsAsync(service.WebSocketPort, ["{\"type\":0,\"seq\":1}"u8.ToArray(), [(byte)'{', 0xC0, 0x80, (byte)'}']]);
        output.WriteLine($"{run.Received.Count} frames, then {run.Ending}");
        // RFC 6455 §8.1 fails the connection on such input (§7.1.7: the TCP connection is dropped, a close frame is
        // optional): .NET's WebSocket sends close 1007 and aborts the socket at once, so what the peer had not read
        // yet (the answer before it, even the close frame) may be lost with it; measured: the answer and the 1007
        // arrived in most runs, nothing but an RST in about one in six under parallel load. What must hold is the
        // reason: the peer's input, not a reset.
        output.WriteLine($"answer {(run.Received.Any(r => JsonLinesCodec.Decode(r).Frame?.Seq == 1) ? "arrived" : "lost")}, close frame {(run.ServerCloseFrame ? "arrived" : "lost")}");
        var closed = await ClosedLineAsync(service, run.Remote);
        Assert.Contains("closed: protocol-error", closed);
    }

    /// <summary>
    /// After a refused frame the server drains what the peer still sends, so that its notice is not destroyed by
    /// an RST (DESIGN §2); input that is not UTF-8 during that drain must not reset the WebSocket either.
    /// </summary>
    [Fact]
    public async Task A_websocket_notice_must_survive_input_that_is_not_utf8_after_the_refused_frame()
    {
        await using var service = await StartAsync();
        var lost = 0;
        const int Attempts = 20;
        for (var i = 0; i < Attempts; i++)
        {
            var run = await RunWsAsync(service.WebSocketPort, ["{\"type\":0,\"seq\":1}"u8.ToArray(), "not json"u8.ToArray(), [(byte)'{', 0xC0, 0x80, (byte)'}']]);
            if (!run.Received.Any(r => JsonLinesCodec.Decode(r).Frame is { Type: FrameType.ErrorNotice })) lost++;
        }
        output.WriteLine($"notice lost in {lost} of {Attempts} connections");
        Assert.Equal(0, lost);
    }

    private async Task<PeerRun> RunStreamAsync(int port, bool tls, byte[] bytes)
    {
        using var peer = await StreamFuzzPeer.ConnectAsync(port, tls ? _certificates.Issued : null);
        return await peer.RunAsync(new StreamScript(0, bytes, [], Ending.Hold, 2, "finding"), 0, TimeSpan.FromSeconds(3));
    }

    private static async Task<PeerRun> RunWsAsync(int port, IReadOnlyList<byte[]> messages)
    {
        using var peer = await WsFuzzPeer.ConnectAsync(port);
        return await peer.RunAsync(new WsScript(0, messages.Select(m => new WsMessage([m], true)).ToArray(), Ending.Hold, "finding"), 0, TimeSpan.FromSeconds(3));
    }

    private static async Task<string> ClosedLineAsync(TestService service, string remote)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (true)
        {
            var line = service.Logs.Lines.Select(l => l.Message).FirstOrDefault(m => m.Contains(" closed: ", StringComparison.Ordinal) && m.Contains($"remote {remote},", StringComparison.Ordinal));
            if (line is not null) return line;
            if (DateTime.UtcNow > deadline) return $"no close line for {remote}";
            await Task.Delay(50);
        }
    }

    public void Dispose() => _certificates.Dispose();
}
