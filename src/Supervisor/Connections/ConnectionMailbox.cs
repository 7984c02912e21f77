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

    public sealed class CompactMessageQueue : IMessageQueue, IUnboundedMessageQueueSemantics
    {
        private readonly Queue<Envelope> _queue = new();
        private int _count;

        public bool HasMessages => Volatile.Read(ref _count) > 0;

        public int Count => Volatile.Read(ref _count);

        public void Enqueue(IActorRef receiver, Envelope envelope)
        {
            lock (_queue)
            {
                _queue.Enqueue(envelope);
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
            lock (_queue)
            {
                if (!_queue.TryDequeue(out envelope)) return false;
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
