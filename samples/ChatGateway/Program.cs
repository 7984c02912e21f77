using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Supervisor.Connections;
using Supervisor.Hosting;
using Supervisor.Messages.Wire;

// A chat gateway: its own host, actor system, loggers and handler; the package supervises the connections.
var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddAkka("chat-gateway", akka => akka.WithConnectionSupervisor(options =>
{
    options.Host = "127.0.0.1";
    options.Port = int.Parse(builder.Configuration["port"] ?? "9000");
    options.Hocon = $"supervisor.tcp.codec = {builder.Configuration["codec"] ?? "json-lines"}"; // or binary
    options.HeartbeatInterval = TimeSpan.FromSeconds(1);
    options.HeartbeatTimeout = TimeSpan.FromSeconds(3);
    options.Handler = new ChatRoom();
}));
builder.Services.AddHostedService<Greeter>();
await builder.Build().RunAsync();

/// <summary>One room: every message goes to everyone in it, numbered, after an asynchronous step of the gateway's own.</summary>
sealed class ChatRoom : ConnectionHandler
{
    private readonly ConcurrentDictionary<string, IConnection> _members = new();
    private long _messages;
    public override ValueTask OnConnectedAsync(IConnection connection) { _members[connection.Id] = connection; return default; }
    public override ValueTask OnClosedAsync(IConnection connection, CloseReason reason, string detail) { _members.TryRemove(connection.Id, out _); return default; }
    public override async ValueTask OnDataAsync(IConnection connection, Frame frame)
    {
        await Task.Delay(1); // a real gateway awaits its store or a service here; the connection reads on meanwhile
        var relayed = frame with { Data = $"#{Interlocked.Increment(ref _messages)} {connection.Id}: {frame.Data}" };
        foreach (var member in _members.Values) member.Send(relayed);
    }
}

/// <summary>Outside any handler: greets each new connection by its id, through the hub.</summary>
sealed class Greeter(ActorSystem system) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        var hub = system.ConnectionHub();
        await foreach (var e in hub.Events(stop))
            if (e is ConnectionEvents.Opened opened)
                hub.Send(opened.ConnectionId, new Frame(FrameType.Data, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), $"welcome {opened.ConnectionId}"));
    }
}
