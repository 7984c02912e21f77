using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Supervisor.Tests.Processes;

/// <summary>
/// The tests that start OS processes run one at a time, after the parallel tests, so that their
/// timing figures are not skewed by the rest of the suite competing for the CPU.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessCollection
{
    public const string Name = "Supervisor processes";
}

/// <summary>One line a child process wrote, with the moment the test received it.</summary>
public sealed record OutputLine(long ReceivedAt, bool IsStandardError, string Text)
{
    public override string ToString() => (IsStandardError ? "[stderr] " : "[stdout] ") + Text;
}

/// <summary>
/// A child OS process, optionally run inside a network namespace (<c>ip netns exec NAME</c>, which
/// execs in place, so the pid is the program's own). Its stdout and stderr are captured line by line;
/// a test can wait for a line with a timeout, send signals, and wait for the exit. Dispose always
/// kills the process if it is still running.
/// </summary>
public class ChildProcess : IDisposable
{
    public const int SigKill = 9;
    public const int SigTerm = 15;
    public const int SigCont = 18;
    public const int SigStop = 19;

    private readonly System.Diagnostics.Process _process;
    private readonly object _gate = new();
    private readonly List<OutputLine> _lines = [];
    private readonly List<(Func<OutputLine, bool> Match, TaskCompletionSource<OutputLine> Found)> _waiters = [];
    private readonly ITestOutputHelper? _output;
    private readonly TaskCompletionSource _streamsClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _openStreams = 2;
    private long _exitedAt;
    private bool _disposed;

    /// <param name="name">Shown in diagnostics.</param>
    /// <param name="fileName">The program.</param>
    /// <param name="arguments">Its arguments.</param>
    /// <param name="netns">A network namespace to run it in, or null.</param>
    /// <param name="workingDirectory">Its working directory, or null for the test's.</param>
    /// <param name="output">Where the captured output is written when the process is disposed.</param>
    public ChildProcess(string name, string fileName, IEnumerable<string> arguments, string? netns = null,
        string? workingDirectory = null, ITestOutputHelper? output = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        Name = name;
        _output = output;
        var start = new ProcessStartInfo
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var (variable, value) in environment ?? new Dictionary<string, string>()) start.Environment[variable] = value;
        if (netns is not null)
        {
            start.FileName = Tools.Ip ?? throw new InvalidOperationException("the `ip` tool (iproute2) is not installed");
            foreach (var a in new[] { "netns", "exec", netns, fileName }) start.ArgumentList.Add(a);
        }
        else
        {
            start.FileName = fileName;
        }
        foreach (var a in arguments) start.ArgumentList.Add(a);
        CommandLine = string.Join(' ', new[] { start.FileName }.Concat(start.ArgumentList));

        _process = new System.Diagnostics.Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnData(e.Data, isError: false);
        _process.ErrorDataReceived += (_, e) => OnData(e.Data, isError: true);
        _process.Exited += (_, _) => Interlocked.CompareExchange(ref _exitedAt, Stopwatch.GetTimestamp(), 0);
        _process.Start();
        StartedAt = Stopwatch.GetTimestamp();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Name { get; }
    public string CommandLine { get; }
    public int Pid => _process.Id;
    public long StartedAt { get; }

    /// <summary>When the test noticed the exit (a <see cref="Stopwatch"/> timestamp), or null while it runs.</summary>
    public long? ExitedAt => Interlocked.Read(ref _exitedAt) is var t and not 0 ? t : null;

    public bool HasExited => _process.HasExited;

    public IReadOnlyList<OutputLine> Lines
    {
        get { lock (_gate) return _lines.ToArray(); }
    }

    public IReadOnlyList<string> StandardOutput => Lines.Where(l => !l.IsStandardError).Select(l => l.Text).ToArray();
    public IReadOnlyList<string> StandardError => Lines.Where(l => l.IsStandardError).Select(l => l.Text).ToArray();

    private void OnData(string? text, bool isError)
    {
        List<TaskCompletionSource<OutputLine>> found = [];
        lock (_gate)
        {
            if (text is null)
            {
                if (--_openStreams == 0)
                {
                    _streamsClosed.TrySetResult();
                    foreach (var (_, waiter) in _waiters)
                        waiter.TrySetException(new InvalidOperationException("the process closed its output"));
                    _waiters.Clear();
                }
                return;
            }
            var line = new OutputLine(Stopwatch.GetTimestamp(), isError, text);
            _lines.Add(line);
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (!_waiters[i].Match(line)) continue;
                found.Add(_waiters[i].Found);
                _waiters.RemoveAt(i);
            }
            foreach (var waiter in found) waiter.TrySetResult(line);
        }
    }

    /// <summary>The first line (already received or still to come) matching <paramref name="match"/>.</summary>
    /// <exception cref="Xunit.Sdk.XunitException">Nothing matched within <paramref name="timeout"/>, or the process ended first.</exception>
    public async Task<OutputLine> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout, string what)
    {
        TaskCompletionSource<OutputLine> found = new(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            var existing = _lines.FirstOrDefault(l => match(l.Text));
            if (existing is not null) return existing;
            if (_openStreams == 0)
                throw Failure($"{Name} ended (exit code {ExitCodeText()}) without writing {what}");
            _waiters.Add((l => match(l.Text), found));
        }
        try
        {
            return await found.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            lock (_gate) _waiters.RemoveAll(w => w.Found == found);
            throw Failure($"{Name} did not write {what} within {timeout.TotalSeconds:F1} s");
        }
        catch (InvalidOperationException)
        {
            // The output ended; give the exit a moment to be observed for the message.
            _process.WaitForExit(2000);
            throw Failure($"{Name} ended (exit code {ExitCodeText()}) without writing {what}");
        }
    }

    /// <summary>True if a line matching <paramref name="match"/> has been received.</summary>
    public bool HasLine(Func<string, bool> match) => Lines.Any(l => match(l.Text));

    /// <summary>Sends a signal to the process (libc <c>kill</c>).</summary>
    public void Signal(int signal)
    {
        if (Native.Kill(Pid, signal) != 0)
            throw new InvalidOperationException($"kill({Pid}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Sends a signal if the process is still there; false if it could not be sent.</summary>
    public bool TrySignal(int signal) => Native.Kill(Pid, signal) == 0;

    /// <summary>Waits for the exit and for the end of its output; the exit code, or null on timeout.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            await _streamsClosed.Task.WaitAsync(cts.Token);
            Interlocked.CompareExchange(ref _exitedAt, Stopwatch.GetTimestamp(), 0);
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return _process.HasExited ? _process.ExitCode : null;
        }
    }

    private string ExitCodeText() => _process.HasExited ? _process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none yet";

    /// <summary>An assertion failure carrying the command line and the captured output.</summary>
    public Xunit.Sdk.XunitException Failure(string message)
    {
        var lines = Lines;
        var shown = lines.Count > 200 ? lines.Skip(lines.Count - 200) : lines;
        return new Xunit.Sdk.XunitException(
            $"{message}\ncommand: {CommandLine}\noutput ({lines.Count} lines{(lines.Count > 200 ? ", last 200 shown" : "")}):\n"
            + string.Join('\n', shown));
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (_disposed || !disposing) return;
        _disposed = true;
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Already gone.
        }
        try
        {
            _output?.WriteLine($"--- {Name}: {CommandLine} (exit {ExitCodeText()})");
            foreach (var line in Lines) _output?.WriteLine(line.ToString());
        }
        catch (InvalidOperationException)
        {
            // The test is over; nobody is listening.
        }
        _process.Dispose();
    }
}

/// <summary>
/// The <c>Supervisor</c> executable (<c>dotnet Supervisor.dll</c> from the test's output directory)
/// with an operator configuration written to a temporary HOCON file passed with <c>--config</c>.
/// </summary>
public sealed partial class ServiceProcess : ChildProcess
{
    private readonly string _directory;

    private ServiceProcess(string directory, string fileName, IEnumerable<string> arguments, string? netns, ITestOutputHelper? output,
        IReadOnlyDictionary<string, string>? environment)
        : base("Supervisor", fileName, arguments, netns, directory, output, environment)
    {
        _directory = directory;
    }

    /// <summary>The service's assembly, copied next to the tests by the project reference.</summary>
    public static string SupervisorDll
    {
        get
        {
            var path = Path.Combine(AppContext.BaseDirectory, "Supervisor.dll");
            if (!File.Exists(path) || !File.Exists(Path.Combine(AppContext.BaseDirectory, "Supervisor.runtimeconfig.json")))
                throw new InvalidOperationException($"Supervisor.dll and its runtimeconfig are not in {AppContext.BaseDirectory}");
            return path;
        }
    }

    /// <summary>
    /// A configuration for tests: the default TCP listener on a kernel-chosen port, the HTTP and
    /// WebSocket listeners off (fixed ports would collide), then <paramref name="extra"/> HOCON.
    /// </summary>
    public static string Config(string extra = "") => $$"""
        supervisor {
          tcp.port = 0
          http.enabled = off
          websocket.enabled = off
        }
        {{extra}}
        """;

    /// <summary>Starts <c>dotnet Supervisor.dll [arguments] --config FILE</c> (FILE holds <paramref name="hocon"/>; none if null).</summary>
    /// <param name="environment">Variables set for the service beside the test's own.</param>
    /// <param name="files">Files written to its working directory (name → text) before it starts, e.g. appsettings.json.</param>
    /// <param name="launcher">A program and its arguments that exec the service in place, e.g. <c>prlimit --nofile=600:600 --</c>; null: none.</param>
    public static ServiceProcess Start(string? hocon, IEnumerable<string>? arguments = null, string? netns = null, ITestOutputHelper? output = null,
        IReadOnlyDictionary<string, string>? environment = null, IReadOnlyDictionary<string, string>? files = null, IReadOnlyList<string>? launcher = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), $"supervisor-test-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        var args = new List<string>(launcher is { Count: > 0 } ? [.. launcher.Skip(1), Tools.DotnetHost] : []) { SupervisorDll };
        args.AddRange(arguments ?? []);
        if (hocon is not null)
        {
            var file = Path.Combine(directory, "operator.conf");
            File.WriteAllText(file, hocon);
            args.Add("--config");
            args.Add(file);
        }
        try
        {
            foreach (var (name, text) in files ?? new Dictionary<string, string>())
                File.WriteAllText(Path.Combine(directory, name), text);
            return new ServiceProcess(directory, launcher is { Count: > 0 } ? launcher[0] : Tools.DotnetHost, args, netns, output, environment);
        }
        catch
        {
            Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    [GeneratedRegex(@"Listener (?<name>\S+) accepting on (?<host>\S+):(?<port>\d+)")]
    private static partial Regex AcceptingLine();

    /// <summary>Waits for <c>Listener tcp accepting on HOST:PORT</c> and returns the port.</summary>
    public async Task<int> WaitForListenerPortAsync(TimeSpan timeout, string listener = "tcp")
    {
        var line = await WaitForLineAsync(l => AcceptingLine().Match(l) is { Success: true } m && m.Groups["name"].Value == listener,
            timeout, $"'Listener {listener} accepting on ...'");
        return int.Parse(AcceptingLine().Match(line.Text).Groups["port"].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory.
        }
    }
}

/// <summary>Where the external tools are, and who we are.</summary>
public static class Tools
{
    private static readonly string[] ExtraDirectories = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

    /// <summary>The dotnet host running the tests (so the service runs on the same runtime).</summary>
    public static string DotnetHost
    {
        get
        {
            if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)) return host;
            if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
            return Find("dotnet") ?? "dotnet";
        }
    }

    public static string? Ip { get; } = Find("ip");

    public static string? Python3 { get; } = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : Find("python3");

    public static bool IsRoot => Native.GetEuid() == 0;

    /// <summary>CI=true: a test whose environment is missing must fail rather than skip.</summary>
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string? Find(string program)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        return path.Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(ExtraDirectories)
            .Select(d => Path.Combine(d, program))
            .FirstOrDefault(File.Exists);
    }

    /// <summary>Runs a short tool to completion (bounded), returning its exit code and its output.</summary>
    public static (int ExitCode, string Output) Run(string fileName, IEnumerable<string> arguments, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = System.Diagnostics.Process.Start(start) ?? throw new InvalidOperationException($"cannot start {fileName}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromSeconds(10)))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(5000);
            throw new TimeoutException($"{fileName} {string.Join(' ', start.ArgumentList)} did not finish");
        }
        process.WaitForExit();
        return (process.ExitCode, (stdout.Result + stderr.Result).Trim());
    }
}

internal static class Native
{
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static extern int Kill(int pid, int signal);

    [DllImport("libc", EntryPoint = "geteuid")]
    internal static extern uint GetEuid();
}
