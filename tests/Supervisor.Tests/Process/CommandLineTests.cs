using Xunit;
using Xunit.Abstractions;

namespace Supervisor.Tests.Processes;

/// <summary>The executable's command line and start-up checks (DESIGN §4, §6), run as a real process.</summary>
[Collection(ProcessCollection.Name)]
public sealed class CommandLineTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ExitWithin = TimeSpan.FromSeconds(15);

    /// <summary>Runs the service, expects exit code 2 and exactly one non-empty stderr line, and returns that line.</summary>
    private async Task<string> ExpectUsageExit(string? hocon, params string[] arguments)
    {
        using var service = ServiceProcess.Start(hocon, arguments, output: output);
        var code = await service.WaitForExitAsync(ExitWithin);
        if (code is null) throw service.Failure($"the service did not exit within {ExitWithin.TotalSeconds} s");
        if (code != 2) throw service.Failure($"exit code {code}, expected 2");
        var errors = service.StandardError.Where(l => l.Trim().Length > 0).ToArray();
        if (errors.Length != 1) throw service.Failure($"{errors.Length} non-empty stderr lines, expected exactly one");
        Assert.DoesNotContain(service.StandardOutput, l => l.Contains("accepting on", StringComparison.Ordinal));
        return errors[0];
    }

    private static void AssertNamesKey(string line, string key, string value)
    {
        Assert.StartsWith($"supervisor: bad configuration: {key}:", line, StringComparison.Ordinal);
        Assert.Contains(value, line[$"supervisor: bad configuration: {key}:".Length..], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Service_must_exit_2_naming_the_key_when_timeout_is_not_above_interval()
    {
        var line = await ExpectUsageExit(ServiceProcess.Config("supervisor.heartbeat { interval = 30s, timeout = 30s }"));
        AssertNamesKey(line, "supervisor.heartbeat.timeout", "30s");
    }

    [Fact]
    public async Task Service_must_exit_2_naming_the_option_when_the_profile_option_is_unknown()
    {
        var line = await ExpectUsageExit(ServiceProcess.Config(), "--profile", "nope");
        AssertNamesKey(line, "--profile", "nope");
    }

    [Fact]
    public async Task Service_must_exit_2_naming_the_key_when_the_profile_key_is_unknown()
    {
        var line = await ExpectUsageExit(ServiceProcess.Config("supervisor.profile = nope"));
        AssertNamesKey(line, "supervisor.profile", "nope");
    }

    [Fact]
    public async Task Service_must_exit_2_naming_the_key_when_the_port_is_out_of_range()
    {
        var line = await ExpectUsageExit(ServiceProcess.Config("supervisor.tcp.port = 70000"));
        AssertNamesKey(line, "supervisor.tcp.port", "70000");
    }

    [Theory]
    [InlineData("0s")]
    [InlineData("-1s")]
    public async Task Service_must_exit_2_naming_the_key_when_a_duration_is_not_positive(string interval)
    {
        var line = await ExpectUsageExit(ServiceProcess.Config($"supervisor.heartbeat.interval = {interval}"));
        AssertNamesKey(line, "supervisor.heartbeat.interval", interval);
    }

    [Fact]
    public async Task Service_must_exit_2_on_an_unknown_option()
    {
        var line = await ExpectUsageExit(null, "--bogus");
        Assert.StartsWith("supervisor: ", line, StringComparison.Ordinal);
        Assert.Contains("--bogus", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Service_must_start_with_the_profile_given_on_the_command_line_and_exit_0_on_sigterm()
    {
        using var service = ServiceProcess.Start(ServiceProcess.Config(), ["--profile", "realtime-game"], output: output);
        await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20));
        Assert.Contains(service.StandardOutput, l => l.Contains("accepting on", StringComparison.Ordinal)
                                                     && l.Contains("profile realtime-game", StringComparison.Ordinal));

        service.Signal(ChildProcess.SigTerm);
        var code = await service.WaitForExitAsync(TimeSpan.FromSeconds(10));
        if (code != 0) throw service.Failure($"exit code {code?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none within 10 s"} after SIGTERM, expected 0");
    }

    [Fact]
    public async Task Profile_option_must_beat_the_profile_key_of_the_config_file()
    {
        using var service = ServiceProcess.Start(ServiceProcess.Config("supervisor.profile = iot-device"), ["run", "--profile", "realtime-game"], output: output);
        await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20));
        Assert.Contains(service.StandardOutput, l => l.Contains("accepting on", StringComparison.Ordinal)
                                                     && l.Contains("profile realtime-game", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    [InlineData("run", "--help")]
    [InlineData("simulate", "--help")]
    [InlineData("status", "--help")]
    [InlineData("client", "--help")]
    [InlineData("help", "simulate")]
    public async Task Help_must_work_on_every_command_and_exit_0(params string[] arguments)
    {
        using var process = new ChildProcess("Supervisor", Tools.DotnetHost, [ServiceProcess.SupervisorDll, .. arguments], output: output);
        Assert.Equal(0, await process.WaitForExitAsync(ExitWithin));
        Assert.Contains(process.StandardOutput, l => l.StartsWith("Usage:", StringComparison.Ordinal));
        Assert.Contains(process.StandardOutput, l => l.Contains("--help", StringComparison.Ordinal));
        if (arguments.Contains("simulate"))
            Assert.Contains(process.StandardOutput, l => l.TrimStart().StartsWith("--peers <N>", StringComparison.Ordinal));
        Assert.DoesNotContain(process.StandardOutput, l => l.Contains("accepting on", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Version_must_print_the_version_and_exit_0()
    {
        using var process = new ChildProcess("Supervisor", Tools.DotnetHost, [ServiceProcess.SupervisorDll, "--version"], output: output);
        Assert.Equal(0, await process.WaitForExitAsync(ExitWithin));
        Assert.Matches(@"^\d+\.\d+\.\d+", Assert.Single(process.StandardOutput, l => l.Trim().Length > 0));
    }
}
