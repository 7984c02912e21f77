using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Supervisor.Tests.Deploy;

/// <summary>The shipped systemd unit, judged by systemd's own tools (installed by scripts/setup.sh).</summary>
public sealed partial class SystemdUnitTests
{
    private static string Deploy(string file)
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Supervisor.sln")))
            directory = directory.Parent;
        return Path.Combine(directory?.FullName ?? throw new InvalidOperationException("Supervisor.sln not found above the test binaries"), "deploy", file);
    }

    private static async Task<(int Code, string Output)> RunAsync(string program, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return (process.ExitCode, await stdout + await stderr);
    }

    [GeneratedRegex(@"Overall exposure level for \S+: (?<score>\d+\.\d+)")]
    private static partial Regex Exposure();

    [Fact]
    public async Task The_unit_must_score_at_most_3_in_systemd_analyze_security()
    {
        var (_, output) = await RunAsync("systemd-analyze", "security", "--offline=true", "--no-pager", Deploy("connection-supervisor.service"));
        var match = Exposure().Match(output);
        Assert.True(match.Success, output);
        var score = double.Parse(match.Groups["score"].Value, CultureInfo.InvariantCulture);
        Assert.True(score <= 3.0, $"exposure {score}:\n{output}");
    }

    [Fact]
    public async Task The_unit_must_pass_systemd_analyze_verify_apart_from_the_program_not_being_installed()
    {
        var (_, output) = await RunAsync("systemd-analyze", "verify", "--man=no", Deploy("connection-supervisor.service"));
        // On a build machine /opt/connection-supervisor does not exist; every other complaint is a defect.
        var problems = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.Contains("/opt/connection-supervisor", StringComparison.Ordinal)
                        && !l.Contains("/usr/bin/dotnet", StringComparison.Ordinal)
                        && !l.Contains("Command /usr/bin/dotnet", StringComparison.Ordinal)
                        && !l.Contains("connection-supervisor.service: Failed to create", StringComparison.Ordinal))
            .ToArray();
        Assert.True(problems.Length == 0, string.Join('\n', problems));
    }

    [Fact]
    public async Task The_sysusers_file_must_create_the_user_the_unit_runs_as()
    {
        var unit = await File.ReadAllTextAsync(Deploy("connection-supervisor.service"));
        var user = Regex.Match(unit, @"^User=(\S+)$", RegexOptions.Multiline).Groups[1].Value;
        Assert.Equal("connection-supervisor", user);
        // Nothing the unit uses may be a path of Debian's supervisor package (comments may name them).
        var settings = string.Join('\n', unit.Split('\n').Where(l => !l.TrimStart().StartsWith('#')));
        Assert.DoesNotContain("/etc/supervisor/", settings, StringComparison.Ordinal);

        // systemd-sysusers itself creates it, in a scratch root instead of this machine's /etc.
        var root = Directory.CreateTempSubdirectory("sysusers-");
        try
        {
            Directory.CreateDirectory(Path.Combine(root.FullName, "etc"));
            var (code, output) = await RunAsync("systemd-sysusers", $"--root={root.FullName}", Deploy("connection-supervisor.sysusers"));
            Assert.True(code == 0, output);
            var passwd = await File.ReadAllLinesAsync(Path.Combine(root.FullName, "etc", "passwd"));
            Assert.Contains(passwd, l => l.StartsWith(user + ":", StringComparison.Ordinal) && l.EndsWith(":/usr/sbin/nologin", StringComparison.Ordinal));
            var group = await File.ReadAllLinesAsync(Path.Combine(root.FullName, "etc", "group"));
            Assert.Contains(group, l => l.StartsWith(user + ":", StringComparison.Ordinal));
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }
}
