using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

// The floor (issue 7): the least a heartbeat server can do on this runtime. Raw sockets with
// zero-byte reads, no JSON parser, no actors, no registry, no logs: it answers a heartbeat with
// {"type":1,"timestamp":now,"seq":S}, echoes a data line verbatim, and closes a peer silent for
// --timeout with an error notice, from one deadline queue checked every millisecond.
//
//   FloorServer [--port 0] [--timeout 6s] [--max-runtime 900s]
//
// Prints "READY port=P" once listening; exits by itself after --max-runtime, or on SIGTERM.
var port = 0;
var timeout = TimeSpan.FromSeconds(6);
var maxRuntime = TimeSpan.FromSeconds(900);
for (var i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--port": port = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--timeout": timeout = TimeSpan.FromSeconds(double.Parse(args[i + 1].TrimEnd('s'), CultureInfo.InvariantCulture)); break;
        case "--max-runtime": maxRuntime = TimeSpan.FromSeconds(double.Parse(args[i + 1].TrimEnd('s'), CultureInfo.InvariantCulture)); break;
        default: Console.Error.WriteLine($"floor: unknown option {args[i]}"); return 2;
    }
}

using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
listener.Listen(4096);
using var stop = new CancellationTokenSource(maxRuntime);
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stop.Cancel();
});
var deadlines = new FloorServer.Deadlines(timeout);
var sweeper = new Thread(() => deadlines.Run(stop.Token)) { IsBackground = true, Name = "deadlines" };
sweeper.Start();
Console.WriteLine($"READY port={((IPEndPoint)listener.LocalEndPoint!).Port}");

var connections = new List<FloorServer.FloorConnection>();
try
{
    while (!stop.IsCancellationRequested)
    {
        var socket = await listener.AcceptAsync(stop.Token);
        socket.NoDelay = true;
        socket.Blocking = false;
        var connection = new FloorServer.FloorConnection(socket, deadlines);
        connections.Add(connection);
        if (connections.Count % 1024 == 0) connections.RemoveAll(c => c.IsClosed);
        connection.Start();
    }
}
catch (OperationCanceledException)
{
    // SIGTERM or --max-runtime.
}
foreach (var connection in connections) connection.Close();
sweeper.Join(TimeSpan.FromSeconds(2));
return 0;

namespace FloorServer
{
    /// <summary>
    /// Every frame pushes (connection, arrival + timeout); the timeout is the same for all, so the queue
    /// is in deadline order and only its head is ever checked. A popped entry older than its
    /// connection's last frame is stale and dropped.
    /// </summary>
    internal sealed class Deadlines(TimeSpan timeout)
    {
        private readonly Queue<(FloorConnection Connection, long Due)> _queue = new(32_768);
        public long TimeoutTicks { get; } = (long)(timeout.TotalSeconds * Stopwatch.Frequency);

        public void Push(FloorConnection connection, long now)
        {
            lock (_queue) _queue.Enqueue((connection, now + TimeoutTicks));
        }

        public void Run(CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                var now = Stopwatch.GetTimestamp();
                while (true)
                {
                    FloorConnection connection;
                    lock (_queue)
                    {
                        if (!_queue.TryPeek(out var head) || head.Due > now) break;
                        connection = _queue.Dequeue().Connection;
                    }
                    var idle = now - connection.LastFrameAt;
                    if (!connection.IsClosed && idle >= TimeoutTicks)
                        connection.TimeOut(idle * 1000 / Stopwatch.Frequency);
                }
                Thread.Sleep(1);
            }
        }
    }

    internal sealed class FloorConnection(Socket socket, Deadlines deadlines)
    {
        private const int Chunk = 8 * 1024;
        private const int MaxFrame = 64 * 1024;
        private byte[]? _partial;
        private int _partialLength;
        private int _closed;
        private long _lastFrameAt;

        public bool IsClosed => Volatile.Read(ref _closed) != 0;
        public long LastFrameAt => Volatile.Read(ref _lastFrameAt);

        public void Start()
        {
            var now = Stopwatch.GetTimestamp();
            Volatile.Write(ref _lastFrameAt, now);
            deadlines.Push(this, now);
            _ = ReadLoopAsync();
        }

        private async Task ReadLoopAsync()
        {
            try
            {
                while (!IsClosed)
                {
                    await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                    var buffer = ArrayPool<byte>.Shared.Rent(Chunk);
                    try
                    {
                        while (true)
                        {
                            var read = socket.Receive(buffer, 0, buffer.Length, SocketFlags.None, out var error);
                            if (error == SocketError.WouldBlock) break;
                            if (error != SocketError.Success || read == 0 || !Consume(buffer.AsSpan(0, read)))
                            {
                                Close();
                                return;
                            }
                            if (read < buffer.Length) break;
                        }
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                Close();
            }
        }

        private bool Consume(ReadOnlySpan<byte> data)
        {
            while (!data.IsEmpty)
            {
                var newline = data.IndexOf((byte)'\n');
                if (newline < 0)
                {
                    if (_partialLength + data.Length > MaxFrame) return false;
                    _partial ??= new byte[MaxFrame];
                    data.CopyTo(_partial.AsSpan(_partialLength));
                    _partialLength += data.Length;
                    return true;
                }
                if (_partialLength > 0)
                {
                    if (_partialLength + newline > MaxFrame) return false;
                    data[..newline].CopyTo(_partial.AsSpan(_partialLength));
                    OnLine(_partial.AsSpan(0, _partialLength + newline));
                    _partialLength = 0;
                    _partial = null;
                }
                else OnLine(data[..newline]);
                data = data[(newline + 1)..];
            }
            return true;
        }

        private void OnLine(ReadOnlySpan<byte> line)
        {
            var now = Stopwatch.GetTimestamp();
            Volatile.Write(ref _lastFrameAt, now);
            deadlines.Push(this, now);
            var type = line.IndexOf("\"type\":"u8);
            if (type < 0 || type + 7 >= line.Length) return;
            switch (line[type + 7])
            {
                case (byte)'0':
                    Span<byte> response = stackalloc byte[96];
                    var n = Append(response, 0, "{\"type\":1,\"timestamp\":"u8);
                    Utf8Formatter.TryFormat(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), response[n..], out var written);
                    n += written;
                    var seqAt = line.IndexOf("\"seq\":"u8);
                    if (seqAt >= 0 && Utf8Parser.TryParse(line[(seqAt + 6)..], out long seq, out _))
                    {
                        n = Append(response, n, ",\"seq\":"u8);
                        Utf8Formatter.TryFormat(seq, response[n..], out written);
                        n += written;
                    }
                    n = Append(response, n, "}\n"u8);
                    socket.Send(response[..n], SocketFlags.None, out _);
                    break;
                case (byte)'2':
                    // Echo the data line as it came, newline included.
                    var echo = ArrayPool<byte>.Shared.Rent(line.Length + 1);
                    line.CopyTo(echo);
                    echo[line.Length] = (byte)'\n';
                    socket.Send(echo, 0, line.Length + 1, SocketFlags.None, out _);
                    ArrayPool<byte>.Shared.Return(echo);
                    break;
            }
        }

        private static int Append(Span<byte> into, int at, ReadOnlySpan<byte> what)
        {
            what.CopyTo(into[at..]);
            return at + what.Length;
        }

        public void TimeOut(long idleMs)
        {
            if (Interlocked.Exchange(ref _closed, 1) != 0) return;
            var notice = System.Text.Encoding.UTF8.GetBytes(
                $"{{\"type\":3,\"timestamp\":{DateTimeOffset.UtcNow.ToUnixTimeSeconds()},\"data\":\"heartbeat-timeout: no valid frame for {idleMs} ms\"}}\n");
            try
            {
                socket.Send(notice, SocketFlags.None, out _);
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // The peer is gone already.
            }
            socket.Dispose();
        }

        public void Close()
        {
            if (Interlocked.Exchange(ref _closed, 1) != 0) return;
            socket.Dispose();
        }
    }
}
