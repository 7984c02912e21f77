using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Microsoft.Extensions.Logging;
using Supervisor.Configuration;

namespace Supervisor.Connections;

/// <summary>
/// Owns one bound listening socket and hands every accepted socket to the connection supervisor.
/// Binding happens before the actor starts (<see cref="Bind"/>), so a taken port fails start-up loudly.
/// </summary>
public sealed class TcpListenerActor : ReceiveActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;

    public sealed record GetBinding
    {
        public static GetBinding Instance { get; } = new();
    }

    public sealed record Binding(string Listener, IPEndPoint? Endpoint);

    /// <summary>Stop accepting; answered with <see cref="Unbound"/>.</summary>
    public sealed record Unbind
    {
        public static Unbind Instance { get; } = new();
    }

    public sealed record Unbound(string Listener);

    private sealed record Accepted(Socket Socket);

    private sealed record AcceptFailed(Exception Cause);

    private sealed class RetryAccept
    {
        public static readonly RetryAccept Instance = new();
    }

    public static Props Props(ListenerSettings settings, Socket boundSocket, IActorRef supervisor, ILogger log) =>
        Akka.Actor.Props.Create(() => new TcpListenerActor(settings, boundSocket, supervisor, log));

    /// <summary>Binds and listens; throws <see cref="SocketException"/> when the address is taken.</summary>
    public static Socket Bind(ListenerSettings settings)
    {
        var address = IPAddress.Parse(settings.Host);
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(address, settings.Port));
            socket.Listen(4096);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private readonly ListenerSettings _settings;
    private readonly Socket _socket;
    private readonly IActorRef _supervisor;
    private readonly ILogger _log;
    private readonly IPEndPoint _endpoint;
    private bool _bound = true;

    public TcpListenerActor(ListenerSettings settings, Socket boundSocket, IActorRef supervisor, ILogger log)
    {
        _log = log;
        _settings = settings;
        _socket = boundSocket;
        _supervisor = supervisor;
        _endpoint = (IPEndPoint)boundSocket.LocalEndPoint!;

        Receive<Accepted>(accepted =>
        {
            _supervisor.Tell(new ConnectionSupervisor.Adopt(accepted.Socket, _settings));
            AcceptNext();
        });
        Receive<AcceptFailed>(OnAcceptFailed);
        Receive<RetryAccept>(_ => AcceptNext());
        Receive<GetBinding>(_ => Sender.Tell(new Binding(_settings.Name, _bound ? _endpoint : null)));
        Receive<Unbind>(_ =>
        {
            if (_bound) _log.LogInformation("Listener {Listener} stops accepting on {Endpoint}", _settings.Name, _endpoint);
            _bound = false;
            _socket.Dispose();
            Sender.Tell(new Unbound(_settings.Name));
        });
    }

    protected override void PreStart()
    {
        _log.LogInformation("Listener {Listener} accepting on {Endpoint} (profile {Profile}, heartbeat {Interval}/{Timeout}, keep-alive {KeepAlive})",
            _settings.Name, _endpoint, _settings.Profile,
            _settings.Heartbeat.Enabled ? _settings.Heartbeat.Interval.ToHocon() : "off", _settings.Heartbeat.Timeout.ToHocon(),
            _settings.KeepAlive.Enabled ? $"{_settings.KeepAlive.Idle.ToHocon()}/{_settings.KeepAlive.Interval.ToHocon()}/{_settings.KeepAlive.Probes}" : "off");
        AcceptNext();
    }

    protected override void PostStop() => _socket.Dispose();

    private void AcceptNext()
    {
        if (!_bound) return;
        _socket.AcceptAsync().PipeTo(Self, success: socket => new Accepted(socket), failure: cause => new AcceptFailed(cause));
    }

    private void OnAcceptFailed(AcceptFailed failed)
    {
        if (!_bound) return;
        var cause = failed.Cause.GetBaseException();
        if (cause is ObjectDisposedException) return;
        // Running out of file descriptors (EMFILE) must not become a busy loop: back off and try again.
        _log.LogWarning("Listener {Listener}: accept failed ({Error}); retrying in 100 ms", _settings.Name, cause.Message);
        Timers.StartSingleTimer("retry-accept", RetryAccept.Instance, TimeSpan.FromMilliseconds(100));
    }

}
