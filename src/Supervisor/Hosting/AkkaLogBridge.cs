using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;
using Microsoft.Extensions.Logging;
using MelLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Supervisor.Hosting;

/// <summary>
/// Akka's log events into Microsoft.Extensions.Logging, message only: the host's formatter already writes
/// the time (Akka.Hosting's own bridge prefixes Akka's "[INFO][date][Thread]" text, so every Akka line
/// carried two timestamps). The category is the class that logged; the actor or source is a scope field
/// a JSON formatter keeps.
/// </summary>
internal sealed class AkkaLogBridge : ActorBase, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    private readonly ILoggerFactory _factory;
    private readonly Dictionary<Type, ILogger> _loggers = [];

    public AkkaLogBridge()
    {
        _factory = Context.System.Settings.Setup.Get<Setup>().Value?.Factory
                   ?? throw new InvalidOperationException($"{nameof(AkkaLogBridge)} needs its {nameof(Setup)} in the actor system's setup");
    }

    /// <summary>Hands the host's logger factory to the bridge (an actor system setup, as Akka.Hosting does).</summary>
    public sealed class Setup(ILoggerFactory factory) : Akka.Actor.Setup.Setup
    {
        public ILoggerFactory Factory { get; } = factory;
    }

    protected override bool Receive(object message)
    {
        switch (message)
        {
            case InitializeLogger:
                Sender.Tell(new LoggerInitialized());
                return true;
            case LogEvent log:
                Write(log);
                return true;
            default:
                return false;
        }
    }

    private void Write(LogEvent log)
    {
        if (!_loggers.TryGetValue(log.LogClass, out var logger))
            _loggers[log.LogClass] = logger = _factory.CreateLogger(log.LogClass);
        var level = log.LogLevel() switch
        {
            Akka.Event.LogLevel.DebugLevel => MelLogLevel.Debug,
            Akka.Event.LogLevel.InfoLevel => MelLogLevel.Information,
            Akka.Event.LogLevel.WarningLevel => MelLogLevel.Warning,
            _ => MelLogLevel.Error,
        };
        if (!logger.IsEnabled(level)) return;
        // A LogMessage formats itself (its template and arguments); anything else is its text.
        var text = log.Message?.ToString() ?? "";
        logger.Log(level, log.Cause, "{AkkaSource}: {Message}", log.LogSource, text);
    }
}
