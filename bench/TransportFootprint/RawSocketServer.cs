using System.Buffers;
using System.Net;
using System.Net.Sockets;

namespace TransportFootprint;

/// <summary>
/// Transport A: Socket.AcceptAsync + per-connection loop of zero-byte ReceiveAsync. A receive
/// buffer is rented from ArrayPool only while data is actually available.
/// </summary>
internal sealed class RawSocketServer : IBenchServer
{
    private readonly CancellationTokenSource _cts = new();
    private Socket? _listener;
    private Task? _acceptLoop;

    public Task<int> StartAsync(int port, Stats stats)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
        listener.Listen(Protocol.Backlog);
        _listener = listener;
        _acceptLoop = AcceptLoopAsync(listener, stats, _cts.Token);
        return Task.FromResult(((IPEndPoint)listener.LocalEndPoint!).Port);
    }

    private static async Task AcceptLoopAsync(Socket listener, Stats stats, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) { continue; }

            stats.OnAccepted();
            try
            {
                socket.NoDelay = true;
                Protocol.ApplyKeepAlive(socket);
            }
            catch (SocketException)
            {
                stats.OnClosed();
                socket.Dispose();
                continue;
            }
            var connection = new RawConnection(socket, stats);
            _ = connection.RunAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }
        _cts.Dispose();
    }
}

/// <summary>Per-connection state: a socket, a few longs, and a line buffer allocated only for partial frames.</summary>
internal sealed class RawConnection(Socket socket, Stats stats)
{
    private const int ReceiveChunk = 4096;

    private readonly long _connectedAtTicks = Environment.TickCount64;
    private long _lastSeenTicks;
    private long _bytesIn;
    private long _framesIn;
    private byte[]? _partial;   // lazily allocated, only when a frame spans two reads
    private int _partialLength;

    public long ConnectedAtTicks => _connectedAtTicks;
    public long LastSeenTicks => _lastSeenTicks;
    public long BytesIn => _bytesIn;
    public long FramesIn => _framesIn;

    public async Task RunAsync()
    {
        try
        {
            while (true)
            {
                // Zero-byte read: completes when data (or EOF) is available; holds no buffer while idle.
                await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);

                byte[] buffer = ArrayPool<byte>.Shared.Rent(ReceiveChunk);
                int frames;
                try
                {
                    int read = await socket.ReceiveAsync(buffer.AsMemory(0, ReceiveChunk), SocketFlags.None).ConfigureAwait(false);
                    if (read == 0)
                    {
                        return; // orderly EOF
                    }
                    _bytesIn += read;
                    _lastSeenTicks = Environment.TickCount64;
                    frames = Consume(buffer.AsSpan(0, read));
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }

                if (frames < 0)
                {
                    return; // frame longer than MaxFrameLength: protocol violation, drop the connection
                }
                for (int i = 0; i < frames; i++)
                {
                    await socket.SendAsync(Protocol.HeartbeatResponse, SocketFlags.None).ConfigureAwait(false);
                    stats.OnAnswered();
                }
            }
        }
        catch (SocketException) { }
        catch (ObjectDisposedException) { }
        finally
        {
            stats.OnClosed();
            socket.Dispose();
        }
    }

    /// <summary>Splits on '\n'; returns the number of complete frames, or -1 if a frame exceeds the limit.</summary>
    private int Consume(ReadOnlySpan<byte> data)
    {
        int frames = 0;
        while (!data.IsEmpty)
        {
            int nl = data.IndexOf((byte)'\n');
            if (nl < 0)
            {
                if (!Append(data))
                {
                    return -1;
                }
                break;
            }
            if (_partialLength + nl > Protocol.MaxFrameLength)
            {
                return -1;
            }
            // A complete frame is _partial[0.._partialLength] + data[0..nl]. This benchmark only counts it;
            // the product would hand it to its JSON decoder here.
            _partialLength = 0;
            _framesIn++;
            frames++;
            data = data[(nl + 1)..];
        }
        return frames;
    }

    private bool Append(ReadOnlySpan<byte> tail)
    {
        int needed = _partialLength + tail.Length;
        if (needed > Protocol.MaxFrameLength)
        {
            return false;
        }
        if (_partial is null || _partial.Length < needed)
        {
            var grown = new byte[Math.Max(needed, Math.Min(Protocol.MaxFrameLength, Math.Max(256, (_partial?.Length ?? 0) * 2)))];
            _partial?.AsSpan(0, _partialLength).CopyTo(grown);
            _partial = grown;
        }
        tail.CopyTo(_partial.AsSpan(_partialLength));
        _partialLength = needed;
        return true;
    }
}
