using System.Diagnostics;
using Xunit.Abstractions;

namespace Supervisor.Tests.Monitoring;

/// <summary><c>Supervisor simulate</c> run as users run it: the built executable in its own process.</summary>
public sealed class SimulateCommandTests(ITestOutputHelper output)
{
    private async Task<(int Exit, string Out, string Err)> Simulate(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Supervisor.dll"));
        start.ArgumentList.Add("simulate");
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(cts.Token);
        output.WriteLine(await stdout);
        return (process.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task Simulate_must_report_false_disconnects_and_detection_latency()
    {
        var (exit, text, _) = await Simulate("--profile", "realtime-game", "--peers", "2000", "--loss", "0.05", "--duration", "10m",
            "--silent", "0.05", "--silent-at", "2m");
        Assert.Equal(0, exit);
        Assert.Matches(@"false disconnects\s+[1-9]\d*", text);
        // Every peer that died is detected, unless a loss streak had closed it while alive (then it says so).
        var dead = System.Text.RegularExpressions.Regex.Match(text, @"dead peers\s+100, detected (?<detected>\d+)(?: \((?<early>\d+) closed while alive before it died\))?");
        Assert.True(dead.Success, text);
        Assert.Equal(100, int.Parse(dead.Groups["detected"].Value) + (dead.Groups["early"].Success ? int.Parse(dead.Groups["early"].Value) : 0));
        Assert.Matches(@"detection latency\s+min \d+\.\d+ s, p50", text);
    }

    [Fact]
    public async Task Simulate_without_loss_must_report_zero_false_disconnects()
    {
        var (exit, text, _) = await Simulate("--profile", "realtime-game", "--peers", "2000", "--loss", "0", "--duration", "10m");
        Assert.Equal(0, exit);
        Assert.Matches(@"false disconnects\s+0\r?\n", text);
        Assert.Matches(@"dead peers\s+20, detected 20", text);
    }

    [Fact]
    public async Task Simulate_must_exit_2_on_a_bad_option()
    {
        var (exit, _, err) = await Simulate("--loss", "2");
        Assert.Equal(2, exit);
        Assert.Contains("--loss 2 is not a fraction", err);
    }
}
