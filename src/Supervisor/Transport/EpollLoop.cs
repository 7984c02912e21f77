using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Supervisor.Transport;

/// <summary>
/// Linux's <c>epoll</c> and <c>eventfd</c>, called directly (libc). <c>struct epoll_event</c> is packed on x86 and
/// x86-64 (12 bytes: a 4-byte mask, then the 8-byte data) and naturally aligned elsewhere (16 bytes), so it is read
/// and written as bytes at the offsets of the running architecture rather than as a struct.
/// </summary>
internal static class Epoll
{
    public const uint In = 0x001;
    public const uint Out = 0x004;
    public const uint Err = 0x008;
    public const uint Hup = 0x010;
    public const uint ReadHangUp = 0x2000;
    public const uint EdgeTriggered = 1u << 31;

    private const int CtlAdd = 1;
    private const int CtlDel = 2;
    private const int CloseOnExec = 0x80000;
    private const int EventFdNonBlocking = 0x800;

    /// <summary>Bytes of one <c>struct epoll_event</c> on this architecture.</summary>
    public static readonly int EventSize = Packed ? 12 : 16;

    private static readonly int DataOffset = Packed ? 4 : 8;

    private static bool Packed => RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.X86;

    /// <summary>Whether this process can run the epoll transport: Linux, on an architecture whose event layout is known here.</summary>
    public static bool Supported => OperatingSystem.IsLinux()
        && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.X86 or Architecture.Arm64 or Architecture.Arm;

    [DllImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    private static extern int EpollCreate1(int flags);

    [DllImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    private static extern int EpollCtl(int epfd, int op, int fd, byte[]? @event);

    [DllImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    private static extern int EpollWait(int epfd, byte[] events, int maxEvents, int timeoutMs);

    [DllImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static extern int EventFd(uint initial, int flags);

    [DllImport("libc", EntryPoint = "read", SetLastError = true)]
    private static extern nint Read(int fd, ref ulong value, nint count);

    [DllImport("libc", EntryPoint = "write", SetLastError = true)]
    private static extern nint Write(int fd, ref ulong value, nint count);

    /// <summary>A new epoll instance, closed with its handle.</summary>
    public static SafeFileHandle Create() => Owned(EpollCreate1(CloseOnExec), "epoll_create1");

    /// <summary>A new non-blocking eventfd (the loop's doorbell), closed with its handle.</summary>
    public static SafeFileHandle CreateEventFd() => Owned(EventFd(0, CloseOnExec | EventFdNonBlocking), "eventfd");

    private static SafeFileHandle Owned(int fd, string call) =>
        fd >= 0 ? new SafeFileHandle(fd, ownsHandle: true) : throw new System.ComponentModel.Win32Exception(Marshal.GetLastPInvokeError(), $"{call} failed");

    /// <summary>Adds <paramref name="fd"/> with <paramref name="events"/>, tagged <paramref name="token"/>; the errno when refused, else 0.</summary>
    public static int Add(SafeFileHandle epoll, int fd, uint events, long token)
    {
        var @event = new byte[EventSize];
        BitConverter.TryWriteBytes(@event.AsSpan(0, 4), events);
        BitConverter.TryWriteBytes(@event.AsSpan(DataOffset, 8), token);
        var referenced = false;
        try
        {
            epoll.DangerousAddRef(ref referenced);
            return EpollCtl((int)epoll.DangerousGetHandle(), CtlAdd, fd, @event) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        catch (ObjectDisposedException)
        {
            return 9; // EBADF: the loop has ended and closed its epoll instance
        }
        finally
        {
            if (referenced) epoll.DangerousRelease();
        }
    }

    /// <summary>
    /// Removes <paramref name="fd"/>; a descriptor already gone is no error (the kernel dropped it with its last close),
    /// and neither is an epoll instance already closed (its number is never used once closed: it may be another file's).
    /// </summary>
    public static void Remove(SafeFileHandle epoll, int fd)
    {
        var referenced = false;
        try
        {
            epoll.DangerousAddRef(ref referenced);
            EpollCtl((int)epoll.DangerousGetHandle(), CtlDel, fd, null);
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            if (referenced) epoll.DangerousRelease();
        }
    }

    /// <summary>Waits for events into <paramref name="events"/>; the count, 0 when interrupted by a signal.</summary>
    public static int Wait(SafeFileHandle epoll, byte[] events, int timeoutMs)
    {
        var count = EpollWait((int)epoll.DangerousGetHandle(), events, events.Length / EventSize, timeoutMs);
        if (count >= 0) return count;
        var errno = Marshal.GetLastPInvokeError();
        const int EINTR = 4;
        return errno == EINTR ? 0 : throw new System.ComponentModel.Win32Exception(errno, "epoll_wait failed");
    }

    public static uint EventsAt(byte[] events, int index) => BitConverter.ToUInt32(events, index * EventSize);

    public static long TokenAt(byte[] events, int index) => BitConverter.ToInt64(events, index * EventSize + DataOffset);

    /// <summary>Rings the doorbell: the loop's epoll_wait returns. Nothing once the eventfd is closed (its number may be another file's by then).</summary>
    public static void Signal(SafeFileHandle eventFd)
    {
        var referenced = false;
        try
        {
            eventFd.DangerousAddRef(ref referenced);
            ulong one = 1;
            Write((int)eventFd.DangerousGetHandle(), ref one, 8);
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            if (referenced) eventFd.DangerousRelease();
        }
    }

    /// <summary>Silences the doorbell (reads its counter back to zero).</summary>
    public static void Clear(SafeFileHandle eventFd)
    {
        ulong value = 0;
        Read((int)eventFd.DangerousGetHandle(), ref value, 8);
    }
}

/// <summary>
/// One event loop: a thread of its own that waits in <c>epoll_wait</c> on the sockets of its
/// <see cref="EpollTransport"/>s (edge-triggered) and reads each socket that turns readable on that thread, which
/// frames, decodes and hands the frames to the connection actor; the connection dispatcher runs the actor right
/// there, so a heartbeat is read, answered and written on this thread with no wake-up of another
/// (DESIGN §2, "The epoll transport"). Work from other threads (a read to resume after backpressure, a queued write to
/// flush, a socket to close) is posted and the loop woken through an eventfd.
/// <para>
/// Its end has one owner: <see cref="EpollLoopGroup"/>, disposed by the connection supervisor when it stops (after its
/// children, every connection, have stopped). A loop that ends with sockets still registered tells each owner
/// <c>internal-error</c>, so no connection waits on a loop that is gone.
/// </para>
/// </summary>
internal sealed class EpollLoop : IDisposable
{
    private const long DoorbellToken = -1;
    private const int MaxEventsPerWait = 256;

    /// <summary>One read's buffer, shared by every socket of the loop (one read at a time): an idle connection holds none.</summary>
    public const int ReceiveChunk = 8 * 1024;

    private readonly SafeFileHandle _epoll;
    private readonly SafeFileHandle _doorbell;
    private readonly Thread _thread;
    // The registered sockets by slot. A token's low 32 bits are its slot, the high ones a generation, so an event still
    // queued for a retired socket never reaches the one that took its slot over. Written under _lifecycle; the loop's
    // thread reads the array without the lock (a grown one is published before the socket it was grown for is added).
    // A reference per socket where a dictionary node was 48 B (bench/README.md, issue 16).
    private EpollTransport?[] _slots = new EpollTransport?[64];
    private readonly Stack<int> _freeSlots = new();
    private int _slotsUsed, _registered;
    private long _generation;
    private readonly ConcurrentQueue<(EpollTransport Transport, EpollWork Work)> _posted = new();
    private readonly object _lifecycle = new();
    private readonly byte[] _receiveBuffer = new byte[ReceiveChunk];
    private int _doorbellRung;
    private volatile bool _stopping;
    private bool _ended;

    public EpollLoop(string name)
    {
        _epoll = Epoll.Create();
        try
        {
            _doorbell = Epoll.CreateEventFd();
            var errno = Epoll.Add(_epoll, (int)_doorbell.DangerousGetHandle(), Epoll.In, DoorbellToken);
            if (errno != 0) throw new System.ComponentModel.Win32Exception(errno, "epoll_ctl(eventfd) failed");
        }
        catch
        {
            _doorbell?.Dispose();
            _epoll.Dispose();
            throw;
        }
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>Whether the loop's thread still runs.</summary>
    public bool Running => _thread.IsAlive;

    /// <summary>Whether the loop's epoll instance and eventfd are closed (after <see cref="Dispose"/>).</summary>
    public bool DescriptorsClosed => _epoll.IsClosed && _doorbell.IsClosed;

    /// <summary>Sockets registered now.</summary>
    public int Registered => Volatile.Read(ref _registered);

    /// <summary>
    /// Registers <paramref name="transport"/>'s socket (edge-triggered: readable, writable, peer's FIN); the errno when
    /// the kernel refused, else 0. Called from the owner's thread; the first event can arrive before this returns.
    /// </summary>
    public int Register(EpollTransport transport, int fd, out long token)
    {
        lock (_lifecycle)
        {
            if (_ended)
            {
                token = 0;
                return 9; // EBADF: the loop is gone
            }
            var slot = _freeSlots.Count > 0 ? _freeSlots.Pop() : _slotsUsed++;
            if (slot == _slots.Length)
            {
                var grown = new EpollTransport?[_slots.Length * 2];
                _slots.CopyTo(grown, 0);
                Volatile.Write(ref _slots, grown);
            }
            // Written where the caller keeps it before the socket is added: its first event may come before we return.
            token = (++_generation << 32) | (uint)slot;
            _slots[slot] = transport;
            _registered++;
        }
        var errno = Epoll.Add(_epoll, fd, Epoll.In | Epoll.Out | Epoll.ReadHangUp | Epoll.EdgeTriggered, token);
        if (errno != 0) Free(token);
        return errno;
    }

    /// <summary>The socket of <paramref name="token"/>, if it is still registered (else an event queued before its retirement).</summary>
    private EpollTransport? Lookup(long token)
    {
        var slots = Volatile.Read(ref _slots);
        var slot = (int)(uint)token;
        return slot < slots.Length && slots[slot] is { } transport && transport.Token == token ? transport : null;
    }

    private bool Free(long token)
    {
        lock (_lifecycle)
        {
            var slot = (int)(uint)token;
            if (slot >= _slots.Length || _slots[slot] is not { } transport || transport.Token != token) return false;
            _slots[slot] = null;
            _freeSlots.Push(slot);
            _registered--;
            return true;
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> for <paramref name="transport"/> on the loop's thread; false when the loop has ended
    /// (the caller then does what is left itself).
    /// </summary>
    public bool Post(EpollTransport transport, EpollWork work)
    {
        lock (_lifecycle)
        {
            if (_ended) return false;
            _posted.Enqueue((transport, work));
        }
        // One ring until the loop has looked at the queue again: a burst of posts costs one write(2).
        if (Interlocked.Exchange(ref _doorbellRung, 1) == 0) Epoll.Signal(_doorbell);
        return true;
    }

    /// <summary>From the loop's thread (a retirement): the socket leaves the epoll set before its descriptor can be reused.</summary>
    public void Unregister(long token, int fd)
    {
        if (!Free(token)) return;
        Epoll.Remove(_epoll, fd);
    }

    /// <summary>What ended the loop other than <see cref="Dispose"/> (a bug of ours); null while it runs or when disposed.</summary>
    public Exception? Failure { get; private set; }

    private void Run()
    {
        var events = new byte[MaxEventsPerWait * Epoll.EventSize];
        try
        {
            while (!_stopping)
            {
                var count = Epoll.Wait(_epoll, events, -1);
                for (var i = 0; i < count; i++)
                {
                    var token = Epoll.TokenAt(events, i);
                    if (token == DoorbellToken) Epoll.Clear(_doorbell);
                    else Lookup(token)?.OnReady(Epoll.EventsAt(events, i), _receiveBuffer);
                }
                // Posted work runs after the batch: a socket retired here had no event of this batch left to handle.
                RunPosted();
            }
        }
        catch (Exception e)
        {
            // Not the process's end: every connection of this loop is told internal-error below, and new ones go to the others.
            Failure = e;
        }
        finally
        {
            End();
            // Closed here, by the thread that waits on them, never under it (a descriptor number is reused at once).
            _epoll.Dispose();
            _doorbell.Dispose();
        }
    }

    private void RunPosted()
    {
        Volatile.Write(ref _doorbellRung, 0);
        // Only what was posted before this turn: work posted while it runs (a flooded socket's next read) waits for the
        // next turn, after the sockets that are ready meanwhile (its post rang the doorbell, so that turn comes at once).
        for (var pending = _posted.Count; pending > 0 && _posted.TryDequeue(out var posted); pending--)
            posted.Transport.RunPosted(posted.Work, _receiveBuffer);
    }

    /// <summary>No more posts; what was posted runs; every socket still registered is closed and its owner told.</summary>
    private void End()
    {
        lock (_lifecycle) _ended = true;
        RunPosted();
        EpollTransport?[] slots;
        lock (_lifecycle)
        {
            slots = _slots;
            _slots = [];
            _freeSlots.Clear();
            _registered = 0;
        }
        foreach (var transport in slots) transport?.LoopEnded();
    }

    /// <summary>Stops the thread and waits for it (bounded); the thread closes the epoll instance and the eventfd as it ends.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        Epoll.Signal(_doorbell);
        if (Thread.CurrentThread != _thread) _thread.Join(TimeSpan.FromSeconds(10));
    }
}

/// <summary>What a loop runs for a transport on its thread when asked from another.</summary>
internal enum EpollWork
{
    /// <summary>Reading was paused and may go on: the edge that announced the input is gone, so read now.</summary>
    ResumeRead,
    /// <summary>A write the owner could not finish is queued: send it now, or when the socket turns writable.</summary>
    FlushQueued,
    /// <summary>The owner let go: leave the epoll set, close the socket, release the framer.</summary>
    Retire,
}

/// <summary>
/// The process's event loops (<c>io.epoll-loops</c>, one per core at most), created when the first connection of an epoll
/// listener is adopted; a connection is given the next loop in turn. Owned by the connection supervisor, which disposes it
/// when it stops: every loop thread ends and its descriptors are closed.
/// </summary>
internal sealed class EpollLoopGroup : IDisposable
{
    private readonly EpollLoop[] _loops;
    private int _next;

    public EpollLoopGroup(int loops)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(loops);
        _loops = new EpollLoop[loops];
        try
        {
            for (var i = 0; i < loops; i++) _loops[i] = new EpollLoop($"epoll-loop-{i}");
        }
        catch
        {
            foreach (var loop in _loops) loop?.Dispose();
            throw;
        }
    }

    /// <summary>One loop per core, or <paramref name="configured"/> when set (at most one per core).</summary>
    public static int LoopsFor(int configured) => configured > 0 ? Math.Min(configured, Environment.ProcessorCount) : Environment.ProcessorCount;

    public IReadOnlyList<EpollLoop> Loops => _loops;

    /// <summary>The loop the next connection goes to: the next one still running (a failed loop takes none).</summary>
    public EpollLoop Next()
    {
        var first = (uint)Interlocked.Increment(ref _next);
        for (var i = 0u; i < _loops.Length; i++)
        {
            var loop = _loops[(int)((first + i) % (uint)_loops.Length)];
            if (loop.Running) return loop;
        }
        // None runs: registering refuses, and the connection closes with internal-error.
        return _loops[(int)(first % (uint)_loops.Length)];
    }

    public void Dispose()
    {
        foreach (var loop in _loops) loop.Dispose();
    }
}
