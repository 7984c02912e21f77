using System.Net;
using Akka.Actor;
using Akka.IO;

namespace TransportFootprint;

/// <summary>Transport C: Akka.IO Tcp actor API, one handler actor per connection.</summary>
internal sealed class AkkaIoServer : IBenchServer
{
    private ActorSystem? _system;

    public async Task<int> StartAsync(int port, Stats stats)
    {
        _system = AkkaSupport.CreateSystem("akka-io-bench");
        var bound = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        _system.ActorOf(Props.Create(() => new Listener(port, stats, bound)), "listener");
        return await bound.Task.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_system is not null)
        {
            await AkkaSupport.TerminateAsync(_system).ConfigureAwait(false);
        }
    }

    private sealed class Listener : ReceiveActor
    {
        public Listener(int port, Stats stats, TaskCompletionSource<int> bound)
        {
            Context.System.Tcp().Tell(new Akka.IO.Tcp.Bind(
                Self, new IPEndPoint(IPAddress.Loopback, port), Protocol.Backlog, [new KeepAliveOption()]));

            Receive<Akka.IO.Tcp.Bound>(b => bound.TrySetResult(((IPEndPoint)b.LocalAddress).Port));
            Receive<Akka.IO.Tcp.CommandFailed>(f => bound.TrySetException(new InvalidOperationException($"bind failed: {f.Cmd}")));
            Receive<Akka.IO.Tcp.Connected>(_ =>
            {
                stats.OnAccepted();
                IActorRef connection = Sender;
                IActorRef handler = Context.ActorOf(Props.Create(() => new ConnectionHandler(connection, stats)));
                connection.Tell(new Akka.IO.Tcp.Register(handler));
            });
        }
    }

    private sealed class ConnectionHandler : ReceiveActor
    {
        private static readonly Akka.IO.Tcp.Write ResponseWrite =
            Akka.IO.Tcp.Write.Create(ByteString.FromBytes(Protocol.HeartbeatResponse));

        private readonly Stats _stats;
        private ByteString _pending = ByteString.Empty;

        public ConnectionHandler(IActorRef connection, Stats stats)
        {
            _stats = stats;
            Receive<Akka.IO.Tcp.Received>(r =>
            {
                _pending = _pending.IsEmpty ? r.Data : _pending.Concat(r.Data);
                int nl;
                while ((nl = _pending.IndexOf((byte)'\n')) >= 0)
                {
                    if (nl > Protocol.MaxFrameLength)
                    {
                        connection.Tell(Akka.IO.Tcp.Abort.Instance);
                        return;
                    }
                    _pending = _pending.Slice(nl + 1);
                    connection.Tell(ResponseWrite);
                    stats.OnAnswered();
                }
                if (_pending.Count > Protocol.MaxFrameLength)
                {
                    connection.Tell(Akka.IO.Tcp.Abort.Instance);
                }
                if (_pending.IsEmpty)
                {
                    _pending = ByteString.Empty;
                }
            });
            Receive<Akka.IO.Tcp.ConnectionClosed>(_ => Context.Stop(Self));
            Receive<Akka.IO.Tcp.CommandFailed>(_ => { });
        }

        protected override void PostStop() => _stats.OnClosed();
    }
}
