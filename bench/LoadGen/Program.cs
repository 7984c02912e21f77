using LoadGen;

// Load generator (issue 7): see Options.Usage and bench/README.md.
Options options;
try
{
    options = Options.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine($"loadgen: {e.Message}");
    return 2;
}
return await new Generator(options).RunAsync();
