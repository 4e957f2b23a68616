using System.Diagnostics;
using QcowActors.Actors.Image;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Actors.Tests;

/// <summary>
/// Over budget, a request that needs a new table waits for a write-back to make room: the cache
/// does not grow, and the request proceeds once the flush is done.
/// </summary>
public sealed class BackpressureTests(ITestOutputHelper output)
    : EngineTestBase(new HoldingFileSystem(), new MetadataBudget(PerImage, PerImage))
{
    private const int Cluster = 4096; // one L2 table maps 2 MiB
    private const long PerImage = 16 * Cluster;
    private const long Table = 2L << 20;

    [Fact]
    public async Task A_write_that_needs_a_new_table_waits_for_the_write_back_and_proceeds_once_it_completes()
    {
        var seam = (HoldingFileSystem)FileSystem;
        await Service.CreateAsync("tight", 64L << 20, Cluster, 16, default);
        // Fsyncs are held at the seam: a write-back cannot finish, so no dirty table can be dropped until released.
        int k = 0;
        Task? waiting = null;
        for (; k < 32; k++)
        {
            var write = Service.WriteAsync("tight", k * Table, new[] { (byte)(k + 1) }, default);
            if (k == 0)
            {
                await write;
                seam.HoldFsyncs();
                continue;
            }
            if (await Task.WhenAny(write, Task.Delay(1000)) != write)
            {
                waiting = write;
                break;
            }
        }
        Assert.NotNull(waiting); // some write had to wait: the budget is a bound, not a hint
        await seam.WriteHeld.WaitAsync(TimeSpan.FromSeconds(5));
        long held = Budget.UsedBytes;
        output.WriteLine($"write {k} waits with {held} bytes held of {PerImage} ({k} tables written so far)");
        await Task.Delay(500);
        Assert.False(waiting.IsCompleted, "the write completed although no room could be made");
        Assert.True(Budget.UsedBytes <= PerImage, $"{Budget.UsedBytes} bytes held with a budget of {PerImage}");

        var clock = Stopwatch.StartNew();
        seam.Release();
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        output.WriteLine($"it proceeded {clock.ElapsedMilliseconds} ms after the write-back was released");
        for (int j = 0; j <= k; j++)
            Assert.Equal((byte)(j + 1), (await ReadAsync("tight", j * Table, 1))[0]);
        Assert.True(Budget.UsedBytes <= PerImage);
        await Service.FlushAsync("tight", default);
        var (exit, text) = QemuCheck(ImagePath("tight"));
        Assert.True(exit == 0, text);
    }
}

/// <summary>A request that cannot get room within Storage:MetadataCacheWaitLimit is answered "try again" (503 over HTTP).</summary>
public sealed class CacheWaitLimitTests()
    : EngineTestBase(new HoldingFileSystem(), new MetadataBudget(16 * Cluster, 16 * Cluster), o => o.MetadataCacheWaitLimit = TimeSpan.FromSeconds(1))
{
    private const int Cluster = 4096;
    private const long Table = 2L << 20;

    [Fact]
    public async Task A_write_that_waits_past_the_limit_fails_as_unavailable_naming_the_cache_and_the_next_one_succeeds()
    {
        var seam = (HoldingFileSystem)FileSystem;
        await Service.CreateAsync("full", 64L << 20, Cluster, 16, default);
        await Service.WriteAsync("full", 0, new byte[] { 1 }, default);
        seam.HoldFsyncs(); // no write-back can finish: dirty tables stay
        var clock = Stopwatch.StartNew();
        QcowActors.Actors.Service.ImageException? refused = null;
        for (int k = 1; k < 32 && refused is null; k++)
        {
            try { await Service.WriteAsync("full", k * Table, new byte[] { 1 }, default); }
            catch (QcowActors.Actors.Service.ImageException e) { refused = e; }
        }
        Assert.NotNull(refused);
        Assert.Equal(QcowActors.Actors.Service.ImageError.Unavailable, refused.Error);
        Assert.Contains("metadata cache", refused.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"refused after {clock.Elapsed}");
        seam.Release();
        await Service.WriteAsync("full", 31 * Table, new byte[] { 2 }, default);
        Assert.Equal(2, (await ReadAsync("full", 31 * Table, 1))[0]);
    }
}

/// <summary>Two images driven past the process budget at once: both finish, no deadlock, the total holds.</summary>
public sealed class SharedBudgetTests(ITestOutputHelper output)
    : EngineTestBase(budget: new MetadataBudget(PerImage, Total))
{
    private const int Cluster = 4096;
    private const long PerImage = 40 * Cluster;
    private const long Total = 48 * Cluster; // less than two images' worth: they must take room from each other

    [Fact]
    public async Task Two_images_over_the_process_budget_at_once_finish_with_every_byte_and_the_total_held()
    {
        const long size = 96L << 20; // 48 tables each
        string[] images = ["left", "right"];
        foreach (var name in images) await Service.CreateAsync(name, size, Cluster, 16, default);
        var models = images.ToDictionary(n => n, _ => new byte[size]);
        await using var sampling = SampleBudget();
        const int seed = 99;
        output.WriteLine($"seed {seed}");
        var clock = Stopwatch.StartNew();
        // Four writers per image, each on its own stretch of the disk (so the model needs no locking).
        var writers = images.SelectMany((name, i) => Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            var rng = new Random(seed * 10 + i * 4 + w);
            long stretch = size / 4, from = w * stretch;
            for (int n = 0; n < 120; n++)
            {
                int len = rng.Next(1, 3 * Cluster);
                long off = from + rng.NextInt64(0, stretch - len);
                var data = new byte[len];
                rng.NextBytes(data);
                await Service.WriteAsync(name, off, data, default);
                data.CopyTo(models[name], off);
                if (n % 40 == 39) await Service.FlushAsync(name, default);
            }
        }))).ToArray();
        await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(60));
        long peak = sampling.Peak;
        output.WriteLine($"960 writes over two images in {clock.Elapsed.TotalSeconds:F1} s; peak {peak} bytes of {Total}");
        Assert.True(peak <= Total, $"{peak} bytes of metadata held with a process budget of {Total}");
        foreach (var name in images)
        {
            for (long off = 0; off < size; off += 8 << 20)
            {
                var back = await ReadAsync(name, off, 8 << 20);
                Assert.True(models[name].AsSpan((int)off, 8 << 20).SequenceEqual(back), $"{name}: mismatch at {off}");
            }
            await Service.FlushAsync(name, default);
        }
        foreach (var name in images)
        {
            Store.Tell(new QcowActors.Actors.Store.Passivate(name), Akka.Actor.ActorRefs.NoSender);
        }
        for (int i = 0; i < 200 && Budget.UsedBytes != 0; i++) await Task.Delay(20);
        Assert.Equal(0, Budget.UsedBytes);
        foreach (var name in images)
        {
            var (exit, text) = QemuCheck(ImagePath(name));
            Assert.True(exit == 0, $"{name}: {text}");
        }
    }
}
