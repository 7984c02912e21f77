using System.Net;
using System.Net.WebSockets;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;
using Supervisor.Connections;
using Supervisor.Http;
using Supervisor.Messages.Protocol;
using Supervisor.Transport;

namespace Supervisor.WebSockets;

/// <summary>
/// The request handler of the WebSocket listener: checks path and origin, accepts with the configured
/// ping/pong, wraps the WebSocket in a <see cref="WebSocketTransport"/> and hands it to the connection
/// supervisor, which supervises it like a TCP peer. The request lasts as long as the connection does.
/// Unlike the operator endpoint it takes any <c>Host</c>: peers reach a public listener by whatever names the
/// deployment gives it, what a browser page may open is decided by <see cref="OriginPolicy"/>, and a peer
/// (through a rebound name or not) can do nothing any other peer cannot.
/// </summary>
internal sealed class WebSocketEndpoint(
    OperatorSettings settings,
    ActorRegistry actors,
    ActorSystem system,
    ILogger<WebSocketEndpoint> log)
{
    private readonly WebSocketSettings _settings = settings.WebSocket;
    private readonly OriginPolicy _origins = new(settings.WebSocket.AllowedOrigins);

    public async Task HandleAsync(HttpContext context)
    {
        if (!string.Equals(context.Request.Path.Value, _settings.Path, StringComparison.Ordinal))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status426UpgradeRequired;
            context.Response.Headers[HeaderNames.Upgrade] = "websocket";
            await context.Response.WriteAsync($"{_settings.Path} accepts WebSocket connections only\n");
            return;
        }
        var remote = RemoteOf(context.Connection);
        if (_origins.Refusal(context.Request) is { } refusal)
        {
            log.LogInformation("WebSocket from {Remote} refused: {Refusal}", remote, refusal);
            context.Response.StatusCode = StatusCodes.Status403Forbidden;
            await context.Response.WriteAsync(refusal + "\n");
            return;
        }
        if (!actors.TryGet<ConnectionSupervisor>(out var supervisor) || system.WhenTerminated.IsCompleted)
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return;
        }

        // With the TCP socket at hand the transport keeps the pong deadline itself (and closes with a notice and a
        // close frame); the runtime's own pong timeout is then only its backstop.
        var socket = context.Features.Get<IConnectionSocketFeature>()?.Socket;
        var ws = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
        {
            KeepAliveInterval = _settings.PingInterval,
            KeepAliveTimeout = WebSocketTransport.RuntimePongTimeout(_settings.PongTimeout, deadlineKeptHere: socket is not null),
        });
        var keepAlive = socket is null ? KeepAliveStatus.Disabled : SocketKeepAlive.Apply(socket, _settings.Listener.KeepAlive);
        var transport = new WebSocketTransport(ws, remote, socket, keepAlive, _settings.Listener, _settings.PingInterval, _settings.PongTimeout);
        supervisor.Tell(new ConnectionSupervisor.AdoptTransport(transport, _settings.Listener));

        // The connection actor disposes the transport when the connection closes. Only if the actor system
        // is gone before that (it never adopted the transport, or it stopped) is the transport ours to end.
        await Task.WhenAny(transport.Completion, system.WhenTerminated);
        if (!transport.Completion.IsCompleted)
        {
            transport.Dispose();
            await transport.Completion;
        }
    }

    private static string RemoteOf(ConnectionInfo connection) =>
        connection.RemoteIpAddress is { } address
            ? new IPEndPoint(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address, connection.RemotePort).ToString()
            : "unknown";
}
