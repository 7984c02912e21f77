using System.Net.Sockets;
using System.Runtime.InteropServices;
using Supervisor.Messages.Protocol;

namespace Supervisor.Transport;

/// <summary>
/// Reads Linux <c>struct tcp_info</c> with <c>getsockopt(IPPROTO_TCP = 6, TCP_INFO = 11)</c>. The offsets are
/// the kernel's ABI (include/uapi/linux/tcp.h), stable since 2.6; fields the running kernel does not fill
/// in (a shorter struct) make the read fail rather than report zeros.
/// </summary>
internal static class TcpInfoReader
{
    private const int IpProtoTcp = 6;
    private const int TcpInfoOption = 11;
    // Up to and including tcpi_total_retrans (offset 100, 4 bytes).
    private const int MinimumLength = 104;

    private static readonly string[] States =
        ["unknown", "established", "syn-sent", "syn-recv", "fin-wait-1", "fin-wait-2", "time-wait", "close", "close-wait", "last-ack", "listen", "closing"];

    /// <summary>The socket's TCP_INFO, or null where the platform or the socket has none.</summary>
    public static TcpInfo? Read(Socket socket)
    {
        Span<byte> raw = stackalloc byte[256];
        return TryRead(socket, raw, out var length) ? Parse(raw[..length]) : null;
    }

    /// <summary>How long ago the socket last received data (tcpi_last_data_recv), without allocating; null where unknown.</summary>
    public static TimeSpan? ReadLastDataReceived(Socket socket)
    {
        Span<byte> raw = stackalloc byte[256];
        return TryRead(socket, raw, out _) ? TimeSpan.FromMilliseconds(U32(raw, 52)) : null;
    }

    /// <summary>The raw struct into <paramref name="raw"/>; false where the platform, the socket or the kernel gives less than the fields read here.</summary>
    private static bool TryRead(Socket socket, Span<byte> raw, out int length)
    {
        length = 0;
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            length = socket.GetRawSocketOption(IpProtoTcp, TcpInfoOption, raw);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or PlatformNotSupportedException)
        {
            return false;
        }
        return length >= MinimumLength;
    }

    /// <summary>Decodes the fields operators read from a raw <c>struct tcp_info</c>.</summary>
    public static TcpInfo Parse(ReadOnlySpan<byte> raw)
    {
        var state = raw[0];
        return new TcpInfo(
            State: state < States.Length ? States[state] : $"state-{state}",
            Retransmits: raw[2],
            Probes: raw[3],
            RtoMs: Ms(raw, 8),
            RttMs: Ms(raw, 68),
            RttVarMs: Ms(raw, 72),
            Unacked: U32(raw, 24),
            Lost: U32(raw, 32),
            TotalRetrans: U32(raw, 100),
            SendCongestionWindow: U32(raw, 80),
            LastDataSentMs: U32(raw, 44),
            LastDataReceivedMs: U32(raw, 52),
            LastAckReceivedMs: U32(raw, 56));
    }

    // Native byte order, as the kernel wrote it.
    private static uint U32(ReadOnlySpan<byte> raw, int offset) => MemoryMarshal.Read<uint>(raw[offset..]);

    // The kernel reports microseconds.
    private static double Ms(ReadOnlySpan<byte> raw, int offset) => U32(raw, offset) / 1000.0;
}
