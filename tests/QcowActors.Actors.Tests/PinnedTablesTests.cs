using System.Diagnostics;
using QcowActors.Actors.Image;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Actors.Tests;

/// <summary>
/// Many writers at once, each holding an L2 table busy while its new clusters are counted, with a
/// budget barely larger than the tables they hold: the refcount blocks counting needs come from a
/// share tables cannot take, so no writer waits on memory only another busy table could free.
/// </summary>
public sealed class PinnedTablesTests(ITestOutputHelper output)
    : EngineTestBase(budget: new MetadataBudget(PerImage, PerImage), configure: o => o.MetadataCacheWaitLimit = TimeSpan.FromSeconds(8))
{
    private const int Cluster = 4096;
    private const long PerImage = 28 * Cluster;

    [Fact]
    public async Task Writers_holding_every_table_the_budget_allows_all_finish()
    {
        // 64-bit refcounts: a block counts 512 clusters (2 MiB of file), so counting keeps needing blocks that were dropped.
        const string name = "pinned";
        const long size = 256L << 20; // 128 L2 tables of 2 MiB
        await Service.CreateAsync(name, size, Cluster, 64, default);
        const int writers = 24;
        const int seed = 7;
        output.WriteLine($"seed {seed}");
        var written = new byte[writers][];
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var rng = new Random(seed + w);
            var data = new byte[3 * Cluster];
            for (int n = 0; n < 40; n++)
            {
                rng.NextBytes(data);
                // Each writer keeps to its own tables: table w + 24k.
                long table = (w + writers * rng.Next(0, 128 / writers)) * (2L << 20);
                await Service.WriteAsync(name, table + rng.Next(0, 500) * Cluster, data, default);
            }
            written[w] = data;
        }))).WaitAsync(TimeSpan.FromSeconds(90));
        output.WriteLine($"{writers * 40} writes on {writers} writers in {clock.Elapsed.TotalSeconds:F1} s; {Budget.UsedBytes} bytes held of {PerImage}");
        Assert.True(Budget.UsedBytes <= PerImage);
        await Service.FlushAsync(name, default);
        Store.Tell(new QcowActors.Actors.Store.Passivate(name), Akka.Actor.ActorRefs.NoSender);
        for (int i = 0; i < 200 && Budget.UsedBytes != 0; i++) await Task.Delay(20);
        var (exit, text) = QemuCheck(ImagePath(name));
        Assert.True(exit == 0, text);
    }
}
