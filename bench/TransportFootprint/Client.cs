using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace TransportFootprint;

/// <summary>
/// Opens N connections to 127.0.0.1:port (bounded concurrency), sends one heartbeat line on each,
/// reads the response, then holds every connection idle until the server closes it (bounded by holdTime).
/// </summary>
internal static class Client
{
    private static readonly TimeSpan PerConnectionTimeout = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync(int port, int n, int concurrency, TimeSpan holdTime)
    {
        var sw = Stopwatch.StartNew();
        var sockets = new ConcurrentBag<Socket>();
        int failed = 0;
        string? firstError = null;

        await Parallel.ForEachAsync(Enumerable.Range(0, n), new ParallelOptions { MaxDegreeOfParallelism = concurrency },
            async (_, _) =>
            {
                try
                {
                    sockets.Add(await OpenAndHeartbeatAsync(port));
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException or InvalidDataException)
                {
                    Interlocked.Increment(ref failed);
                    Interlocked.CompareExchange(ref firstError, e.GetType().Name + ": " + e.Message, null);
                }
            });

        Console.WriteLine($"CLIENT port={port} n={n} ok={sockets.Count} failed={failed} concurrency={concurrency} " +
                          $"openSeconds={sw.Elapsed.TotalSeconds:F2}{(firstError is null ? "" : " firstError=\"" + firstError + "\"")}");
        Console.Out.Flush();

        // Hold the connections idle until the server process exits and closes them (EOF/RST).
        using var cts = new CancellationTokenSource(holdTime);
        var waits = sockets.Select(s => WaitForCloseAsync(s, cts.Token)).ToArray();
        bool[] closed = await Task.WhenAll(waits);
        int closedByServer = closed.Count(c => c);
        foreach (Socket s in sockets)
        {
            s.Dispose();
        }
        Console.WriteLine($"CLIENT closedByServer={closedByServer}/{sockets.Count} totalSeconds={sw.Elapsed.TotalSeconds:F2}");
        return failed == 0 ? 0 : 1;
    }

    /// <summary>Used by the server process itself before its baseline: open, heartbeat, close.</summary>
    public static async Task<int> WarmupAsync(int port, int count)
    {
        int ok = 0;
        for (int i = 0; i < count; i++)
        {
            try
            {
                using Socket s = await OpenAndHeartbeatAsync(port);
                s.Shutdown(SocketShutdown.Both);
                ok++;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or InvalidDataException)
            {
                Console.Error.WriteLine($"warm-up connection failed: {e.Message}");
            }
        }
        return ok;
    }

    private static async Task<Socket> OpenAndHeartbeatAsync(int port)
    {
        using var cts = new CancellationTokenSource(PerConnectionTimeout);
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cts.Token);
            await socket.SendAsync(Protocol.Heartbeat, SocketFlags.None, cts.Token);
            byte[] buffer = new byte[128];
            int filled = 0;
            while (true)
            {
                int read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cts.Token);
                if (read == 0)
                {
                    throw new InvalidDataException("server closed before responding");
                }
                filled += read;
                int nl = Array.IndexOf(buffer, (byte)'\n', 0, filled);
                if (nl >= 0)
                {
                    if (!buffer.AsSpan(0, nl + 1).SequenceEqual(Protocol.HeartbeatResponse))
                    {
                        throw new InvalidDataException("unexpected response");
                    }
                    return socket;
                }
                if (filled == buffer.Length)
                {
                    throw new InvalidDataException("response too long");
                }
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<bool> WaitForCloseAsync(Socket socket, CancellationToken ct)
    {
        try
        {
            // Zero-byte read: completes on EOF (or data) without a buffer.
            await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, ct);
            return true;
        }
        catch (SocketException)
        {
            return true; // reset by the exiting server
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
