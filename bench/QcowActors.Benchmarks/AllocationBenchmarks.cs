using BenchmarkDotNet.Attributes;

namespace QcowActors.Benchmarks;

/// <summary>
/// 4 KiB writes through <c>IImageService.WriteAsync</c> (no flush): with a 64 KiB stride into an
/// empty image, every write allocates a cluster (PrepareWrite → AllocateForPlan → refcount
/// increment, the zero-filled cluster written, CommitWrite); overwrites of allocated clusters go
/// in place (PrepareWrite answers at once, no commit). <see cref="InFlight"/> writes run at a time.
/// </summary>
[MemoryDiagnoser]
public class AllocationBenchmarks
{
    /// <summary>Writes per invocation: 64 MiB of virtual disk at a 64 KiB stride (one L2 table).</summary>
    private const int Writes = 1024;
    private const long Stride = 64 * 1024;
    private Engine _engine = null!;
    private readonly byte[] _data = new byte[4096];
    private string _fresh = "";
    private int _generation;

    [Params(1, 32)]
    public int InFlight { get; set; }

    [GlobalSetup]
    public void Setup() => Engine.Run(async () =>
    {
        new Random(7).NextBytes(_data);
        _engine = new Engine();
        await _engine.Service.CreateAsync("overwrite", 1 * Engine.GiB, null, null, CancellationToken.None);
        await WriteStrided("overwrite");
        await _engine.Service.FlushAsync("overwrite", CancellationToken.None);
    });

    [GlobalCleanup]
    public void Cleanup() => Engine.Run(async () => await _engine.DisposeAsync());

    /// <summary>Every iteration of the allocating benchmark starts on an empty image.</summary>
    [IterationSetup(Target = nameof(AllocatingWrite))]
    public void CreateEmpty() => Engine.Run(async () =>
    {
        _fresh = $"empty-{_generation++}";
        await _engine.Service.CreateAsync(_fresh, 1 * Engine.GiB, null, null, CancellationToken.None);
    });

    [IterationCleanup(Target = nameof(AllocatingWrite))]
    public void DeleteEmpty() => Engine.Run(() => _engine.Service.DeleteAsync(_fresh, CancellationToken.None));

    private async Task WriteStrided(string image)
    {
        if (InFlight <= 1)
        {
            for (int i = 0; i < Writes; i++)
                await _engine.Service.WriteAsync(image, i * Stride, _data, CancellationToken.None);
            return;
        }
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, InFlight).Select(async _ =>
        {
            for (int i = Interlocked.Increment(ref next); i < Writes; i = Interlocked.Increment(ref next))
                await _engine.Service.WriteAsync(image, i * Stride, _data, CancellationToken.None);
        }));
    }

    [Benchmark(OperationsPerInvoke = Writes)]
    public Task AllocatingWrite() => WriteStrided(_fresh);

    [Benchmark(OperationsPerInvoke = Writes)]
    public Task OverwriteInPlace() => WriteStrided("overwrite");
}
