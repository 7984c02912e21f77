using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using Akka.IO;

namespace TransportFootprint;

internal static class AkkaSupport
{
    /// <summary>Akka defaults except quieter logging. No remoting, no cluster.</summary>
    public static ActorSystem CreateSystem(string name) => ActorSystem.Create(name, ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        akka.log-dead-letters = off
        akka.log-dead-letters-during-shutdown = off
        """));

    public static async Task TerminateAsync(ActorSystem system)
    {
        await Task.WhenAny(system.Terminate(), Task.Delay(TimeSpan.FromSeconds(10))).ConfigureAwait(false);
    }
}

/// <summary>
/// Akka.IO calls AfterConnect on each accepted socket with the Bind options, so this applies the same
/// keep-alive settings as the raw-socket server.
/// </summary>
internal sealed class KeepAliveOption : Inet.SocketOption
{
    public override void AfterConnect(Socket s) => Protocol.ApplyKeepAlive(s);
}
