using Akka.Actor;

namespace Supervisor.Transport;

/// <summary>
/// Bytes a transport could not hand to the kernel at once, sent one write at a time; each completion
/// comes back to the owner as <see cref="TransportEvents.WriteFinished"/>. Used on the owner's thread
/// only. A peer that lets more than <c>maxPendingBytes</c> pile up is refused, so a slow consumer
/// cannot grow the server's memory. The queue itself is made at the first write the kernel did not take: an idle
/// connection, the usual one, holds none.
/// </summary>
internal sealed class OutboundQueue(int maxPendingBytes, IOutboundSink sink)
{
    private Queue<ReadOnlyMemory<byte>>? _pending;
    private int _pendingBytes;
    private bool _inFlight;
    private bool _shutdownRequested;
    private bool _outputShut;

    public IActorRef Owner { get; set; } = ActorRefs.Nobody;

    /// <summary>Nothing queued and nothing being sent: a transport may write straight to the socket.</summary>
    public bool IsIdle => !_inFlight && (_pending is null || _pending.Count == 0);

    /// <summary>False once output is shut or its shutdown requested.</summary>
    public bool Accepting => !_shutdownRequested && !_outputShut;

    /// <summary>Bytes the queued writes have handed to the kernel.</summary>
    public long BytesSent { get; private set; }

    /// <summary>Queues bytes; false when that would exceed the pending limit.</summary>
    public bool Enqueue(ReadOnlyMemory<byte> bytes)
    {
        if (_pendingBytes + bytes.Length > maxPendingBytes) return false;
        Pending.Enqueue(bytes);
        _pendingBytes += bytes.Length;
        if (!_inFlight) SendNext();
        return true;
    }

    /// <summary>
    /// A send the transport started itself that did not complete at once (an idle queue lets it try directly):
    /// it is in flight now, and its completion comes back as <see cref="TransportEvents.WriteFinished"/> like any other.
    /// </summary>
    public void Started(ReadOnlyMemory<byte> bytes, Task<int> send)
    {
        Pending.Enqueue(bytes);
        _pendingBytes += bytes.Length;
        _inFlight = true;
        send.PipeTo(Owner,
            success: sent => new TransportEvents.WriteFinished(sent, null),
            failure: TransportFailures.WriteFailed);
    }

    /// <summary>
    /// Starts the next send; its end always comes back as <see cref="TransportEvents.WriteFinished"/>, a failure
    /// with its reason, even when the send throws before it starts: no send is left unobserved.
    /// </summary>
    private void SendNext()
    {
        _inFlight = true;
        Task<int> send;
        try
        {
            send = sink.SendQueuedAsync(_pending!.Peek());
        }
        catch (Exception e)
        {
            send = Task.FromException<int>(e);
        }
        send.PipeTo(Owner,
            success: sent => new TransportEvents.WriteFinished(sent, null),
            failure: TransportFailures.WriteFailed);
    }

    /// <summary>Why <see cref="Enqueue"/> refused: the peer let more than the pending limit pile up.</summary>
    public TransportFailure Refusal => TransportFailures.NotReading(maxPendingBytes);

    /// <summary>Takes a completion; false when the write failed.</summary>
    public bool OnWriteFinished(TransportEvents.WriteFinished finished)
    {
        _inFlight = false;
        if (finished.Error is not null) return false;
        BytesSent += finished.Bytes;
        var pending = _pending!;
        var head = pending.Dequeue();
        _pendingBytes -= head.Length;
        if (finished.Bytes < head.Length)
        {
            // A short send: the rest goes first.
            var rest = head[finished.Bytes..];
            var after = pending.ToArray();
            pending.Clear();
            pending.Enqueue(rest);
            foreach (var item in after) pending.Enqueue(item);
            _pendingBytes += rest.Length;
        }
        if (pending.Count > 0) SendNext();
        else if (_shutdownRequested) ShutNow();
        return true;
    }

    /// <summary>Shuts output (FIN) once everything queued is sent.</summary>
    public void RequestShutdown()
    {
        _shutdownRequested = true;
        if (IsIdle) ShutNow();
    }

    private void ShutNow()
    {
        if (_outputShut) return;
        _outputShut = true;
        sink.ShutOutput();
    }

    private Queue<ReadOnlyMemory<byte>> Pending => _pending ??= new Queue<ReadOnlyMemory<byte>>(2);
}

/// <summary>Where an <see cref="OutboundQueue"/> writes: its transport (an interface, not two delegates per connection).</summary>
internal interface IOutboundSink
{
    /// <summary>
    /// Sends the queue's head; the bytes the kernel took (a short send leaves the rest at the head). Its completion
    /// reaches the owner as WriteFinished.
    /// </summary>
    Task<int> SendQueuedAsync(ReadOnlyMemory<byte> bytes);

    /// <summary>Everything queued was sent and output was asked to end: the transport ends it (FIN, close_notify, a close frame).</summary>
    void ShutOutput();
}
