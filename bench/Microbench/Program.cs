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
var config = ManualConfig.CreateMinimumViable()
    .AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(10).WithId("inproc"))
    .AddDiagnoser(MemoryDiagnoser.Default)
    .AddColumn(StatisticColumn.OperationsPerSecond)
    .WithOptions(ConfigOptions.DisableOptimizationsValidator);
BenchmarkSwitcher.FromAssembly(typeof(Microbench.CodecBenchmarks).Assembly).Run(args, config);
