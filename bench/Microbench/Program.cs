using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

// Micro-benchmarks (issue 7): bench/run-micro.sh, or
//   dotnet run -c Release --project bench/Microbench -- --filter '*'
// In-process (the repository's Directory.*.props would otherwise shape BenchmarkDotNet's generated
// project), with the memory diagnoser: "Allocated" is bytes per operation, one operation = one frame.
// "--steady-path N": the steady heartbeat path with real threads, bytes allocated process-wide.
// "--steady-path N --detector phi": the same with the phi accrual detector.
if (args is ["--steady-path", var count, ..])
    return Microbench.SteadyPathAllocations.Run(int.Parse(count, System.Globalization.CultureInfo.InvariantCulture),
        args is [_, _, "--detector", var detector] ? detector : "fixed");

var config = ManualConfig.CreateMinimumViable()
    .AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(10).WithId("inproc"))
    .AddDiagnoser(MemoryDiagnoser.Default)
    .AddColumn(StatisticColumn.OperationsPerSecond)
    .WithOptions(ConfigOptions.DisableOptimizationsValidator);
BenchmarkSwitcher.FromAssembly(typeof(Microbench.CodecBenchmarks).Assembly).Run(args, config);
return 0;
