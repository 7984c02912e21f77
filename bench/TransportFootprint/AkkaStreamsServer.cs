using System.Collections.Immutable;
using System.Net;
using Akka;
using Akka.Actor;
using Akka.IO;
using Akka.Streams;
using Akka.Streams.Dsl;

namespace TransportFootprint;

/// <summary>
/// Transport B: Akka.Streams Tcp().Bind with one Framing.Delimiter → heartbeat-response flow per
/// connection (connection.HandleWith(flow)).
/// </summary>
internal sealed class AkkaStreamsServer : IBenchServer
{
    private static readonly ByteString Newline = ByteString.FromString("\n");
    private static readonly ByteString Response = ByteString.FromBytes(Protocol.HeartbeatResponse);

    private ActorSystem? _system;
    private Func<Task>? _unbind;

    public async Task<int> StartAsync(int port, Stats stats)
    {
        _system = AkkaSupport.CreateSystem("akka-streams-bench");
        var materializer = _system.Materializer();

        // One flow blueprint, materialized once per connection by HandleWith.
        var handler = Framing.Delimiter(Newline, Protocol.MaxFrameLength, allowTruncation: false)
            .Select(_ =>
            {
                stats.OnAnswered();
                return Response;
            })
            .WatchTermination((_, done) => done);

        var options = ImmutableList.Create<Inet.SocketOption>(new KeepAliveOption());
        Akka.Streams.Dsl.Tcp.ServerBinding binding = await _system.TcpStream()
            .Bind("127.0.0.1", port, Protocol.Backlog, options)
            .ToMaterialized(Sink.ForEach<Akka.Streams.Dsl.Tcp.IncomingConnection>(connection =>
            {
                stats.OnAccepted();
                Task<Done> done = connection.HandleWith(handler, materializer);
                done.ContinueWith(_ => stats.OnClosed(), TaskScheduler.Default);
            }), Keep.Left)
            .Run(materializer)
            .ConfigureAwait(false);

        _unbind = binding.Unbind;
        return ((IPEndPoint)binding.LocalAddress).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (_unbind is not null)
        {
            await _unbind().ConfigureAwait(false);
        }
        if (_system is not null)
        {
            await AkkaSupport.TerminateAsync(_system).ConfigureAwait(false);
        }
    }
}
