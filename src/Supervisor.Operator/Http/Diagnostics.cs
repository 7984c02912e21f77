using System.Globalization;
using System.Net;
using Supervisor.Hosting;
using Supervisor.Messages.Protocol;

namespace Supervisor.Http;

/// <summary>One listening endpoint and the kernel's count of its sockets by state (from <c>/proc/net/tcp</c> and <c>tcp6</c>).</summary>
internal sealed record ListenerSockets(string Name, string Protocol, string Endpoint, int Established, int TimeWait, int CloseWait);

/// <summary>TCP_INFO of one live connection; <c>Error</c> says why <c>TcpInfo</c> is missing.</summary>
internal sealed record ConnectionTcpInfo(string Id, string Protocol, string Remote, string Listener, TcpInfo? TcpInfo, string? Error);

internal sealed record ConnectionTcpInfoPage(int Total, int Offset, int? Limit, IReadOnlyList<ConnectionTcpInfo> Items);

/// <summary>
/// <c>GET /api/diagnostics</c>: what the source document's troubleshooting section gets from the shell
/// (<c>cat /proc/net/sockstat</c>, <c>ss -tan state established '( sport = :8081 )'</c>, <c>ss -ti</c>).
/// </summary>
/// <param name="Sockstat">
/// <c>/proc/net/sockstat</c> and <c>sockstat6</c> by protocol, lower-case:
/// <c>tcp: {inuse, orphan, tw, alloc, mem}</c>, <c>tcp6: {inuse}</c>, <c>sockets: {used}</c>, …; <c>mem</c> is in pages.
/// </param>
internal sealed record DiagnosticsReport(
    DateTimeOffset At,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> Sockstat,
    IReadOnlyList<ListenerSockets> Listeners,
    ConnectionTcpInfoPage Connections);

/// <summary>Readers of the kernel's socket tables under <c>/proc/net</c> (Linux; elsewhere they read nothing).</summary>
internal static class ProcNet
{
    /// <summary>Parses <c>/proc/net/sockstat</c>-style text: <c>TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1</c>.</summary>
    public static Dictionary<string, IReadOnlyDictionary<string, long>> ParseSockstat(string text)
    {
        var result = new Dictionary<string, IReadOnlyDictionary<string, long>>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0) continue;
            var words = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var values = new Dictionary<string, long>();
            for (var i = 0; i + 1 < words.Length; i += 2)
            {
                if (long.TryParse(words[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
                    values[words[i]] = value;
            }
            result[line[..colon].Trim().ToLowerInvariant()] = values;
        }
        return result;
    }

    public static async Task<IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>>> ReadSockstatAsync(CancellationToken cancel)
    {
        var text = await ReadIfPresentAsync("/proc/net/sockstat", cancel) + "\n" + await ReadIfPresentAsync("/proc/net/sockstat6", cancel);
        return ParseSockstat(text);
    }

    /// <summary>Kernel TCP states as <c>/proc/net/tcp</c> writes them (hex).</summary>
    public const int Established = 0x01, TimeWait = 0x06, CloseWait = 0x08;

    /// <summary>One socket of <c>/proc/net/tcp</c> or <c>tcp6</c>: local address, local port, state.</summary>
    public readonly record struct SocketEntry(IPAddress Local, int Port, int State);

    /// <summary>Parses the rows of <c>/proc/net/tcp</c> or <c>/proc/net/tcp6</c> (the header line is skipped).</summary>
    public static IEnumerable<SocketEntry> ParseTcpTable(string text)
    {
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1))
        {
            // "  0: 0100007F:1F91 00000000:0000 0A 00000000:00000000 ..."
            var fields = line.Split(' ', 5, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 4) continue;
            var local = fields[1];
            var colon = local.IndexOf(':');
            if (colon < 0
                || !int.TryParse(local.AsSpan(colon + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var port)
                || !int.TryParse(fields[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var state)
                || ParseAddress(local.AsSpan(0, colon)) is not { } address)
                continue;
            yield return new SocketEntry(address, port, state);
        }
    }

    /// <summary>The kernel prints each 32-bit word of the address in host byte order.</summary>
    private static IPAddress? ParseAddress(ReadOnlySpan<char> hex)
    {
        if (hex.Length is not (8 or 32)) return null;
        var bytes = new byte[hex.Length / 2];
        for (var word = 0; word < hex.Length / 8; word++)
        {
            if (!uint.TryParse(hex.Slice(word * 8, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var value)) return null;
            BitConverter.TryWriteBytes(bytes.AsSpan(word * 4, 4), value);
        }
        return new IPAddress(bytes);
    }

    public static async Task<IReadOnlyList<SocketEntry>> ReadTcpTablesAsync(CancellationToken cancel)
    {
        var entries = new List<SocketEntry>();
        entries.AddRange(ParseTcpTable(await ReadIfPresentAsync("/proc/net/tcp", cancel)));
        entries.AddRange(ParseTcpTable(await ReadIfPresentAsync("/proc/net/tcp6", cancel)));
        return entries;
    }

    /// <summary>Counts the sockets of one listening endpoint by state: same port, and same address unless it listens on every address.</summary>
    public static ListenerSockets Count(string name, string protocol, IPEndPoint endpoint, IReadOnlyList<SocketEntry> table)
    {
        var wildcard = endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any);
        int established = 0, timeWait = 0, closeWait = 0;
        foreach (var entry in table)
        {
            if (entry.Port != endpoint.Port) continue;
            if (!wildcard && !SameAddress(entry.Local, endpoint.Address)) continue;
            switch (entry.State)
            {
                case Established: established++; break;
                case TimeWait: timeWait++; break;
                case CloseWait: closeWait++; break;
            }
        }
        return new ListenerSockets(name, protocol, endpoint.ToString(), established, timeWait, closeWait);
    }

    private static bool SameAddress(IPAddress a, IPAddress b)
    {
        if (a.IsIPv4MappedToIPv6) a = a.MapToIPv4();
        if (b.IsIPv4MappedToIPv6) b = b.MapToIPv4();
        return a.Equals(b);
    }

    private static async Task<string> ReadIfPresentAsync(string path, CancellationToken cancel)
    {
        try
        {
            return await File.ReadAllTextAsync(path, cancel);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}

/// <summary>Builds <see cref="DiagnosticsReport"/> from the kernel's tables and the connection actors.</summary>
internal sealed class DiagnosticsService(SupervisorQueries queries, BoundListeners tcpListeners, OperatorEndpoints endpoints)
{
    public async Task<DiagnosticsReport> ReportAsync(ConnectionQuery query, CancellationToken cancel)
    {
        var sockstat = await ProcNet.ReadSockstatAsync(cancel);
        var table = await ProcNet.ReadTcpTablesAsync(cancel);
        var listeners = new List<ListenerSockets>();
        foreach (var (settings, socket) in tcpListeners.All)
        {
            if (socket.LocalEndPoint is IPEndPoint bound)
                listeners.Add(ProcNet.Count(settings.Name, "tcp", bound, table));
        }
        if (endpoints.Http is { } http) listeners.Add(ProcNet.Count(OperatorEndpoints.HttpName, "http", http, table));
        if (endpoints.WebSocket is { } ws) listeners.Add(ProcNet.Count(OperatorEndpoints.WebSocketName, "ws", ws, table));

        var page = await queries.ConnectionPageAsync(query, cancel);
        var infos = await Task.WhenAll(page.Items.Select(async status =>
        {
            var report = await queries.TcpInfoAsync(status.Id, cancel);
            var error = report is null ? "the connection closed before it answered"
                : report.Info is null ? $"no TCP_INFO for a {report.Protocol} connection on this platform" : null;
            return new ConnectionTcpInfo(status.Id, status.Protocol, status.Remote, status.Listener, report?.Info, error);
        }));
        return new DiagnosticsReport(DateTimeOffset.UtcNow, sockstat, listeners, new ConnectionTcpInfoPage(page.Total, page.Offset, page.Limit, infos));
    }
}
