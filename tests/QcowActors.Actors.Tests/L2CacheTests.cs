using QcowActors.Actors.Image;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Actors.Tests;

/// <summary>With a budget of a few L2 tables, tables are evicted and reloaded without losing a byte.</summary>
public sealed class L2CacheTests : EngineTestBase
{
    private readonly ITestOutputHelper output;
    private CacheBudget Budget { get; }

    public L2CacheTests(ITestOutputHelper output) : this(output, new CacheBudget(4 * 4096, 1L << 30)) { }

    private L2CacheTests(ITestOutputHelper output, CacheBudget budget) : base(cacheBudget: budget)
    {
        this.output = output;
        Budget = budget;
    }

    [Fact]
    public async Task Writes_and_reads_across_more_tables_than_the_cache_holds_keep_every_byte()
    {
        const string name = "many";
        const long size = 64L << 20; // 4 KiB clusters: one L2 table maps 2 MiB, so 32 tables
        await Service.CreateAsync(name, size, 4096, 16, default);
        var model = new byte[size];
        var rng = new Random(4242);
        output.WriteLine("seed 4242");
        int maxLive = 0;
        for (int k = 0; k < 400; k++)
        {
            int len = rng.Next(1, 20_000);
            long off = rng.NextInt64(0, size - len);
            var data = new byte[len];
            rng.NextBytes(data);
            var writes = new List<Task> { Service.WriteAsync(name, off, data, default) };
            if (k % 7 == 0)
            {
                long roff = rng.NextInt64(0, size - 4096);
                var expected = model.AsSpan((int)roff, 4096).ToArray();
                var back = await ReadAsync(name, roff, 4096);
                if (roff + 4096 <= off || roff >= off + len) Assert.Equal(expected, back);
            }
            await Task.WhenAll(writes);
            data.CopyTo(model, off);
            if (k % 40 == 39) await Service.FlushAsync(name, default);
            maxLive = Math.Max(maxLive, await LiveL2TablesAsync(name));
        }
        await Service.FlushAsync(name, default);
        await Service.FlushAsync(name, default); // the first may have collected tables dirtied during the previous one
        int settled = -1;
        for (int i = 0; i < 50 && settled != 4; i++)
        {
            await Task.Delay(20);
            settled = await LiveL2TablesAsync(name);
        }
        output.WriteLine($"at most {maxLive} L2 tables alive at once; {settled} once flushed");
        Assert.Equal(4, settled); // clean tables beyond the budget are dropped
        Assert.True(maxLive < 32, $"{maxLive} L2 tables alive with a budget of 4 (the image has 32)");
        for (long off = 0; off < size; off += 4 << 20)
        {
            var back = await ReadAsync(name, off, 4 << 20);
            Assert.True(model.AsSpan((int)off, 4 << 20).SequenceEqual(back), $"mismatch at {off}");
        }
        var (exit, text) = QemuCheck(ImagePath(name));
        Assert.True(exit == 0, text);
    }

    private Task<int> LiveL2TablesAsync(string name) => Task.FromResult((int)(Budget.UsedBytes / 4096));
}
