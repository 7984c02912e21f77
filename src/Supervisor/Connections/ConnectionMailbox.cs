using Akka.Actor;
using Akka.Configuration;
using Akka.Dispatch;
using Akka.Dispatch.MessageQueues;

namespace Supervisor.Connections;

/// <summary>
/// The mailbox of connection actors: unbounded like Akka's default, but a small locked queue instead
/// of a <see cref="System.Collections.Concurrent.ConcurrentQueue{T}"/>, whose first segment alone is
/// about 1 KB (32 slots) per actor. A connection actor holds a message or two at a time, so its queue
/// stays at a few slots; contention is low (its transport, the deadline queue, the supervisor).
/// Measured in bench/README.md (issue 7).
/// </summary>
internal sealed class ConnectionMailbox : MailboxType, IProducesMessageQueue<ConnectionMailbox.CompactMessageQueue>
{
    /// <summary>The mailbox id; <see cref="ConnectionDispatcher.Deploy"/> makes it known to a system.</summary>
    public const string Id = "supervisor.connection-mailbox";

    public ConnectionMailbox(Settings settings, Config config) : base(settings, config)
    {
    }

    public override IMessageQueue Create(IActorRef owner, ActorSystem system) => new CompactMessageQueue();

    /// <summary>
    /// The oldest message in a field of its own, the rest (rarely more than one or two) in a queue made when a
    /// second message waits and dropped when it drains: an idle connection holds no queue at all (a
    /// <see cref="Queue{T}"/> and its array were 64-128 B of every connection; bench/README.md, issue 16).
    /// </summary>
    public sealed class CompactMessageQueue : IMessageQueue, IUnboundedMessageQueueSemantics
    {
        private Envelope _first;
        private bool _hasFirst;
        private Queue<Envelope>? _rest;
        private int _count;

        public bool HasMessages => Volatile.Read(ref _count) > 0;

        public int Count => Volatile.Read(ref _count);

        public void Enqueue(IActorRef receiver, Envelope envelope)
        {
            lock (this)
            {
                if (!_hasFirst && _rest is null)
                {
                    _first = envelope;
                    _hasFirst = true;
                }
                else
                {
                    (_rest ??= new Queue<Envelope>()).Enqueue(envelope);
                }
                _count++;
            }
        }

        public bool TryDequeue(out Envelope envelope)
        {
            if (Volatile.Read(ref _count) == 0)
            {
                envelope = default;
                return false;
            }
            lock (this)
            {
                if (_hasFirst)
                {
                    envelope = _first;
                    _first = default;
                    _hasFirst = false;
                }
                else if (_rest is not null && _rest.TryDequeue(out envelope))
                {
                    if (_rest.Count == 0) _rest = null;
                }
                else
                {
                    envelope = default;
                    return false;
                }
                _count--;
                return true;
            }
        }

        public void CleanUp(IActorRef owner, IMessageQueue deadletters)
        {
            while (TryDequeue(out var envelope))
                deadletters.Enqueue(owner, envelope);
        }
    }
}
