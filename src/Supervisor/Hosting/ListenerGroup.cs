using Akka.Actor;
using Supervisor.Connections;

namespace Supervisor.Hosting;

/// <summary>
/// Fronts every <see cref="TcpListenerActor"/>: <see cref="TcpListenerActor.Unbind"/> goes to all of them
/// and is answered once all have unbound; <see cref="TcpListenerActor.GetBinding"/> is answered with all bindings.
/// </summary>
internal sealed class ListenerGroup(IReadOnlyList<IActorRef> listeners)
{
    public sealed record AllUnbound(int Count);

    public sealed record Bindings(IReadOnlyList<TcpListenerActor.Binding> Items);

    public IActorRef Ref(ActorSystem system) => system.ActorOf(Props.Create(() => new GroupActor(listeners)), "listeners");

    private sealed class GroupActor : ReceiveActor
    {
        public GroupActor(IReadOnlyList<IActorRef> listeners)
        {
            ReceiveAsync<TcpListenerActor.Unbind>(async unbind =>
            {
                var sender = Sender;
                var answers = await Task.WhenAll(listeners.Select(l => l.Ask<TcpListenerActor.Unbound>(unbind, TimeSpan.FromSeconds(2))));
                sender.Tell(new AllUnbound(answers.Length));
            });
            ReceiveAsync<TcpListenerActor.GetBinding>(async get =>
            {
                var sender = Sender;
                var answers = await Task.WhenAll(listeners.Select(l => l.Ask<TcpListenerActor.Binding>(get, TimeSpan.FromSeconds(2))));
                sender.Tell(new Bindings(answers));
            });
        }
    }
}
