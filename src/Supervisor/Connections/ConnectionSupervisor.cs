using System.Net.Sockets;
using Akka.Actor;
using Microsoft.Extensions.Logging;
using Supervisor.Configuration;
using Supervisor.Messages.Protocol;
using Supervisor.Messages.Wire;
using Supervisor.Monitoring;
using Supervisor.Transport;

namespace Supervisor.Connections;

/// <summary>
/// Parent of every connection actor. It enforces <c>max-connections</c> per listener, and a child that
/// fails is stopped (its PostStop closes the socket and reports <c>internal-error</c>), never restarted.
/// </summary>
public sealed class ConnectionSupervisor : ReceiveActor
{
    /// <summary>A freshly accepted TCP socket, handed over by a listener.</summary>
    public sealed record Adopt(Socket Socket, ListenerSettings Listener);

    /// <summary>A connection of another transport (e.g. a WebSocket) that is ready to be supervised.</summary>
    public sealed record AdoptTransport(IConnectionTransport Transport, ListenerSettings Listener);

    public static Props Props(ConnectionServices services) =>
        Akka.Actor.Props.Create(() => new ConnectionSupervisor(services));

    private readonly ConnectionServices _services;
    private readonly ILogger _log;
    // Per live child: its listener and the tally of its remote address. Tallies are shared by every
    // connection from one address, so a connection costs one entry here and no string of its own.
    private readonly Dictionary<IActorRef, (string Listener, AddressTally Address)> _children = [];
    private readonly Dictionary<string, int> _liveByListener = [];
    private readonly Dictionary<string, AddressTally> _liveByAddress = [];
    private readonly Dictionary<string, KeepAliveStatus> _lastKeepAlive = [];
    private readonly Deploy _connectionDeploy;

    private sealed class AddressTally(string key)
    {
        public string Key { get; } = key;
        public int Live { get; set; }
    }
    private long _nextId;
    private (IActorRef ReplyTo, int Count, CloseReason Reason)? _closingAll;

    public ConnectionSupervisor(ConnectionServices services)
    {
        _services = services;
        _log = services.Log;
        _connectionDeploy = ConnectionDispatcher.Deploy(Context.System);

        Receive<Adopt>(OnAdopt);
        Receive<AdoptTransport>(OnAdoptTransport);
        Receive<Terminated>(OnTerminated);
        Receive<ConnectionCommands.CloseConnection>(command =>
        {
            var child = Context.Child(command.Id);
            if (!child.IsNobody()) child.Tell(command);
            Sender.Tell(new ConnectionCommands.CloseAccepted(command.Id, !child.IsNobody()));
        });
        Receive<ConnectionCommands.GetStatus>(query =>
        {
            var child = Context.Child(query.Id);
            if (child.IsNobody()) Sender.Tell(new RegistryProtocol.ConnectionFound(query.Id, null));
            else child.Forward(query);
        });
        Receive<ConnectionCommands.GetTcpInfo>(query =>
        {
            var child = Context.Child(query.Id);
            if (child.IsNobody()) Sender.Tell(new ConnectionCommands.TcpInfoReport(query.Id, "", null));
            else child.Forward(query);
        });
        Receive<ConnectionCommands.CloseAll>(OnCloseAll);
    }

    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(cause =>
    {
        ConnectionLog.Failed(_log, cause, Sender.Path.Name);
        return Directive.Stop;
    });

    private void OnAdopt(Adopt adopt)
    {
        var listener = adopt.Listener;
        string remote;
        try
        {
            remote = adopt.Socket.RemoteEndPoint?.ToString() ?? "unknown";
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            adopt.Socket.Dispose();
            return;
        }
        if (RefusalFor(listener, remote) is { } refusal)
        {
            Refuse(adopt.Socket, listener, refusal.Reason, refusal.Detail);
            return;
        }

        IConnectionTransport transport;
        try
        {
            var keepAlive = Shared(listener, SocketKeepAlive.Apply(adopt.Socket, listener.KeepAlive));
            transport = listener.TlsCertificate is { } certificate
                ? new TlsTransport(adopt.Socket, certificate, listener.MaxFrameLength, listener.MaxPendingWrite, keepAlive) { FrameMemory = _services.FrameMemory }
                : new SocketTransport(adopt.Socket, listener.MaxFrameLength, listener.MaxPendingWrite, keepAlive) { FrameMemory = _services.FrameMemory };
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The peer was gone before it was adopted; nothing was opened, so nothing is reported closed.
            adopt.Socket.Dispose();
            _log.LogDebug("Accepted socket vanished before adoption: {Error}", e.Message);
            return;
        }
        Spawn(transport, listener);
    }

    /// <summary>The listener's previous keep-alive status when this one reads back the same, so the connections share one record.</summary>
    private KeepAliveStatus Shared(ListenerSettings listener, KeepAliveStatus status)
    {
        if (status.Problems.Count == 0 && _lastKeepAlive.TryGetValue(listener.Name, out var last)
            && (last.Enabled, last.IdleSeconds, last.IntervalSeconds, last.Probes, last.UserTimeoutMs)
               == (status.Enabled, status.IdleSeconds, status.IntervalSeconds, status.Probes, status.UserTimeoutMs))
            return last;
        if (status.Problems.Count == 0) _lastKeepAlive[listener.Name] = status;
        return status;
    }

    private void OnAdoptTransport(AdoptTransport adopt)
    {
        if (RefusalFor(adopt.Listener, adopt.Transport.Remote) is { } refusal)
        {
            var transport = adopt.Transport;
            transport.Write(Frame.ErrorNotice(Context.System.Scheduler.Now.ToUnixTimeSeconds(), $"{refusal.Reason.ToWireName()}: {refusal.Detail}"));
            transport.ShutdownOutput();
            transport.Dispose();
            Rejected(transport.Remote, adopt.Listener, refusal.Reason, refusal.Detail);
            return;
        }
        Spawn(adopt.Transport, adopt.Listener);
    }

    private (CloseReason Reason, string Detail)? RefusalFor(ListenerSettings listener, string remote)
    {
        if (_closingAll is { } closing)
            return (closing.Reason, "the server is shutting down");
        if (_liveByListener.GetValueOrDefault(listener.Name) >= listener.MaxConnections)
            return (CloseReason.RejectedCapacity, $"listener {listener.Name} holds its maximum of {listener.MaxConnections} connections");
        var limit = listener.Limits.MaxConnectionsPerAddress;
        if (_liveByAddress.GetValueOrDefault(AddressKey(listener, remote))?.Live >= limit)
            return (CloseReason.RejectedCapacity, $"address {AddressOf(remote)} holds its maximum of {limit} connections on listener {listener.Name}");
        return null;
    }

    /// <summary>The IP address part of a remote endpoint such as <c>127.0.0.1:5000</c> or <c>[::1]:5000</c>.</summary>
    private static string AddressOf(string remote) =>
        System.Net.IPEndPoint.TryParse(remote, out var endpoint) ? endpoint.Address.ToString() : remote;

    private static string AddressKey(ListenerSettings listener, string remote) => $"{listener.Name}|{AddressOf(remote)}";

    private void Spawn(IConnectionTransport transport, ListenerSettings listener)
    {
        var id = $"c{++_nextId}{_services.IdSuffix}";
        // One Deploy (inline dispatcher, compact mailbox) for every connection, not a copy per Props.WithMailbox.
        var child = Context.ActorOf(ConnectionActor.Props(new ConnectionActor.Setup(id, listener, transport, _services))
            .WithDeploy(_connectionDeploy), id);
        Context.Watch(child);
        _liveByListener[listener.Name] = _liveByListener.GetValueOrDefault(listener.Name) + 1;
        var key = AddressKey(listener, transport.Remote);
        if (!_liveByAddress.TryGetValue(key, out var tally))
            _liveByAddress[key] = tally = new AddressTally(key);
        tally.Live++;
        _children[child] = (listener.Name, tally);
    }

    private void Refuse(Socket socket, ListenerSettings listener, CloseReason reason, string detail)
    {
        var remote = "unknown";
        try
        {
            remote = socket.RemoteEndPoint?.ToString() ?? remote;
            socket.Blocking = false;
            // A TLS peer could not read a plaintext notice; it gets the close alone.
            if (listener.TlsCertificate is null)
            {
                var notice = JsonLinesCodec.Encode(Frame.ErrorNotice(Context.System.Scheduler.Now.ToUnixTimeSeconds(), $"{reason.ToWireName()}: {detail}"));
                socket.Send(notice, SocketFlags.None, out _);
            }
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The notice is a courtesy; the close below is what matters.
        }
        socket.Dispose();
        Rejected(remote, listener, reason, detail);
    }

    private void Rejected(string remote, ListenerSettings listener, CloseReason reason, string detail)
    {
        _services.Registry.Tell(new RegistryProtocol.ConnectionRejected(remote, listener.Name, reason));
        _services.Monitor.Tell(new MonitorEvents.ConnectionRefused(listener.Name, reason));
        _services.Metrics.ConnectionRefused(reason);
        ConnectionLog.Refused(_log, remote, listener.Name, reason.ToWireName(), detail);
    }

    private void OnTerminated(Terminated terminated)
    {
        if (!_children.Remove(terminated.ActorRef, out var child)) return;
        _services.Descriptors?.Released();
        _liveByListener[child.Listener]--;
        if (--child.Address.Live == 0)
            _liveByAddress.Remove(child.Address.Key);
        if (_closingAll is { } closing && _children.Count == 0)
        {
            closing.ReplyTo.Tell(new ConnectionCommands.AllClosed(closing.Count));
            _closingAll = closing with { ReplyTo = ActorRefs.Nobody };
        }
    }

    private void OnCloseAll(ConnectionCommands.CloseAll command)
    {
        _closingAll = (Sender, _children.Count, command.Reason);
        _log.LogInformation("Closing {Count} connections: {Reason}", _children.Count, command.Reason.ToWireName());
        if (_children.Count == 0)
        {
            Sender.Tell(new ConnectionCommands.AllClosed(0));
            return;
        }
        foreach (var child in _children.Keys)
            child.Tell(new ConnectionCommands.CloseConnection(child.Path.Name, command.Reason));
    }
}
