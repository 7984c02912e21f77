using System.Net;
using System.Net.Sockets;
using Supervisor.Configuration;
using Supervisor.Connections;

namespace Supervisor.Hosting;

/// <summary>
/// The listening sockets, bound before the actor system starts so that a taken port stops start-up
/// with a clear error instead of a listener actor failing later.
/// </summary>
internal sealed class BoundListeners : IDisposable
{
    private readonly List<(ListenerSettings Settings, Socket Socket)> _bound = [];

    public static BoundListeners Bind(SupervisorSettings settings)
    {
        var bound = new BoundListeners();
        try
        {
            foreach (var listener in settings.Listeners)
            {
                try
                {
                    bound._bound.Add((listener, TcpListenerActor.Bind(listener)));
                }
                catch (SocketException e)
                {
                    throw new ListenerBindError(listener, e);
                }
            }
            return bound;
        }
        catch
        {
            bound.Dispose();
            throw;
        }
    }

    public IReadOnlyList<(ListenerSettings Settings, Socket Socket)> All => _bound;

    /// <summary>The bound address of a listener by name (tests bind port 0 and read the port here).</summary>
    public IPEndPoint Endpoint(string listener) =>
        (IPEndPoint)_bound.Single(b => b.Settings.Name == listener).Socket.LocalEndPoint!;

    public void Dispose()
    {
        foreach (var (_, socket) in _bound) socket.Dispose();
    }
}

internal sealed class ListenerBindError(ListenerSettings listener, SocketException cause)
    : Exception($"cannot listen on {listener.Host}:{listener.Port} for listener '{listener.Name}': {cause.Message}", cause);
