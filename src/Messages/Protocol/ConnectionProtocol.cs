using Supervisor.Messages.Wire;

namespace Supervisor.Messages.Protocol;

public interface IConnectionCommand;

/// <summary>Commands any part of the system may send to the connection supervisor or to one connection.</summary>
public static class ConnectionCommands
{
    /// <summary>Close one connection (by id, through the supervisor) with the given reason.</summary>
    public sealed record CloseConnection(string Id, CloseReason Reason) : IConnectionCommand;

    /// <summary>Answer to <see cref="CloseConnection"/>: false when no such connection is live.</summary>
    public sealed record CloseAccepted(string Id, bool Found);

    /// <summary>Close every live connection with the reason and answer <see cref="AllClosed"/> once all are gone.</summary>
    public sealed record CloseAll(CloseReason Reason) : IConnectionCommand;

    public sealed record AllClosed(int Count);

    /// <summary>Ask one live connection for its status as of now.</summary>
    public sealed record GetStatus(string Id) : IConnectionCommand;
}
