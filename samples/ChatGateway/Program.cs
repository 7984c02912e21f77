using Akka.Hosting;
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
    options.Profile = "realtime-game";
    options.HeartbeatInterval = TimeSpan.FromSeconds(1);
    options.HeartbeatTimeout = TimeSpan.FromSeconds(3);
    options.Handler = new ChatHandler();
}));
await builder.Build().RunAsync();

/// <summary>Numbers every message the gateway relays and says who sent it, after an asynchronous step of its own.</summary>
sealed class ChatHandler : ConnectionHandler
{
    private long _messages;

    public override async ValueTask OnDataAsync(IConnection connection, Frame frame)
    {
        await Task.Delay(1); // a real gateway awaits its store or a service here; the connection reads on meanwhile
        connection.Send(frame with { Data = $"#{Interlocked.Increment(ref _messages)} {connection.Id}: {frame.Data}" });
    }
}
