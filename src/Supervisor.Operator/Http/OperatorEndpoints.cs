using System.Net;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Supervisor.Http;

/// <summary>The Kestrel endpoints of the operator surface and the WebSocket listener, as bound.</summary>
internal sealed class OperatorEndpoints
{
    /// <summary>The connection-items key that says which endpoint a request came in on.</summary>
    public const string EndpointItem = "supervisor.endpoint";
    public const string HttpName = "http";
    public const string WebSocketName = "websocket";

    internal ListenOptions? HttpListen { get; set; }
    internal ListenOptions? WebSocketListen { get; set; }

    /// <summary>The operator HTTP endpoint once bound (its real port when configured as 0); null when off.</summary>
    public IPEndPoint? Http => HttpListen?.IPEndPoint;

    /// <summary>The WebSocket endpoint once bound; null when off.</summary>
    public IPEndPoint? WebSocket => WebSocketListen?.IPEndPoint;

    /// <summary>True when the request arrived on the named endpoint.</summary>
    public static bool IsOn(HttpContext context, string endpoint) =>
        context.Features.Get<IConnectionItemsFeature>()?.Items
            .TryGetValue(EndpointItem, out var name) == true && (string?)name == endpoint;
}
