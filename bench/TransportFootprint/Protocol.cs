using System.Net.Sockets;

namespace TransportFootprint;

/// <summary>Wire constants shared by client and all servers.</summary>
internal static class Protocol
{
    public const int MaxFrameLength = 64 * 1024;
    public const int Backlog = 1024;

    /// <summary>What the client sends once per connection.</summary>
    public static readonly byte[] Heartbeat = "{\"type\":0,\"timestamp\":1}\n"u8.ToArray();

    /// <summary>What every server answers to each complete frame.</summary>
    public static readonly byte[] HeartbeatResponse = "{\"type\":1,\"timestamp\":1}\n"u8.ToArray();

    public const int KeepAliveTimeSeconds = 30;
    public const int KeepAliveIntervalSeconds = 10;
    public const int KeepAliveRetryCount = 3;

    /// <summary>SO_KEEPALIVE + TCP_KEEPIDLE/KEEPINTVL/KEEPCNT, as the product sets them on accepted sockets.</summary>
    public static void ApplyKeepAlive(Socket s)
    {
        s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        s.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, KeepAliveTimeSeconds);
        s.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, KeepAliveIntervalSeconds);
        s.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, KeepAliveRetryCount);
    }
}
