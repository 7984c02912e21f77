using Microsoft.Extensions.Logging;

namespace Supervisor.Connections;

/// <summary>
/// What connections tell operators, as structured log events: one line per open and per close
/// at Information, per-heartbeat detail only at Debug.
/// </summary>
internal static partial class ConnectionLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Connection {ConnectionId} opened from {Remote} on listener {Listener}")]
    public static partial void Opened(ILogger logger, string connectionId, string remote, string listener);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information,
        Message = "Connection {ConnectionId} closed: {Reason} ({Detail}); remote {Remote}, open {OpenSeconds:F1} s, {BytesIn} bytes in, {BytesOut} bytes out")]
    public static partial void Closed(ILogger logger, string connectionId, string reason, string detail, string remote, double openSeconds, long bytesIn, long bytesOut);

    [LoggerMessage(EventId = 3, Level = LogLevel.Debug, Message = "Connection {ConnectionId}: heartbeat seq {Seq}")]
    public static partial void Heartbeat(ILogger logger, string connectionId, long? seq);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Connection {ConnectionId}: keep-alive {Problem}")]
    public static partial void KeepAliveProblem(ILogger logger, string connectionId, string problem);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Connection {ConnectionId}: peer sent an error notice: {Text}")]
    public static partial void PeerNotice(ILogger logger, string connectionId, string? text);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Connection from {Remote} on listener {Listener} refused: {Reason} ({Detail})")]
    public static partial void Refused(ILogger logger, string remote, string listener, string reason, string detail);

    [LoggerMessage(EventId = 7, Level = LogLevel.Error, Message = "Connection {ConnectionId} failed and is stopped")]
    public static partial void Failed(ILogger logger, Exception cause, string connectionId);

    [LoggerMessage(EventId = 8, Level = LogLevel.Error, Message = "Connection {ConnectionId}: the connection handler failed")]
    public static partial void HandlerFailed(ILogger logger, Exception cause, string connectionId);

    [LoggerMessage(EventId = 9, Level = LogLevel.Information,
        Message = "Connection {ConnectionId}: peer announced a heartbeat interval of {RequestedMs} ms; accepted {AcceptedMs} ms, timeout {TimeoutMs} ms")]
    public static partial void IntervalNegotiated(ILogger logger, string connectionId, int requestedMs, int acceptedMs, double timeoutMs);

    [LoggerMessage(EventId = 10, Level = LogLevel.Information,
        Message = "Heap settled after a burst of {Opened} connection opens: managed heap {BeforeMiB} -> {AfterMiB} MiB, paused {PauseMs:F0} ms")]
    public static partial void HeapSettled(ILogger logger, int opened, long beforeMiB, long afterMiB, double pauseMs);
}
