// Transport-footprint benchmark (issue 2).
//
//   server <raw-socket|akka-streams|akka-io> <N> [port=0] [timeoutSeconds=180]
//   client <port> <N> [concurrency=64] [holdSeconds=300]
//
// The server warms itself up, measures a baseline, prints "READY port=<p>", waits until N
// connections have each had one heartbeat answered, measures again and prints one RESULT line,
// then exits (which closes every connection; the client sees EOF and exits too).
// run.sh drives both processes.
using TransportFootprint;

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: server <raw-socket|akka-streams|akka-io> <N> [port] [timeoutSeconds]");
    Console.Error.WriteLine("       client <port> <N> [concurrency] [holdSeconds]");
    return 2;
}

switch (args[0])
{
    case "server":
        {
            if (args.Length < 3) { Console.Error.WriteLine("server needs <transport> <N>"); return 2; }
            string transport = args[1];
            int n = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
            int port = args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 0;
            int timeout = args.Length > 4 ? int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture) : 180;
            return await ServerHarness.RunAsync(transport, n, port, TimeSpan.FromSeconds(timeout));
        }
    case "client":
        {
            if (args.Length < 3) { Console.Error.WriteLine("client needs <port> <N>"); return 2; }
            int port = int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
            int n = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
            int concurrency = args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 64;
            int hold = args.Length > 4 ? int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture) : 300;
            return await Client.RunAsync(port, n, concurrency, TimeSpan.FromSeconds(hold));
        }
    default:
        Console.Error.WriteLine($"unknown mode '{args[0]}'");
        return 2;
}
