using Microsoft.Extensions.Logging;

namespace Supervisor.Client;

/// <summary>What outbound clients tell operators: one line per connect, disconnect and reconnect delay; heartbeats at Debug.</summary>
internal static partial class ClientLog
{
    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Client {Client} connected to {Remote} from {Local} (reconnect attempt {Attempt})")]
    public static partial void Connected(ILogger logger, string client, string remote, string local, int attempt);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information,
        Message = "Client {Client} disconnected from {Remote}: {Reason} ({Detail}); up {UpSeconds:F1} s, {BytesIn} bytes in, {BytesOut} bytes out")]
    public static partial void Disconnected(ILogger logger, string client, string remote, string reason, string detail, double upSeconds, long bytesIn, long bytesOut);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information,
        Message = "Client {Client} reconnecting to {Endpoint} in {DelayMs:F0} ms (attempt {Attempt}, ceiling {CeilingMs:F0} ms){Cause}")]
    public static partial void Reconnecting(ILogger logger, string client, string endpoint, double delayMs, int attempt, double ceilingMs, string cause);

    [LoggerMessage(EventId = 110, Level = LogLevel.Information,
        Message = "Client {Client} reconnecting to {Endpoint} in {DelayMs:F0} ms, when the server asked (reconnect-after){Cause}")]
    public static partial void ReconnectingAsHinted(ILogger logger, string client, string endpoint, double delayMs, string cause);

    [LoggerMessage(EventId = 104, Level = LogLevel.Debug, Message = "Client {Client}: heartbeat response seq {Seq}, rtt {RttMs:F2} ms")]
    public static partial void HeartbeatAnswered(ILogger logger, string client, long? seq, double? rttMs);

    [LoggerMessage(EventId = 105, Level = LogLevel.Information, Message = "Client {Client}: server unanswered for {Missed} heartbeat interval(s), suspect")]
    public static partial void Suspect(ILogger logger, string client, int missed);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "Client {Client}: buffer full ({Capacity} frames), {Policy}: {Count} frame(s) lost so far")]
    public static partial void Overflow(ILogger logger, string client, int capacity, string policy, long count);

    [LoggerMessage(EventId = 107, Level = LogLevel.Information, Message = "Client {Client}: server sent an error notice: {Text}")]
    public static partial void ServerNotice(ILogger logger, string client, string? text);

    [LoggerMessage(EventId = 108, Level = LogLevel.Warning, Message = "Client {Client}: keep-alive {Problem}")]
    public static partial void KeepAliveProblem(ILogger logger, string client, string problem);

    [LoggerMessage(EventId = 109, Level = LogLevel.Information,
        Message = "Client {Client}: announced a heartbeat interval of {AnnouncedMs} ms; the server accepted {AcceptedMs} ms (its heartbeat.negotiation bounds) and judges this connection by that")]
    public static partial void IntervalClamped(ILogger logger, string client, int announcedMs, int acceptedMs);

    [LoggerMessage(EventId = 111, Level = LogLevel.Information,
        Message = "Client {Client}: its home endpoint {Home} answers again; moving back from {Away}")]
    public static partial void ReturningHome(ILogger logger, string client, string home, string away);
}
