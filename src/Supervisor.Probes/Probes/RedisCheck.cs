using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;
using Supervisor.Configuration;

namespace Supervisor.Probes;

/// <summary>
/// <c>redis</c>: a real <c>PING</c> round trip through one long-lived StackExchange.Redis multiplexer, which
/// reconnects by itself after the server comes back. Details carry the source document's pool statistics
/// as the multiplexer and the server see them: sockets, commands outstanding, unsent and awaiting a reply,
/// connection failures and restores, and the server's <c>connected_clients</c> / <c>blocked_clients</c>.
/// </summary>
internal sealed class RedisCheck : IProbeCheck
{
    private readonly HostPort _endpoint;
    private readonly ConfigurationOptions _options;
    private Task<ConnectionMultiplexer>? _connect;
    private long _connectionFailures, _connectionRestores;

    public RedisCheck(HostPort endpoint, TimeSpan timeout, TimeSpan interval)
    {
        _endpoint = endpoint;
        var timeoutMs = (int)Math.Max(1, timeout.TotalMilliseconds);
        _options = new ConfigurationOptions
        {
            EndPoints = { endpoint.ToEndPoint() },
            // Start without a server and keep trying in the background: a probe must see Redis come back.
            AbortOnConnectFail = false,
            ConnectTimeout = timeoutMs,
            SyncTimeout = timeoutMs,
            AsyncTimeout = timeoutMs,
            ConnectRetry = 1,
            // A down server answers the PING at once with a connection error instead of queueing it.
            BacklogPolicy = BacklogPolicy.FailFast,
            // The multiplexer's own heartbeat notices a dead socket and drives reconnects.
            HeartbeatInterval = interval < TimeSpan.FromSeconds(1) ? interval : TimeSpan.FromSeconds(1),
            ReconnectRetryPolicy = new LinearRetry((int)Math.Max(50, interval.TotalMilliseconds)),
            ClientName = "supervisor-probe",
            // INFO is an admin command to StackExchange.Redis; the probe sends PING and INFO only.
            AllowAdmin = true,
        };
    }

    public async Task<ProbeResult> RunAsync(CancellationToken cancellation)
    {
        // Runs up to the first await on the probe actor's turn: only here is the field written.
        if (_connect is { IsFaulted: true } or { IsCanceled: true }) _connect = null;
        _connect ??= ConnectAsync(_options);
        var redis = await _connect.WaitAsync(cancellation).ConfigureAwait(false);

        var started = Stopwatch.GetTimestamp();
        TimeSpan ping;
        try
        {
            ping = await redis.GetDatabase().PingAsync().WaitAsync(cancellation).ConfigureAwait(false);
        }
        catch (RedisException e)
        {
            return ProbeResult.Down($"PING to {_endpoint} failed: {Summary(e.Message)}", Details(redis, null));
        }
        var latency = Stopwatch.GetElapsedTime(started).TotalMilliseconds;

        IGrouping<string, KeyValuePair<string, string>>[]? clients = null;
        try
        {
            var server = redis.GetServers().FirstOrDefault();
            if (server is not null)
                clients = await server.InfoAsync("clients").WaitAsync(cancellation).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RedisException or RedisCommandException)
        {
            // INFO is extra detail (a server may refuse it); the PING already answered.
        }
        var details = Details(redis, clients);
        details["pingMs"] = ping.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture);
        return ProbeResult.Up(latency, details);
    }

    private async Task<ConnectionMultiplexer> ConnectAsync(ConfigurationOptions options)
    {
        var redis = await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
        redis.ConnectionFailed += (_, _) => Interlocked.Increment(ref _connectionFailures);
        redis.ConnectionRestored += (_, _) => Interlocked.Increment(ref _connectionRestores);
        return redis;
    }

    private Dictionary<string, string> Details(ConnectionMultiplexer redis, IGrouping<string, KeyValuePair<string, string>>[]? info)
    {
        var counters = redis.GetCounters();
        var details = new Dictionary<string, string>
        {
            ["connected"] = redis.IsConnected ? "true" : "false",
            // Sockets the multiplexer has opened so far, reconnects included.
            ["socketsOpened"] = Text(counters.Interactive.SocketCount + counters.Subscription.SocketCount),
            ["outstanding"] = Text(counters.TotalOutstanding),
            ["pendingUnsent"] = Text(counters.Interactive.PendingUnsentItems),
            ["awaitingResponse"] = Text(counters.Interactive.SentItemsAwaitingResponse),
            ["operations"] = Text(counters.Interactive.OperationCount),
            ["connectionFailures"] = Text(Interlocked.Read(ref _connectionFailures)),
            ["connectionRestores"] = Text(Interlocked.Read(ref _connectionRestores)),
        };
        foreach (var pair in info?.SelectMany(group => group) ?? [])
        {
            if (pair.Key is "connected_clients" or "blocked_clients" or "maxclients")
                details[pair.Key] = pair.Value;
        }
        return details;
    }

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// StackExchange.Redis appends a long diagnostic dump to its messages ("...: PING; SocketClosed on
    /// host/Interactive, ..."); the operator's line keeps the sentence and the failure type.
    /// </summary>
    private static string Summary(string text)
    {
        var parts = text.Split('\n')[0].Split("; ");
        var failure = parts.Length > 1 ? parts[1].Split(' ')[0] : "";
        return failure.Length > 0 && failure.All(char.IsLetter) ? $"{parts[0].Trim()} ({failure})" : parts[0].Trim();
    }

    /// <summary>Releases the multiplexer off the caller's thread (closing it may wait on its sockets).</summary>
    public void Dispose()
    {
        var connect = _connect;
        _connect = null;
        connect?.ContinueWith(task =>
        {
            if (task.IsCompletedSuccessfully) task.Result.Dispose();
        }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
    }
}
