using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Supervisor.Configuration;
using Supervisor.Connections;
using Supervisor.Messages.Protocol;
using Supervisor.Monitoring;
using Supervisor.Transport;

namespace Microbench;

/// <summary>
/// The whole steady heartbeat path with real threads, which the in-process benchmarks (calling-thread
/// dispatcher) cannot show: a client socket sends a heartbeat line, the real <see cref="SocketTransport"/>
/// read loop frames and decodes it, the connection actor runs on Akka's default dispatcher and answers,
/// and the client reads the answer; then the next. Bytes allocated are counted process-wide
/// (<see cref="GC.GetTotalAllocatedBytes(bool)"/>), every thread included, and divided by the heartbeats.
/// </summary>
public static class SteadyPathAllocations
{
    /// <param name="detector">The listener's <c>heartbeat.detector</c>: <c>fixed</c> or <c>phi</c> (issue 15: no allocation with phi either).</param>
    public static int Run(int heartbeats, string detector = "fixed")
    {
        using var system = ActorSystem.Create("steady", ConfigurationFactory.ParseString("akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING"));
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.Connect(listener.LocalEndPoint!);
        var server = listener.Accept();

        var listenerSettings = SupervisorConfig.Read(SupervisorConfig.Build($"supervisor.heartbeat {{ interval = 1h, timeout = 2h, detector = {detector} }}", null)).Listeners.Single() with
        {
            Limits = new ListenerLimits(100, 1e12, int.MaxValue, null),
        };
        using var metrics = new SupervisorMetrics();
        var sink = system.ActorOf(Props.Create(() => new Sink()), "sink");
        var services = new ConnectionServices(sink, sink, new EchoHandler(), metrics, NullLogger.Instance) { StatusRefresh = TimeSpan.FromHours(1) };
        var transport = new SocketTransport(server, listenerSettings.MaxFrameLength, listenerSettings.MaxPendingWrite, KeepAliveStatus.Disabled);
        system.ActorOf(ConnectionActor.Props(new ConnectionActor.Setup("c1", listenerSettings, transport, services)), "c1");

        var line = "{\"type\":0,\"timestamp\":1700000000,\"seq\":12345}\n"u8.ToArray();
        var buffer = new byte[4096];
        void RoundTrip()
        {
            client.Send(line);
            var filled = 0;
            do filled += client.Receive(buffer, filled, buffer.Length - filled, SocketFlags.None);
            while (buffer[filled - 1] != (byte)'\n');
        }

        for (var i = 0; i < 20_000; i++) RoundTrip(); // warm-up: JIT tiers, pools, queues at their steady size
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var gcBefore = GC.CollectionCount(0);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < heartbeats; i++) RoundTrip();
        clock.Stop();
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Console.WriteLine($"steady heartbeat path, real threads: {heartbeats} round trips in {clock.Elapsed.TotalSeconds:F2} s " +
                          $"({heartbeats / clock.Elapsed.TotalSeconds:F0}/s, {clock.Elapsed.TotalMilliseconds * 1000 / heartbeats:F1} µs each, client included); " +
                          $"{allocated} B allocated process-wide = {allocated / (double)heartbeats:F1} B per heartbeat; gen0 GCs {GC.CollectionCount(0) - gcBefore}");
        system.Terminate().Wait(TimeSpan.FromSeconds(10));
        return 0;
    }

    private sealed class Sink : ReceiveActor
    {
        public Sink() => ReceiveAny(_ => { });
    }
}
