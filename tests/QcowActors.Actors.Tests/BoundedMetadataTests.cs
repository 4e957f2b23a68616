using QcowActors.Actors.Image;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Actors.Tests;

/// <summary>
/// With a metadata budget of a few dozen 4 KiB clusters, an image with hundreds of L2 tables and
/// a dozen refcount blocks takes writes, zeroing and a reopen: the budget holds at every sample,
/// tables and blocks are dropped and read again, and every byte and count stays right.
/// </summary>
public sealed class BoundedMetadataTests(ITestOutputHelper output)
    : EngineTestBase(budget: new MetadataBudget(PerImage, PerImage))
{
    private const int ClusterBytes = 4096; // an L2 table maps 2 MiB; a refcount block counts 8 MiB of file
    private const long PerImage = 24 * ClusterBytes;

    [Fact]
    public async Task Writes_zeroing_and_reopen_across_more_tables_and_blocks_than_the_budget_holds_keep_every_byte_and_count()
    {
        const string name = "bounded";
        const long size = 96L << 20; // 48 L2 tables; up to ~24k data clusters: a dozen refcount blocks
        await Service.CreateAsync(name, size, ClusterBytes, 16, default);
        var model = new byte[size];
        const int seed = 4242;
        output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        await using var sampling = SampleBudget();
        for (int k = 0; k < 300; k++)
        {
            int len = rng.Next(1, 400_000);
            long off = rng.NextInt64(0, size - len);
            if (k % 5 == 4)
            {
                // Zeroing whole clusters releases them: decrements land in blocks that may have been dropped.
                await Service.ZeroAsync(name, off, len, default);
                Array.Clear(model, (int)off, len);
            }
            else
            {
                var data = new byte[len];
                rng.NextBytes(data);
                await Service.WriteAsync(name, off, data, default);
                data.CopyTo(model, off);
            }
            if (k % 25 == 24) await Service.FlushAsync(name, default);
            if (k == 150)
            {
                // Close and reopen: every byte the image held goes back to the budget.
                await Service.FlushAsync(name, default);
                Store.Tell(new QcowActors.Actors.Store.Passivate(name), Akka.Actor.ActorRefs.NoSender);
                for (int i = 0; i < 200 && Budget.UsedBytes != 0; i++) await Task.Delay(20);
                Assert.Equal(0, Budget.UsedBytes);
            }
        }
        await Service.FlushAsync(name, default);
        long peak = sampling.Peak;
        output.WriteLine($"peak metadata held: {peak} bytes of {PerImage} ({peak / ClusterBytes} clusters)");
        Assert.True(peak <= PerImage, $"the image held {peak} bytes of metadata with a budget of {PerImage}");

        for (long off = 0; off < size; off += 8 << 20)
        {
            var back = await ReadAsync(name, off, 8 << 20);
            Assert.True(model.AsSpan((int)off, 8 << 20).SequenceEqual(back), $"mismatch in the 8 MiB at {off}");
        }
        Assert.True(Budget.UsedBytes <= PerImage);
        await Service.FlushAsync(name, default);
        Store.Tell(new QcowActors.Actors.Store.Passivate(name), Akka.Actor.ActorRefs.NoSender);
        for (int i = 0; i < 200 && Budget.UsedBytes != 0; i++) await Task.Delay(20);
        var (exit, text) = QemuCheck(ImagePath(name));
        Assert.True(exit == 0, text); // 0: no corruption and no leak
    }
}
