using BenchmarkDotNet.Attributes;

namespace QcowActors.Benchmarks;

/// <summary>
/// A 4 KiB mapping in an L2 table already in memory (hit) against the first mapping of a table
/// after the image was reopened (miss: the L2 actor starts and reads its 64 KiB table from the
/// file, usually from the page cache). The image is sparse: one written cluster in each of
/// <see cref="Tables"/> L2 tables, so one invocation maps one cluster in every table, each a first
/// load for the miss. The miss setup closes the image (Passivate) and reopens it (header, L1,
/// refcount table and blocks are read then, outside the measurement).
/// </summary>
[MemoryDiagnoser]
public class L2CacheBenchmarks
{
    private const int Tables = 256;
    private const string Image = "sparse";
    private const long TableCoverage = 512 * Engine.MiB; // 64 KiB clusters: 8192 entries × 64 KiB
    private Engine _engine = null!;

    [GlobalSetup]
    public void Setup() => Engine.Run(async () =>
    {
        _engine = new Engine();
        await _engine.Service.CreateAsync(Image, Tables * TableCoverage, null, null, CancellationToken.None);
        var data = new byte[4096];
        new Random(1).NextBytes(data);
        for (int t = 0; t < Tables; t++)
            await _engine.Service.WriteAsync(Image, Offset(t), data, CancellationToken.None);
        await _engine.Service.FlushAsync(Image, CancellationToken.None);
        await MapEveryTable();
    });

    [GlobalCleanup]
    public void Cleanup() => Engine.Run(async () => await _engine.DisposeAsync());

    /// <summary>The written cluster of table t (not the first one, so the mapping indexes into the table).</summary>
    private static long Offset(int t) => t * TableCoverage + 4096 * 64 * 1024L;

    private async Task MapEveryTable()
    {
        for (int t = 0; t < Tables; t++)
        {
            var plan = await _engine.Service.PlanReadAsync(Image, Offset(t), 4096, CancellationToken.None);
            await plan.DisposeAsync();
        }
    }

    [IterationSetup(Target = nameof(Miss))]
    public void Reopen() => Engine.Run(() => _engine.ReopenAsync(Image));

    [IterationSetup(Target = nameof(Hit))]
    public void Load() => Engine.Run(MapEveryTable);

    [Benchmark(Baseline = true, OperationsPerInvoke = Tables)]
    public Task Hit() => MapEveryTable();

    [Benchmark(OperationsPerInvoke = Tables)]
    public Task Miss() => MapEveryTable();
}
