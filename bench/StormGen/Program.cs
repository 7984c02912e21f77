using StormGen;

// Reconnect-storm generator (issue 16): see Options.Usage and bench/README.md.
if (args is ["--help"] or ["-h"])
{
    Console.WriteLine(Options.Usage);
    return 0;
}
Options options;
try
{
    options = Options.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine($"stormgen: {e.Message}");
    return 2;
}
return await new Generator(options).RunAsync();
