using Supervisor.Messages.Wire;

namespace Supervisor.Connections;

/// <summary>What a data handler may do with the connection a frame came from.</summary>
public interface IConnectionContext
{
    /// <summary>The connection's id (<c>c17</c>; in a cluster <c>c17@host:port</c>), as the registry and the logs name it.</summary>
    string ConnectionId { get; }
    /// <summary>The peer's address, <c>host:port</c>.</summary>
    string Remote { get; }
    /// <summary>The name of the listener that accepted the connection (<c>tcp</c>, or a key of <c>supervisor.listeners</c>).</summary>
    string Listener { get; }
    /// <summary>The connection's clock (virtual in a simulation).</summary>
    DateTimeOffset Now { get; }

    /// <summary>Queues a frame for the peer.</summary>
    void Send(Frame frame);
}

/// <summary>
/// Handles data frames (type 2). It runs on the connection actor's thread, which may be the thread that
/// read the socket (see <see cref="ConnectionDispatcher"/>), and must never block; one
/// instance serves every connection, so it must be safe to call from many at once. An exception it
/// throws stops that connection with <c>internal-error</c> and no other.
/// </summary>
public interface IDataHandler
{
    /// <summary>Handles one data frame of <paramref name="connection"/>.</summary>
    void OnData(Frame frame, IConnectionContext connection);
}

/// <summary>The source document's echo server: a data frame comes back as a data frame, stamped with the server's time.</summary>
public sealed class EchoDataHandler : IDataHandler
{
    /// <inheritdoc />
    public void OnData(Frame frame, IConnectionContext connection) =>
        connection.Send(frame with { Timestamp = connection.Now.ToUnixTimeSeconds() });
}
