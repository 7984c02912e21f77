namespace Supervisor.Tests.Packaging;

/// <summary>
/// The packages an embedder takes (issue 13): <c>dotnet pack</c> works as is, each package has its readme and XML docs,
/// and the core package brings nothing heavy into the embedder's process.
/// </summary>
[Collection(PackedFeedCollection.Name)]
public sealed class PackageTests(PackedFeed feed)
{
    private const string Version = "0.13.0";

    [Fact]
    public void Pack_must_produce_the_core_the_messages_and_one_package_per_heavy_feature_without_NU5104()
    {
        Assert.Equal(
            ["ConnectionSupervisor", "ConnectionSupervisor.Cluster", "ConnectionSupervisor.Messages", "ConnectionSupervisor.Operator",
             "ConnectionSupervisor.Probes", "ConnectionSupervisor.Simulation"],
            feed.Packages.Keys.Order(StringComparer.Ordinal));
        Assert.DoesNotContain("NU5104", feed.PackOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("warning", feed.PackOutput, StringComparison.OrdinalIgnoreCase);
        // A stable package never depends on a prerelease one (NU5104's rule); the operator package is a prerelease
        // because the Prometheus exporter is only served as a beta.
        foreach (var package in feed.Packages.Values.Where(p => !p.Version.Contains('-')))
            Assert.All(package.Dependencies, d => Assert.DoesNotContain('-', d.Version));
        Assert.Equal(Version + "-beta.1", feed.Packages["ConnectionSupervisor.Operator"].Version);
        Assert.Equal(Version, feed.Packages["ConnectionSupervisor"].Version);
    }

    [Fact]
    public void Every_package_must_carry_its_readme_and_the_XML_docs_of_its_assembly()
    {
        foreach (var package in feed.Packages.Values)
        {
            Assert.Equal("README.md", package.Readme);
            Assert.Contains("README.md", package.Files);
            var assembly = Assert.Single(package.Files, f => f.StartsWith("lib/net10.0/", StringComparison.Ordinal) && f.EndsWith(".dll", StringComparison.Ordinal));
            Assert.Contains(Path.ChangeExtension(assembly, ".xml"), package.Files);
        }
    }

    [Fact]
    public void The_core_package_must_depend_only_on_Akka_Akka_Streams_Akka_Hosting_the_messages_and_what_it_truly_needs()
    {
        var core = feed.Packages["ConnectionSupervisor"];
        Assert.Equal(
            ["Akka", "Akka.Hosting", "Akka.Streams", "ConnectionSupervisor.Messages",
             // appsettings.json and Supervisor__ variables under the HOCON; the heartbeat pool's hash ring.
             "Microsoft.Extensions.Configuration.EnvironmentVariables", "Microsoft.Extensions.Configuration.Json", "System.IO.Hashing"],
            core.Dependencies.Select(d => d.Id).Order(StringComparer.Ordinal));
        Assert.Empty(core.FrameworkReferences); // no ASP.NET Core
        Assert.Contains("buildTransitive/ConnectionSupervisor.targets", core.Files);
        Assert.Equal(["Akka"], feed.Packages["ConnectionSupervisor.Messages"].Dependencies.Select(d => d.Id));
    }

    [Theory]
    [InlineData("ConnectionSupervisor.Operator", "OpenTelemetry.Exporter.Prometheus.AspNetCore")]
    [InlineData("ConnectionSupervisor.Cluster", "Akka.Cluster.Hosting")]
    [InlineData("ConnectionSupervisor.Probes", "StackExchange.Redis")]
    [InlineData("ConnectionSupervisor.Simulation", "Akka.TestKit")]
    public void Each_heavy_dependency_must_live_in_its_feature_package_over_the_core(string package, string heavy)
    {
        var ids = feed.Packages[package].Dependencies.Select(d => d.Id).ToArray();
        Assert.Contains(heavy, ids);
        Assert.Contains("ConnectionSupervisor", ids);
        foreach (var other in feed.Packages.Values.Where(p => p.Id != package))
            Assert.DoesNotContain(heavy, other.Dependencies.Select(d => d.Id));
    }

    [Fact]
    public void Only_the_operator_package_must_reference_ASP_NET_Core()
    {
        Assert.Equal(["ConnectionSupervisor.Operator"],
            feed.Packages.Values.Where(p => p.FrameworkReferences.Contains("Microsoft.AspNetCore.App")).Select(p => p.Id));
    }
}

[CollectionDefinition(Name)]
public sealed class PackedFeedCollection : ICollectionFixture<PackedFeed>
{
    public const string Name = "packed feed";
}
