using Xunit;
using Xunit.Abstractions;

namespace Supervisor.Tests.Processes;

/// <summary>
/// The service reads its settings once: its hosts must not watch the working directory for changes. The default
/// .NET hosts do (a recursive file-system watcher for appsettings.json: one inotify watch per directory below the
/// working directory, every directory of the machine for a service started in <c>/</c>).
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class HostWatchProcessTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("off")]
    [InlineData("on")]
    public async Task A_running_service_must_hold_no_inotify_watch_whether_its_web_host_runs_or_not(string http)
    {
        using var service = ServiceProcess.Start(ServiceProcess.Config($"supervisor.http {{ enabled = {http}, port = 0 }}"), output: output);
        await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(30));
        if (http == "on") await service.WaitForListenerPortAsync(TimeSpan.FromSeconds(30), listener: "http");
        var watches = InotifyWatches(service.Pid);
        output.WriteLine($"inotify watches: {watches}");
        Assert.Equal(0, watches);
        service.Signal(ChildProcess.SigTerm);
        Assert.Equal(0, await service.WaitForExitAsync(TimeSpan.FromSeconds(20)));
    }

    /// <summary>The watches every inotify descriptor of <paramref name="pid"/> holds (<c>/proc/PID/fdinfo</c> lists one line per watch).</summary>
    private static int InotifyWatches(int pid)
    {
        var watches = 0;
        foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
        {
            string? target;
            try { target = new FileInfo(fd).LinkTarget; }
            catch (IOException) { continue; } // closed meanwhile
            if (target != "anon_inode:inotify") continue;
            watches += File.ReadLines($"/proc/{pid}/fdinfo/{Path.GetFileName(fd)}").Count(l => l.StartsWith("inotify wd:", StringComparison.Ordinal));
        }
        return watches;
    }
}
