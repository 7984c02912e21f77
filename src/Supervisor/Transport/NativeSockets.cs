using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Supervisor.Transport;

/// <summary>
/// recv(2) and send(2) straight on a socket's descriptor, for the epoll transport, whose loop owns the descriptor's
/// readiness and close. .NET's own <see cref="Socket.Receive(byte[], int, int, SocketFlags, out SocketError)"/> needs
/// the socket in .NET's non-blocking mode, and setting that mode makes .NET build the socket's async context (152 B
/// per connection that the epoll transport never uses; bench/README, issue 16), so the descriptor is made
/// non-blocking here and read and written here: one P/Invoke per call, errno mapped as .NET maps it.
/// </summary>
internal static class NativeSockets
{
    private const int GetFlags = 3;      // F_GETFL
    private const int SetFlags = 4;      // F_SETFL
    private const int NonBlocking = 0x800; // O_NONBLOCK
    private const int NoSignal = 0x4000;   // MSG_NOSIGNAL: a reset peer fails the send with EPIPE, it raises no SIGPIPE

    [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static extern int Fcntl(int fd, int command, int argument);

    [DllImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static extern nint Recv(int fd, ref byte buffer, nint length, int flags);

    [DllImport("libc", EntryPoint = "send", SetLastError = true)]
    private static extern nint SendNative(int fd, ref byte buffer, nint length, int flags);

    /// <summary>Sets O_NONBLOCK on <paramref name="fd"/>; the errno when that failed, else 0.</summary>
    public static int MakeNonBlocking(int fd)
    {
        var flags = Fcntl(fd, GetFlags, 0);
        if (flags < 0 || Fcntl(fd, SetFlags, flags | NonBlocking) < 0) return Marshal.GetLastPInvokeError();
        return 0;
    }

    /// <summary>One recv into <paramref name="buffer"/>: the bytes read (0: the peer's FIN), or -1 with <paramref name="error"/> set.</summary>
    public static int Receive(int fd, Span<byte> buffer, out SocketError error)
    {
        while (true)
        {
            var read = Recv(fd, ref MemoryMarshal.GetReference(buffer), buffer.Length, 0);
            if (read >= 0)
            {
                error = SocketError.Success;
                return (int)read;
            }
            var errno = Marshal.GetLastPInvokeError();
            if (errno == Eintr) continue;
            error = FromErrno(errno);
            return -1;
        }
    }

    /// <summary>One send of <paramref name="bytes"/>: the bytes the kernel took (0 when it would block or failed: see <paramref name="error"/>).</summary>
    public static int Send(int fd, ReadOnlySpan<byte> bytes, out SocketError error)
    {
        while (true)
        {
            var sent = SendNative(fd, ref MemoryMarshal.GetReference(bytes), bytes.Length, NoSignal);
            if (sent >= 0)
            {
                error = SocketError.Success;
                return (int)sent;
            }
            var errno = Marshal.GetLastPInvokeError();
            if (errno == Eintr) continue;
            error = FromErrno(errno);
            return 0;
        }
    }

    private const int Eintr = 4;

    /// <summary>Linux's errno as the <see cref="SocketError"/> .NET reports for it (the ones a connected TCP socket can return).</summary>
    public static SocketError FromErrno(int errno) => errno switch
    {
        11 => SocketError.WouldBlock,              // EAGAIN
        4 => SocketError.Interrupted,              // EINTR
        9 => SocketError.OperationAborted,         // EBADF: closed under the call
        12 or 105 => SocketError.NoBufferSpaceAvailable, // ENOMEM, ENOBUFS
        32 => SocketError.Shutdown,                // EPIPE
        100 => SocketError.NetworkDown,            // ENETDOWN
        101 => SocketError.NetworkUnreachable,     // ENETUNREACH
        103 => SocketError.ConnectionAborted,      // ECONNABORTED
        104 => SocketError.ConnectionReset,        // ECONNRESET
        107 => SocketError.NotConnected,           // ENOTCONN
        110 => SocketError.TimedOut,               // ETIMEDOUT
        111 => SocketError.ConnectionRefused,      // ECONNREFUSED
        113 => SocketError.HostUnreachable,        // EHOSTUNREACH
        _ => SocketError.SocketError,
    };
}
