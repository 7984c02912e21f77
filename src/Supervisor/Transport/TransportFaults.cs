using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Supervisor.Transport;

/// <summary>The named points of the transports where a fault can be injected: every await, send and callback of their loops.</summary>
internal enum FaultPoint
{
    /// <summary>SocketTransport: the zero-byte read that waits for input.</summary>
    TcpReceiveWait,
    /// <summary>SocketTransport: draining what the kernel holds.</summary>
    TcpReceive,
    /// <summary>SocketTransport: a send straight to the socket, on the owner's thread.</summary>
    TcpSend,
    /// <summary>SocketTransport: a queued send (OutboundQueue's send path).</summary>
    TcpSendQueued,
    /// <summary>SocketTransport: the FIN after the last queued write.</summary>
    TcpShutdown,
    /// <summary>TlsTransport: the end of the server or client handshake.</summary>
    TlsHandshake,
    /// <summary>TlsTransport: the zero-byte read that waits for a record.</summary>
    TlsReceiveWait,
    /// <summary>TlsTransport: reading a record.</summary>
    TlsReceive,
    /// <summary>TlsTransport: a queued send (OutboundQueue's send path).</summary>
    TlsSend,
    /// <summary>TlsTransport: close_notify and FIN.</summary>
    TlsCloseNotify,
    /// <summary>WebSocketTransport: a receive of the receive loop.</summary>
    WsReceive,
    /// <summary>WebSocketTransport: sending a text message.</summary>
    WsSend,
    /// <summary>WebSocketTransport: the completion of a send that could not finish at once.</summary>
    WsSendCompleted,
    /// <summary>WebSocketTransport: the close frame.</summary>
    WsCloseOutput,
    /// <summary>WebSocketTransport: the pong deadline's timer callback.</summary>
    WsPongCheck,
}

/// <summary>
/// A seam for tests to throw at a named point of one connection's transport, to prove that whatever fails
/// there ends that connection cleanly. Nothing is armed in production: each point costs one volatile read.
/// A fault fires once, at the first pass through its point by the transport whose remote endpoint it names,
/// so tests running side by side do not hit each other's connections.
/// </summary>
internal static class TransportFaults
{
    private static readonly ConcurrentDictionary<(string Remote, FaultPoint Point), byte> Armed = new();
    private static volatile bool s_anyArmed;

    public static IReadOnlyList<FaultPoint> Tcp { get; } =
        [FaultPoint.TcpReceiveWait, FaultPoint.TcpReceive, FaultPoint.TcpSend, FaultPoint.TcpSendQueued, FaultPoint.TcpShutdown];

    public static IReadOnlyList<FaultPoint> Tls { get; } =
        [FaultPoint.TlsHandshake, FaultPoint.TlsReceiveWait, FaultPoint.TlsReceive, FaultPoint.TlsSend, FaultPoint.TlsCloseNotify];

    public static IReadOnlyList<FaultPoint> WebSocket { get; } =
        [FaultPoint.WsReceive, FaultPoint.WsSend, FaultPoint.WsSendCompleted, FaultPoint.WsCloseOutput, FaultPoint.WsPongCheck];

    /// <summary>Throws <see cref="InjectedFault"/> if a fault is armed at <paramref name="point"/> for <paramref name="remote"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void At(FaultPoint point, string remote)
    {
        if (s_anyArmed) Fire(point, remote);
    }

    private static void Fire(FaultPoint point, string remote)
    {
        if (Armed.TryRemove((remote, point), out _)) throw new InjectedFault(point, remote);
    }

    /// <summary>Arms one fault; disposing the result disarms it if it has not fired.</summary>
    public static IDisposable Arm(FaultPoint point, string remote)
    {
        Armed[(remote, point)] = 0;
        s_anyArmed = true;
        return new Disarm(point, remote);
    }

    /// <summary>Whether the fault armed at <paramref name="point"/> for <paramref name="remote"/> has fired (or was never armed).</summary>
    public static bool HasFired(FaultPoint point, string remote) => !Armed.ContainsKey((remote, point));

    private sealed class Disarm(FaultPoint point, string remote) : IDisposable
    {
        public void Dispose() => Armed.TryRemove((remote, point), out _);
    }
}

/// <summary>The exception a test injects at a <see cref="FaultPoint"/>: it stands for a bug of ours.</summary>
internal sealed class InjectedFault(FaultPoint point, string remote) : Exception($"fault injected at {point} for {remote}")
{
    public FaultPoint Point { get; } = point;
}
