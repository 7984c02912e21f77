using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace Supervisor.Transport;

/// <summary>
/// A socket receive or send awaited without a task, whose failure is a value instead of an exception. .NET's own
/// awaitable socket calls turn a failure known at once (a read or write on a socket its peer has reset) into an
/// exception carrying the current stack trace formatted with file and line information, read from the symbol files:
/// in a TLS reconnect storm that formatting and the throws through SslStream's async layers were a tenth of the
/// server's CPU (bench/README, "the TLS storm's exceptions"). Kestrel's socket transport awaits its operations the
/// same way (SocketAwaitableEventArgs, SocketSenderPool).
/// </summary>
internal sealed class SocketOperation : SocketAsyncEventArgs, IValueTaskSource<int>
{
    private ManualResetValueTaskSourceCore<int> _completion;

    public SocketOperation() : base(unsafeSuppressExecutionContextFlow: true)
    {
    }

    /// <summary>The first error an operation ended with; null while none has. Once set, it stays.</summary>
    public SocketError? Failure { get; private set; }

    /// <summary>Bytes received (0: the end of input, or <see cref="Failure"/> set); a zero-length buffer waits for input without taking any.</summary>
    public ValueTask<int> ReceiveAsync(Socket socket, Memory<byte> buffer)
    {
        _completion.Reset();
        SetBuffer(buffer);
        return socket.ReceiveAsync(this) ? new ValueTask<int>(this, _completion.Version) : new ValueTask<int>(Finish());
    }

    /// <summary>Bytes sent: all of <paramref name="buffer"/>, or 0 with <see cref="Failure"/> set.</summary>
    public ValueTask<int> SendAsync(Socket socket, ReadOnlyMemory<byte> buffer)
    {
        _completion.Reset();
        SetBuffer(MemoryMarshal.AsMemory(buffer));
        return socket.SendAsync(this) ? new ValueTask<int>(this, _completion.Version) : new ValueTask<int>(Finish());
    }

    // The continuation runs here, on the socket engine's worker (a thread-pool item), as .NET's own awaitables do.
    protected override void OnCompleted(SocketAsyncEventArgs e) => _completion.SetResult(Finish());

    // Touches nothing but results: the operation may have been disposed (its socket closed) while it ran.
    private int Finish()
    {
        if (SocketError == SocketError.Success) return BytesTransferred;
        Failure ??= SocketError;
        return 0;
    }

    int IValueTaskSource<int>.GetResult(short token) => _completion.GetResult(token);
    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _completion.GetStatus(token);
    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _completion.OnCompleted(continuation, state, token, flags);

    /// <summary>
    /// Send operations shared by every connection (a send is short-lived; a connection holds none between sends), so a
    /// TLS connection keeps one receive operation and no send operation of its own.
    /// </summary>
    public static class Senders
    {
        private const int Kept = 256;
        private static readonly ConcurrentQueue<SocketOperation> Free = new();
        // How many Free holds, kept beside it: ConcurrentQueue.Count snapshots the queue, and this is every TLS write.
        private static int _freeCount;

        /// <summary>Sends all of <paramref name="buffer"/>; a failure is an IOException around the SocketException, as NetworkStream's.</summary>
        public static ValueTask SendAsync(Socket socket, ReadOnlyMemory<byte> buffer)
        {
            SocketOperation sender;
            if (Free.TryDequeue(out var free))
            {
                Interlocked.Decrement(ref _freeCount);
                sender = free;
            }
            else sender = new SocketOperation();
            var sending = sender.SendAsync(socket, buffer);
            if (!sending.IsCompleted) return AwaitAsync(sender, sending);
            sending.GetAwaiter().GetResult();
            return Return(sender) is { } error ? ValueTask.FromException(Failed(error)) : default;
        }

        private static async ValueTask AwaitAsync(SocketOperation sender, ValueTask<int> sending)
        {
            await sending.ConfigureAwait(false);
            if (Return(sender) is { } error) throw Failed(error);
        }

        /// <summary>Back to the pool, reset; the error its send ended with, if any.</summary>
        private static SocketError? Return(SocketOperation sender)
        {
            var error = sender.Failure;
            sender.Failure = null;
            // The buffer was the caller's (often a pooled array): a shared operation keeps no reference to it.
            sender.SetBuffer(Memory<byte>.Empty);
            if (Interlocked.Increment(ref _freeCount) <= Kept) Free.Enqueue(sender);
            else
            {
                Interlocked.Decrement(ref _freeCount);
                sender.Dispose();
            }
            return error;
        }

        private static IOException Failed(SocketError error)
        {
            var socket = new SocketException((int)error);
            return new IOException($"Unable to write data to the transport connection: {socket.Message}.", socket);
        }
    }
}
