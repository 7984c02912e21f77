using Supervisor.Configuration;

namespace Supervisor.Transport;

/// <summary>
/// Which transport a TCP listener's connections get (<c>tcp.transport</c>): the one place that decides, read by the
/// connection supervisor for every adopted socket and by the start-up log line.
/// </summary>
internal static class TcpTransports
{
    /// <summary>
    /// Epoll where it was asked for (or left to <c>auto</c>) and applies: plain TCP on Linux. A TLS listener (SslStream
    /// reads through .NET's engine) and a PROXY-protocol listener (its header is read with .NET's async reads before the
    /// transport exists, and a socket must never be in two engines) keep sockets, as does any other OS.
    /// </summary>
    public static TcpTransportKind For(ListenerSettings listener) => WhyNotEpoll(listener) is null ? TcpTransportKind.Epoll : TcpTransportKind.Sockets;

    /// <summary>Why <paramref name="listener"/> does not run on epoll; null when it does.</summary>
    public static string? WhyNotEpoll(ListenerSettings listener)
    {
        if (listener.Transport == TcpTransportKind.Sockets) return "tcp.transport = sockets";
        var asked = listener.Transport == TcpTransportKind.Epoll ? "epoll asked for, but " : "tcp.transport = auto: ";
        return !Epoll.Supported ? asked + "this OS or architecture has no epoll"
            : listener.TlsCertificate is not null ? asked + "TLS listeners read through .NET's socket engine"
            : listener.ProxyProtocol is not null ? asked + "PROXY-protocol listeners read their header through .NET's socket engine"
            : null;
    }

    /// <summary>The start-up line for one listener.</summary>
    public static string Describe(ListenerSettings listener, int epollLoops) => WhyNotEpoll(listener) is { } why
        ? $"listener {listener.Name}: transport sockets ({why})"
        : $"listener {listener.Name}: transport epoll ({EpollLoopGroup.LoopsFor(epollLoops)} event loops, io.epoll-loops)";
}
