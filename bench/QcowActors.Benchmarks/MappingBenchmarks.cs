using BenchmarkDotNet.Attributes;

namespace QcowActors.Benchmarks;

/// <summary>
/// Mapping a range of a filled image: <c>PlanReadAsync</c> (attach, enter the gate, one MapRange
/// per L2 table touched) and disposing the plan. No data is copied: this is the actor round trips
/// and the bookkeeping a GET pays before its first byte. The L2 table is loaded in the setup.
/// </summary>
[MemoryDiagnoser]
public class MappingBenchmarks
{
    private const string Image = "mapped";
    private Engine _engine = null!;

    /// <summary>4 KiB, 1 MiB, 128 MiB (the 128 MiB range is one L2 table: one MapRange of 2048 entries).</summary>
    [Params(4 * 1024, 1024 * 1024, 128 * 1024 * 1024)]
    public int RangeBytes { get; set; }

    [GlobalSetup]
    public void Setup() => Engine.Run(async () =>
    {
        _engine = new Engine();
        await _engine.Service.CreateAsync(Image, 1 * Engine.GiB, null, null, CancellationToken.None);
        await _engine.FillAsync(Image, 0, 128 * Engine.MiB);
        await _engine.Service.FlushAsync(Image, CancellationToken.None);
        await using var warm = await _engine.Service.PlanReadAsync(Image, 0, 128 * Engine.MiB, CancellationToken.None);
    });

    [GlobalCleanup]
    public void Cleanup() => Engine.Run(async () => await _engine.DisposeAsync());

    [Benchmark]
    public async Task PlanRead()
    {
        var plan = await _engine.Service.PlanReadAsync(Image, 0, RangeBytes, CancellationToken.None);
        await plan.DisposeAsync();
    }
}
