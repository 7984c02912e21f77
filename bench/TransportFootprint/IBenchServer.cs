namespace TransportFootprint;

internal interface IBenchServer : IAsyncDisposable
{
    /// <summary>Binds 127.0.0.1:<paramref name="port"/> (0 = any free port) and returns the bound port.</summary>
    Task<int> StartAsync(int port, Stats stats);
}
