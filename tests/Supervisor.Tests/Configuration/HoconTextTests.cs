using Supervisor.Configuration;

namespace Supervisor.Tests.Configuration;

/// <summary>Environment substitutions as HOCON specifies them, resolved before Akka's parser (which hangs on <c>${?VAR}</c>).</summary>
public sealed class HoconTextTests
{
    private static readonly Dictionary<string, string> Environment = new() { ["PORT"] = "9123", ["HOST"] = "127.0.0.2", ["QUOTE"] = "a\"b" };

    private static string? Lookup(string name) => Environment.GetValueOrDefault(name);

    private static Akka.Configuration.Config Build(string hocon) => SupervisorConfig.Build(hocon, null, "test.conf", Lookup);

    [Fact]
    public void An_optional_substitution_of_a_set_variable_must_take_its_value()
    {
        var prepared = HoconText.Prepare("supervisor.tcp {\n  port = 8081\n  port = ${?PORT}\n}", "test.conf", Lookup);
        Assert.Equal(9123, Akka.Configuration.ConfigurationFactory.ParseString(prepared.Text).GetInt("supervisor.tcp.port"));
    }

    [Fact]
    public void An_optional_substitution_of_an_unset_variable_must_leave_the_earlier_value()
    {
        var prepared = HoconText.Prepare("supervisor.tcp {\n  port = 8081\n  port = ${?NOPE}\n}", "test.conf", Lookup);
        Assert.Equal(8081, Akka.Configuration.ConfigurationFactory.ParseString(prepared.Text).GetInt("supervisor.tcp.port"));
    }

    [Theory]
    [InlineData("a { b = 1, c = ${?NOPE} }")]
    [InlineData("a { c = ${?NOPE}, b = 1 }")]
    [InlineData("a { c : ${?NOPE}\n b = 1 }")]
    public void An_unset_optional_field_inside_a_block_must_vanish_with_its_comma(string hocon)
    {
        var config = Akka.Configuration.ConfigurationFactory.ParseString(HoconText.Prepare(hocon, "test.conf", Lookup).Text);
        Assert.Equal(1, config.GetInt("a.b"));
        Assert.False(config.HasPath("a.c"));
    }

    [Fact]
    public void A_required_substitution_of_a_set_variable_must_take_its_value_as_a_string()
    {
        var prepared = HoconText.Prepare("a = ${HOST}\nb = ${QUOTE}", "test.conf", Lookup);
        var config = Akka.Configuration.ConfigurationFactory.ParseString(prepared.Text);
        Assert.Equal("127.0.0.2", config.GetString("a"));
        Assert.Equal("a\"b", config.GetString("b"));
    }

    [Fact]
    public void A_required_substitution_of_an_unset_variable_must_name_it_and_its_place()
    {
        var error = Assert.Throws<ConfigurationError>(() => HoconText.Prepare("a = 1\nb = ${NOPE}", "test.conf", Lookup));
        Assert.Equal("test.conf:2:5", error.Key);
        Assert.Contains("environment variable NOPE is not set", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_substitution_of_a_config_path_must_still_be_resolved_by_hocon()
    {
        var config = Build("supervisor.heartbeat { interval = 7s, timeout = 21s }\nsupervisor.client.heartbeat.interval = ${supervisor.heartbeat.interval}");
        Assert.Equal(TimeSpan.FromSeconds(7), config.GetTimeSpan("supervisor.client.heartbeat.interval"));
    }

    [Theory]
    [InlineData("a = \"{\"\n# }\nb = \"\"\"]\"\"\"", true)]
    [InlineData("a = [1, 2", false)]
    [InlineData("a = { b = [1 }", false)]
    public void Brackets_inside_strings_and_comments_must_not_count(string hocon, bool valid)
    {
        if (valid) HoconText.Prepare(hocon, "test.conf", Lookup);
        else Assert.Throws<ConfigurationError>(() => HoconText.Prepare(hocon, "test.conf", Lookup));
    }

    [Fact]
    public void A_syntax_error_after_a_substitution_must_name_the_original_column()
    {
        // The value "9123" is longer than ${PORT}'s replacement would suggest; the column is the file's own.
        var error = Assert.Throws<ConfigurationError>(() => Build("supervisor { tcp { port = ${PORT} }, http.port = 1 }"));
        Assert.Equal("test.conf:1:36", error.Key);
    }

    [Fact]
    public void Every_key_of_the_reference_and_of_each_profile_must_pass_the_schema()
    {
        var reference = SupervisorConfig.Reference;
        ConfigSchema.Check(reference, reference);
        foreach (var profile in SupervisorConfig.KnownProfiles)
            ConfigSchema.Check(SupervisorConfig.Profile(profile, "test"), reference);
    }
}
