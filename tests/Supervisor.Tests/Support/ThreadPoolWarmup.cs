using System.Runtime.CompilerServices;

namespace Supervisor.Tests.Support;

internal static class ThreadPoolWarmup
{
    /// <summary>
    /// The test host parks pool threads for good (vstest's message loop polls on one, the xunit adapter
    /// waits on another), so on a 2-core machine the pool starts out starved and a service under test
    /// stalls for the ~0.5–1 s the pool takes to inject threads. Seen with dotnet-stack; the service
    /// run on its own does not stall. Give the pool enough threads up front.
    /// </summary>
    [ModuleInitializer]
    internal static void Init() => ThreadPool.SetMinThreads(16, 16);
}

internal static class NoHeapSettleInTests
{
    /// <summary>
    /// The process's heap settle (io.settle-heap-after-connect-burst) off for the whole test run: its compacting
    /// collection, which one test service's burst of opens would start 5 s later, pauses every other service of this
    /// process in the middle of its timing windows. Its own tests use instances of their own; its effect is measured
    /// on the real service (bench/run-footprint.sh).
    /// </summary>
    [ModuleInitializer]
    internal static void Init() =>
        Supervisor.Transport.HeapSettle.Process.Configure(null, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
}
