using Supervisor.Messages.Wire;

namespace Supervisor.Connections;

/// <summary>What a data handler may do with the connection a frame came from.</summary>
public interface IConnectionContext
{
    string ConnectionId { get; }
    string Remote { get; }
    string Listener { get; }
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
    void OnData(Frame frame, IConnectionContext connection);
}

/// <summary>The source document's echo server: a data frame comes back as a data frame, stamped with the server's time.</summary>
public sealed class EchoDataHandler : IDataHandler
{
    public void OnData(Frame frame, IConnectionContext connection) =>
        connection.Send(frame with { Timestamp = connection.Now.ToUnixTimeSeconds() });
}
