using System.Diagnostics;
using Xunit;
using Xunit.Abstractions;

namespace Supervisor.Tests.Processes;

/// <summary>
/// Each defect an operator's file can have stops start-up with exit 2 and one stderr line naming the key
/// or file:line:column, quickly — never a start on the defaults, a hang, a stack trace or "Out of memory".
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ConfigDefectTests(ITestOutputHelper output)
{
    // The service exits in 0.3–0.6 s here when the machine is quiet; the bound leaves room for a busy CI box
    // while still telling a refused file from a hang (which never exits) or a start (which listens).
    private static readonly TimeSpan ExitWithin = TimeSpan.FromSeconds(5);

    private async Task<string> ExpectRefused(string? hocon, params string[] arguments)
    {
        var clock = Stopwatch.StartNew();
        using var service = ServiceProcess.Start(hocon, arguments, output: output);
        var code = await service.WaitForExitAsync(ExitWithin);
        if (code is null) throw service.Failure($"the service did not exit within {ExitWithin.TotalSeconds} s");
        output.WriteLine($"exited {code} after {clock.ElapsedMilliseconds} ms");
        if (code != 2) throw service.Failure($"exit code {code}, expected 2");
        var errors = service.StandardError.Where(l => l.Trim().Length > 0).ToArray();
        if (errors.Length != 1) throw service.Failure($"{errors.Length} non-empty stderr lines, expected exactly one");
        Assert.DoesNotContain(service.StandardOutput, l => l.Contains("accepting on", StringComparison.Ordinal));
        Assert.StartsWith("supervisor: bad configuration: ", errors[0], StringComparison.Ordinal);
        return errors[0]["supervisor: bad configuration: ".Length..];
    }

    [Theory]
    [InlineData("supervisor.tcp.hots = \"127.0.0.1\"", "supervisor.tcp.hots: is not a known key; did you mean supervisor.tcp.host?")]
    [InlineData("supervisor.prot = 1", "supervisor.prot: is not a known key; did you mean supervisor.pool?")]
    [InlineData("supervisor.heartbeat.intervall = 5s", "supervisor.heartbeat.intervall: is not a known key; did you mean supervisor.heartbeat.interval?")]
    [InlineData("supervisor.tcpp { port = 1 }", "supervisor.tcpp: is not a known key; did you mean supervisor.tcp?")]
    [InlineData("supervisor.listeners.games { prot = 9001 }", "supervisor.listeners.games.prot: is not a known key; did you mean supervisor.listeners.games.port?")]
    public async Task An_unknown_key_must_stop_start_up_naming_it_and_the_nearest_known_one(string extra, string expected)
    {
        Assert.Equal(expected, await ExpectRefused(ServiceProcess.Config(extra)));
    }

    [Fact]
    public async Task A_missing_closing_brace_must_stop_start_up_naming_file_line_and_column()
    {
        var line = await ExpectRefused("supervisor {\n  tcp.port = 0\n  http {\n    enabled = off\n");
        Assert.Matches(@"operator\.conf:3:8: '\{' is never closed", line);
    }

    [Fact]
    public async Task An_extra_closing_brace_must_stop_start_up_naming_file_line_and_column()
    {
        var line = await ExpectRefused("supervisor {\n  tcp.port = 0\n}\n}\n");
        Assert.Matches(@"operator\.conf:4:1: '\}' closes nothing", line);
    }

    [Fact]
    public async Task A_value_at_the_root_where_a_block_belongs_must_stop_start_up()
    {
        var line = await ExpectRefused(ServiceProcess.Config("supervisor = 5"));
        Assert.Equal("supervisor: must be a block of settings, not '5'", line);
    }

    [Fact]
    public async Task A_host_that_is_no_address_must_stop_start_up_naming_the_key()
    {
        var line = await ExpectRefused(ServiceProcess.Config("supervisor.tcp.host = \"not-an-ip\""));
        Assert.StartsWith("supervisor.tcp.host: 'not-an-ip' is not an IP address", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_endless_file_must_stop_start_up_without_filling_memory()
    {
        var line = await ExpectRefused(null, "--config", "/dev/zero");
        Assert.StartsWith("/dev/zero", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_binary_file_must_stop_start_up_naming_the_file()
    {
        var line = await ExpectRefused(null, "--config", ServiceProcess.SupervisorDll);
        Assert.StartsWith(ServiceProcess.SupervisorDll + ":1:", line, StringComparison.Ordinal);
        Assert.Contains("not a text file", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_duration_without_a_unit_must_stop_start_up_naming_the_key()
    {
        var line = await ExpectRefused(ServiceProcess.Config("supervisor.heartbeat.interval = 5"));
        Assert.Equal("supervisor.heartbeat.interval: '5' needs a unit (ms, s, m, h), e.g. 5s", line);
    }

    [Fact]
    public async Task A_syntax_error_must_name_file_line_and_column()
    {
        var line = await ExpectRefused("supervisor {\n  tcp { port = 0 }, http.port = 1\n}\n");
        Assert.Matches(@"operator\.conf:2:19: not valid HOCON", line);
    }

    [Fact]
    public async Task An_optional_environment_substitution_that_is_unset_must_keep_the_default_and_not_hang()
    {
        // ${?SUPERVISOR_TEST_UNSET_PORT} once made start-up spin at 100 % CPU with no output.
        using var service = ServiceProcess.Start(ServiceProcess.Config("supervisor.tcp.port = ${?SUPERVISOR_TEST_UNSET_PORT}"), output: output);
        await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20));
    }
}

/// <summary>Settings from environment variables and appsettings.json, layered over the HOCON file.</summary>
[Collection(ProcessCollection.Name)]
public sealed class DotnetConfigurationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_environment_variable_must_move_the_listener_over_the_file()
    {
        var port = Supervisor.Tests.Client.ClientTestSupport.FreePort();
        using var service = ServiceProcess.Start(ServiceProcess.Config(), output: output,
            environment: new Dictionary<string, string> { ["Supervisor__Tcp__Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        Assert.Equal(port, await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task Appsettings_json_must_set_keys_and_the_environment_must_beat_it()
    {
        var port = Supervisor.Tests.Client.ClientTestSupport.FreePort();
        using var service = ServiceProcess.Start(ServiceProcess.Config(), output: output,
            environment: new Dictionary<string, string> { ["Supervisor__Heartbeat__Interval"] = "4s" },
            files: new Dictionary<string, string>
            {
                ["appsettings.json"] = $$"""{ "Supervisor": { "Tcp": { "Port": {{port}} }, "Heartbeat": { "Interval": "2s", "Timeout": "9s" } } }""",
            });
        Assert.Equal(port, await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains(service.StandardOutput, l => l.Contains("accepting on", StringComparison.Ordinal) && l.Contains("heartbeat 4s/9s", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_unknown_key_in_the_environment_must_stop_start_up_naming_the_variable()
    {
        using var service = ServiceProcess.Start(ServiceProcess.Config(), output: output,
            environment: new Dictionary<string, string> { ["Supervisor__Tcp__Hots"] = "127.0.0.1" });
        var code = await service.WaitForExitAsync(TimeSpan.FromSeconds(15));
        if (code != 2) throw service.Failure($"exit code {code}, expected 2");
        var line = Assert.Single(service.StandardError, l => l.Trim().Length > 0);
        Assert.Equal("supervisor: bad configuration: Supervisor__Tcp__Hots: is not a known key; did you mean supervisor.tcp.host?", line);
    }

    [Fact]
    public async Task An_optional_substitution_must_take_a_set_variable_in_the_file()
    {
        var port = Supervisor.Tests.Client.ClientTestSupport.FreePort();
        using var service = ServiceProcess.Start(ServiceProcess.Config("supervisor.tcp.port = ${?SUPERVISOR_TEST_PORT}"), output: output,
            environment: new Dictionary<string, string> { ["SUPERVISOR_TEST_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        Assert.Equal(port, await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(20)));
    }
}
