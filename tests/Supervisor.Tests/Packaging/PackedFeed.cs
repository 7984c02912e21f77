using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;

namespace Supervisor.Tests.Packaging;

/// <summary>
/// <c>dotnet pack Supervisor.sln --no-build</c> of the build under test into a temporary folder, once for every test that
/// needs the packages: a local folder feed, as an embedder's nuget.config would name it.
/// </summary>
public sealed class PackedFeed : IDisposable
{
#if DEBUG
    public const string Configuration = "Debug";
#else
    public const string Configuration = "Release";
#endif

    public PackedFeed()
    {
        Directory.CreateDirectory(Folder);
        var (code, output) = Run(RepositoryRoot, TimeSpan.FromMinutes(4),
            "dotnet", "pack", Path.Combine(RepositoryRoot, "Supervisor.sln"), "-c", Configuration, "--no-build", "-o", Folder, "-nologo");
        PackOutput = output;
        if (code != 0) throw new InvalidOperationException($"dotnet pack exited {code}:\n{output}");
        Packages = Directory.GetFiles(Folder, "*.nupkg").Select(PackageFile.Read).ToDictionary(p => p.Id);
    }

    public static string RepositoryRoot { get; } = FindRoot();

    public string Folder { get; } = Path.Combine(Path.GetTempPath(), $"supervisor-feed-{Guid.NewGuid():N}");

    /// <summary>What <c>dotnet pack</c> printed (its warnings, e.g. NU5104, among it).</summary>
    public string PackOutput { get; }

    public IReadOnlyDictionary<string, PackageFile> Packages { get; }

    public void Dispose()
    {
        try { Directory.Delete(Folder, recursive: true); } catch (IOException) { }
    }

    private static string FindRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Supervisor.sln")))
            directory = directory.Parent;
        return directory?.FullName ?? throw new InvalidOperationException("Supervisor.sln not found above the test binaries");
    }

    public static (int Code, string Output) Run(string directory, TimeSpan timeout, string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish within {timeout}");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}

/// <summary>One .nupkg: its id and version, its files, and its dependencies as its .nuspec states them.</summary>
public sealed record PackageFile(string Id, string Version, IReadOnlyList<string> Files, IReadOnlyList<(string Id, string Version)> Dependencies,
    IReadOnlyList<string> FrameworkReferences, string? Readme)
{
    public static PackageFile Read(string path)
    {
        using var zip = ZipFile.OpenRead(path);
        var nuspecEntry = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !e.FullName.Contains('/'));
        using var stream = nuspecEntry.Open();
        var nuspec = XDocument.Load(stream);
        XNamespace ns = nuspec.Root!.Name.Namespace;
        var metadata = nuspec.Root.Element(ns + "metadata")!;
        return new PackageFile(
            metadata.Element(ns + "id")!.Value,
            metadata.Element(ns + "version")!.Value,
            zip.Entries.Select(e => e.FullName).ToArray(),
            metadata.Descendants(ns + "dependency").Select(d => (d.Attribute("id")!.Value, d.Attribute("version")!.Value)).ToArray(),
            metadata.Descendants(ns + "frameworkReference").Select(d => d.Attribute("name")!.Value).ToArray(),
            metadata.Element(ns + "readme")?.Value);
    }
}
