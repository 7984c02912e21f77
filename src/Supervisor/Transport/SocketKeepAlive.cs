using System.Net.Sockets;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;

namespace Supervisor.Transport;

/// <summary>Applies kernel keep-alive to one socket and reads back what the kernel actually holds.</summary>
internal static class SocketKeepAlive
{
    // Linux: IPPROTO_TCP = 6, TCP_USER_TIMEOUT = 18 (milliseconds). .NET has no named option for it.
    private const int IpProtoTcp = 6;
    private const int TcpUserTimeout = 18;

    public static KeepAliveStatus Apply(Socket socket, KeepAliveSettings settings)
    {
        var problems = new List<string>();
        Try(problems, "SO_KEEPALIVE", () => socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, settings.Enabled));
        if (settings.Enabled)
        {
            Try(problems, "TCP_KEEPIDLE", () => socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, (int)settings.Idle.TotalSeconds));
            Try(problems, "TCP_KEEPINTVL", () => socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, (int)settings.Interval.TotalSeconds));
            Try(problems, "TCP_KEEPCNT", () => socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, settings.Probes));
        }
        if (settings.UserTimeout is { } userTimeout)
            Try(problems, "TCP_USER_TIMEOUT", () => socket.SetRawSocketOption(IpProtoTcp, TcpUserTimeout, BitConverter.GetBytes((int)userTimeout.TotalMilliseconds)));

        var status = ReadBack(socket, problems);
        if (status.Enabled != settings.Enabled)
            problems.Add($"SO_KEEPALIVE reads back {status.Enabled}, configured {settings.Enabled}");
        if (settings.Enabled)
        {
            Compare(problems, "TCP_KEEPIDLE", status.IdleSeconds, (int)settings.Idle.TotalSeconds);
            Compare(problems, "TCP_KEEPINTVL", status.IntervalSeconds, (int)settings.Interval.TotalSeconds);
            Compare(problems, "TCP_KEEPCNT", status.Probes, settings.Probes);
        }
        if (settings.UserTimeout is { } configured)
            Compare(problems, "TCP_USER_TIMEOUT", status.UserTimeoutMs, (int)configured.TotalMilliseconds);
        return status with { Problems = problems.Count == 0 ? [] : problems };
    }

    /// <summary>
    /// Makes the kernel probe a silent peer soon (DESIGN §3, "Cause of death"): TCP_KEEPIDLE and TCP_KEEPINTVL to
    /// <paramref name="everySeconds"/>, TCP_KEEPCNT to <paramref name="probes"/>. Setting TCP_KEEPIDLE re-arms the
    /// keep-alive timer from the last segment received, so a peer already idle that long is probed at once. A probe's
    /// ACK proves the peer's stack alive (peer-hung); probes going unanswered prove the path dead. False where an
    /// option was refused (the socket is then left as the kernel has it, and <see cref="Restore"/> puts it back).
    /// </summary>
    public static bool Nudge(Socket socket, int everySeconds, int probes)
    {
        try
        {
            // The count first: a lower idle with the configured count could make the kernel give up before heartbeat.timeout.
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, probes);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, everySeconds);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, everySeconds);
            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or PlatformNotSupportedException)
        {
            return false;
        }
    }

    /// <summary>Puts back the keep-alive options a <see cref="Nudge"/> changed, as they were read back when the socket was adopted.</summary>
    public static void Restore(Socket socket, KeepAliveStatus configured)
    {
        try
        {
            if (configured.IdleSeconds is { } idle)
                socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, idle);
            if (configured.IntervalSeconds is { } interval)
                socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, interval);
            if (configured.Probes is { } probes)
                socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, probes);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or PlatformNotSupportedException)
        {
            // A socket that is going away keeps whatever it has; nothing else reads these options.
        }
    }

    /// <summary>The keep-alive options as the kernel reports them now; an option it will not report is null.</summary>
    public static KeepAliveStatus ReadBack(Socket socket, List<string>? problems = null)
    {
        problems ??= [];
        var enabled = Get(problems, "SO_KEEPALIVE", () => (int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)!) is > 0;
        var idle = Get(problems, "TCP_KEEPIDLE", () => (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime)!);
        var interval = Get(problems, "TCP_KEEPINTVL", () => (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval)!);
        var probes = Get(problems, "TCP_KEEPCNT", () => (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount)!);
        var userTimeout = Get(problems, "TCP_USER_TIMEOUT", () =>
        {
            Span<byte> value = stackalloc byte[4];
            var length = socket.GetRawSocketOption(IpProtoTcp, TcpUserTimeout, value);
            return length == 4 ? BitConverter.ToInt32(value) : throw new SocketException((int)SocketError.ProtocolOption);
        });
        return new KeepAliveStatus(enabled, idle, interval, probes, userTimeout is 0 ? null : userTimeout, problems);
    }

    private static void Try(List<string> problems, string option, Action set)
    {
        try { set(); }
        catch (Exception e) when (e is SocketException or PlatformNotSupportedException)
        {
            problems.Add($"{option} not applied: {e.Message}");
        }
    }

    private static int? Get(List<string> problems, string option, Func<int> get)
    {
        try { return get(); }
        catch (Exception e) when (e is SocketException or PlatformNotSupportedException)
        {
            problems.Add($"{option} not readable: {e.Message}");
            return null;
        }
    }

    private static void Compare(List<string> problems, string option, int? actual, int configured)
    {
        if (actual != configured)
            problems.Add($"{option} reads back {actual?.ToString() ?? "nothing"}, configured {configured}");
    }
}
