namespace Supervisor.Messages.Wire;

/// <summary>The frame types of the wire protocol, the same in every codec (DESIGN §2).</summary>
public enum FrameType
{
    /// <summary>0: proof of life, sent by the peer every heartbeat interval, or by the server as a ping (<c>server-ping</c>); answered with a response.</summary>
    Heartbeat = 0,
    /// <summary>1: the answer to a heartbeat, echoing its <c>seq</c> (from which the round-trip time is measured).</summary>
    HeartbeatResponse = 1,
    /// <summary>2: application data, in <c>data</c>; handed to the connection handler (the default one echoes it).</summary>
    Data = 2,
    /// <summary>3: sent just before a close the sender decided (the server's, or a heartbeat client's on a bad frame): <c>data</c> is <c>"&lt;reason&gt;: &lt;detail&gt;"</c>.</summary>
    ErrorNotice = 3,
}

/// <summary>One frame, whatever the codec it came in or goes out with.</summary>
/// <param name="Type">What the frame is.</param>
/// <param name="Timestamp">Unix seconds of the sender (0 when the peer left it out).</param>
/// <param name="Data">Payload of a data frame, text of an error notice; JSON text when <see cref="DataIsJson"/>.</param>
/// <param name="Seq">Set on a heartbeat and echoed in its response.</param>
public sealed record Frame(FrameType Type, long Timestamp, string? Data = null, long? Seq = null)
{
    /// <summary>
    /// <see cref="Data"/> is the text of a JSON value (object, array, number, true or false), not a string: the peer
    /// sent <c>"data":{"x":1}</c>, and the frame goes out the same way (DESIGN §2).
    /// </summary>
    public bool DataIsJson { get; init; }

    /// <summary>
    /// On a heartbeat: the interval in milliseconds its sender states it will heartbeat at; on a response: the interval
    /// the server accepted (issue 15, DESIGN §3 "Negotiated heartbeats"). Null when absent, as in the source document's frames.
    /// </summary>
    public int? Interval { get; init; }

    /// <summary>A data frame whose data is the JSON value <paramref name="json"/>; throws <see cref="ArgumentException"/> when it is not one JSON value.</summary>
    public static Frame JsonData(long timestamp, string json) =>
        JsonLinesCodec.IsJsonValue(System.Text.Encoding.UTF8.GetBytes(json))
            ? new Frame(FrameType.Data, timestamp, json) { DataIsJson = true }
            : throw new ArgumentException("is not one JSON value", nameof(json));

    /// <summary>The answer to a heartbeat: type 1 with the heartbeat's <paramref name="seq"/> echoed (null when it had none).</summary>
    public static Frame HeartbeatResponse(long timestamp, long? seq) => new(FrameType.HeartbeatResponse, timestamp, null, seq);

    /// <summary>The smallest interval a frame may carry (1 ms); zero or less is a protocol error in both codecs.</summary>
    public const int MinInterval = 1;

    /// <summary>An error notice (type 3) carrying <paramref name="text"/>, as <see cref="CloseReasons.NoticeText"/> formats it.</summary>
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
    /// <summary>As <see cref="Frame.DataIsJson"/>.</summary>
    public bool DataIsJson { get; init; }

    /// <summary>As <see cref="Frame.Interval"/>.</summary>
    public int? Interval { get; init; }

    /// <summary>The same frame as a <see cref="Frame"/> record (one allocation).</summary>
    public Frame ToFrame() => new(Type, Timestamp, Data, Seq) { DataIsJson = DataIsJson, Interval = Interval };

    /// <summary>True for the types that prove liveness in <c>heartbeat-only</c> mode.</summary>
    public bool IsHeartbeatTraffic => Type is FrameType.Heartbeat or FrameType.HeartbeatResponse;
}
