using Supervisor.Configuration;

namespace Supervisor.Transport;

/// <summary>
/// Applies <c>io.inline-socket-completions</c> to the process: .NET reads
/// <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS</c> once, when the first socket operation starts its
/// engine, so this runs before any listener is bound. Inline, the engine's thread runs the read loop's
/// continuation itself (frame, decode, answer through the inline connection dispatcher) instead of
/// waking a thread-pool thread for every readable socket.
/// </summary>
internal static class SocketCompletions
{
    public const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>Sets the variable unless the operator already did; returns a line saying what is in force.</summary>
    public static string Apply(SupervisorSettings settings)
    {
        if (Environment.GetEnvironmentVariable(Variable) is { } given)
            return $"socket completions: {Variable}={given} from the environment";
        var inline = settings.InlineSocketCompletions switch
        {
            InlineSocketCompletions.On => true,
            InlineSocketCompletions.Off => false,
            _ => settings.Listeners.All(l => l.TlsCertificate is null),
        };
        if (inline) Environment.SetEnvironmentVariable(Variable, "1");
        return $"socket completions: {(inline ? "inline" : "on the thread pool")} (io.inline-socket-completions = {settings.InlineSocketCompletions.ToString().ToLowerInvariant()})";
    }
}
