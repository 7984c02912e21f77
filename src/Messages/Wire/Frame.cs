namespace Supervisor.Messages.Wire;

/// <summary>The frame types of the <c>json-lines</c> wire protocol (DESIGN §2).</summary>
public enum FrameType
{
    Heartbeat = 0,
    HeartbeatResponse = 1,
    Data = 2,
    ErrorNotice = 3,
}

/// <summary>One decoded <c>json-lines</c> frame.</summary>
/// <param name="Type">What the frame is.</param>
/// <param name="Timestamp">Unix seconds of the sender (0 when the peer left it out).</param>
/// <param name="Data">Payload of a data frame, text of an error notice.</param>
/// <param name="Seq">Set on a heartbeat and echoed in its response.</param>
public sealed record Frame(FrameType Type, long Timestamp, string? Data = null, long? Seq = null)
{
    public static Frame HeartbeatResponse(long timestamp, long? seq) => new(FrameType.HeartbeatResponse, timestamp, null, seq);

    public static Frame ErrorNotice(long timestamp, string text) => new(FrameType.ErrorNotice, timestamp, text);

    /// <summary>True for the types that prove liveness in <c>heartbeat-only</c> mode.</summary>
    public bool IsHeartbeatTraffic => Type is FrameType.Heartbeat or FrameType.HeartbeatResponse;
}

/// <summary>
/// One decoded frame as a value, so that a heartbeat crosses from the decoder to its connection without
/// an allocation; <see cref="ToFrame"/> makes the <see cref="Frame"/> record where one is needed.
/// </summary>
public readonly record struct DecodedFrame(FrameType Type, long Timestamp, string? Data, long? Seq)
{
    public Frame ToFrame() => new(Type, Timestamp, Data, Seq);

    /// <summary>True for the types that prove liveness in <c>heartbeat-only</c> mode.</summary>
    public bool IsHeartbeatTraffic => Type is FrameType.Heartbeat or FrameType.HeartbeatResponse;
}
