using System.Globalization;
using System.Net;

namespace Supervisor.Configuration;

/// <summary>An outbound endpoint, <c>host:port</c> (or <c>[v6-address]:port</c>).</summary>
internal sealed record HostPort(string Host, int Port)
{
    /// <summary>Parses <c>host:port</c>; <paramref name="key"/> names the setting or option in the error.</summary>
    /// <exception cref="ConfigurationError">Not <c>host:port</c>, or the port is not 1-65535.</exception>
    public static HostPort Parse(string text, string key)
    {
        text = text.Trim();
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
            throw new ConfigurationError(key, $"'{text}' is not host:port");
        var host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
            host = host[1..^1];
        else if (host.Contains(':'))
            throw new ConfigurationError(key, $"'{text}' is not host:port (write an IPv6 address as [address]:port)");
        if (host.Length == 0)
            throw new ConfigurationError(key, $"'{text}' has no host");
        if (!int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            throw new ConfigurationError(key, $"'{text}' has no port in 1-65535");
        return new HostPort(host, port);
    }

    /// <summary>An <see cref="IPEndPoint"/> for an address literal, else a <see cref="DnsEndPoint"/> resolved at connect time.</summary>
    public EndPoint ToEndPoint() =>
        IPAddress.TryParse(Host, out var address) ? new IPEndPoint(address, Port) : new DnsEndPoint(Host, Port);

    public override string ToString() => Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
