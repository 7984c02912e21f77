using LedgerReplication;

const string Usage = """
    LedgerReplication run [options]           coordinator: starts --nodes child processes, runs the phases, writes results
    LedgerReplication node --index I [options] one cluster node (started by run)
    LedgerReplication table FILE...            markdown table of result files (one column each)

    options (defaults):
      --mode custom|ddata (custom)   --nodes 5   --per-node 19000   --ramp-rate 12000   --churn-rate 50
      --steady 60   --idle 10   --ramp-window 15   --interval-ms 250   --sample 1   --base-port 19400
      ddata only: --type orset|lwwdict (orset)   --write tick|event (tick)   --delta on|off (on)
      --hocon "extra HOCON"   --out bench/results/ledger   --label NAME
    """;

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine(Usage);
    return args.Length == 0 ? 2 : 0;
}

return args[0] switch
{
    "run" => new Coordinator(Options.Parse(args, 1)).Run(),
    "node" => Node.Run(Options.Parse(args, 1)),
    "table" => Table.Print(args.Skip(1).ToArray()),
    _ => Fail(),
};

int Fail()
{
    Console.Error.WriteLine(Usage);
    return 2;
}

/// <summary>The entry point's type, for its assembly's location.</summary>
public partial class Program;
