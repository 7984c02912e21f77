using Akka.Actor;
using Supervisor.Messages.Wire;

namespace Supervisor.Transport;

/// <summary>
/// Turns the bytes a transport reads into transport events for its owner: frames, the first protocol
/// violation, then a bounded drain. One instance per connection, used only by its read loop.
/// </summary>
public sealed class InboundFrames(IActorRef owner, int maxFrameLength) : IDisposable
{
    /// <summary>After a refused frame the input is read and thrown away only so that the error notice is
    /// not destroyed by an RST; a peer that keeps streaming past this gets the RST anyway.</summary>
    public const int DrainBudget = 256 * 1024;

    private readonly LineFramer _framer = new(maxFrameLength);
    private readonly LineHandler _onLine = line =>
    {
        var decoded = JsonLinesCodec.Decode(line);
        if (decoded.Frame is { } frame)
        {
            owner.Tell(new TransportEvents.FrameReceived(frame, line.Length + 1));
            return true;
        }
        owner.Tell(new TransportEvents.FrameRejected(CloseReason.ProtocolError, decoded.Error!));
        return false;
    };
    private bool _draining;
    private long _drained;

    /// <summary>Handles one chunk; false when the transport should stop reading (drain budget spent).</summary>
    public bool Accept(ReadOnlySpan<byte> chunk)
    {
        if (_draining)
        {
            _drained += chunk.Length;
            if (_drained <= DrainBudget) return true;
            owner.Tell(new TransportEvents.InputEnded(CloseReason.PeerReset, "peer kept streaming after its connection was refused"));
            return false;
        }
        switch (_framer.Feed(chunk, _onLine))
        {
            case FeedResult.Stopped:
                _draining = true;
                break;
            case FeedResult.FrameTooLarge:
                _draining = true;
                owner.Tell(new TransportEvents.FrameRejected(CloseReason.FrameTooLarge, $"frame longer than max-frame-length ({maxFrameLength} bytes)"));
                break;
        }
        return true;
    }

    public void Dispose() => _framer.Dispose();
}
