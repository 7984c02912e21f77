using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using Supervisor.Configuration;
using Supervisor.Connections;
using Supervisor.Messages.Protocol;
using Supervisor.Monitoring;
using Supervisor.Transport;

namespace Microbench;

/// <summary>
/// The heartbeat hot path after the socket read, one heartbeat per operation: the bytes of one
/// heartbeat line go through <see cref="InboundFrames"/> (framer, decoder, message to the owner) into a
/// real <see cref="ConnectionActor"/>, which answers through a real <see cref="SocketTransport"/> on a
/// loopback socket drained by another thread. Every actor runs on the calling thread
/// (CallingThreadDispatcher), so the memory diagnoser sees the whole path; the heartbeat interval is
/// an hour, so no deadline timer fires while it runs.
/// </summary>
public class HotPathBenchmarks
{
    private ActorSystem _system = null!;
    private Socket _server = null!, _client = null!;
    private Thread _drain = null!;
    private InboundFrames _toConnection = null!, _toSink = null!;
    private SupervisorMetrics _metrics = null!;

    private sealed class Sink : ReceiveActor
    {
        public Sink() => ReceiveAny(_ => { });
    }

    [GlobalSetup]
    public void Setup()
    {
        _system = ActorSystem.Create("bench", ConfigurationFactory.ParseString("""
            akka.loglevel = WARNING
            akka.stdout-loglevel = WARNING
            akka.actor.default-dispatcher = { type = "Akka.TestKit.CallingThreadDispatcherConfigurator, Akka.TestKit", throughput = 1000000 }
            """));

        using (var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            _client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            _client.Connect(listener.LocalEndPoint!);
            _server = listener.Accept();
        }
        _drain = new Thread(() =>
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (_client.Receive(buffer) > 0) { }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        }) { IsBackground = true, Name = "drain" };
        _drain.Start();

        var listenerSettings = SupervisorConfig.Read(SupervisorConfig.Build(
            "supervisor.heartbeat { interval = 1h, timeout = 2h }", null)).Listeners.Single() with
        {
            Limits = new ListenerLimits(100, 1e12, int.MaxValue, null),
        };
        var sink = _system.ActorOf(Props.Create(() => new Sink()), "sink");
        _metrics = new SupervisorMetrics();
        var services = new ConnectionServices(sink, sink, new EchoHandler(), _metrics, NullLogger.Instance);
        var transport = new SocketTransport(_server, listenerSettings.MaxFrameLength, listenerSettings.MaxPendingWrite, KeepAliveStatus.Disabled);
        _system.ActorOf(ConnectionActor.Props(new ConnectionActor.Setup("c1", listenerSettings, transport, services)), "c1");
        // The actor takes frames from its transport's own queue, which exists once the actor has started it.
        SpinWait.SpinUntil(() => transport.Inbound is not null, TimeSpan.FromSeconds(10));
        _toConnection = (InboundFrames)transport.Inbound!;
        _toSink = new InboundFrames(sink, listenerSettings.MaxFrameLength);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _system.Terminate().Wait(TimeSpan.FromSeconds(10));
        _client.Dispose();
        _server.Dispose();
        _drain.Join(TimeSpan.FromSeconds(5));
        _toSink.Dispose();
        _metrics.Dispose();
    }

    [Benchmark(Description = "inbound: frame + decode + queue + take")]
    public int InboundQueueAndTake()
    {
        _toSink.Accept(CodecBenchmarks.HeartbeatChunk);
        _toSink.BeginTaking();
        var taken = 0;
        while (_toSink.TryTake(out _)) taken++;
        return taken;
    }

    [Benchmark(Description = "heartbeat through the connection actor, response on the socket")]
    public bool ConnectionActorHeartbeat() => _toConnection.Accept(CodecBenchmarks.HeartbeatChunk);
}
