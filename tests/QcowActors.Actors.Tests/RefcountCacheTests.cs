using QcowActors.Actors.Image;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Actors.Tests;

/// <summary>
/// With room for two refcount blocks, blocks are dropped after flushes and read back when a count
/// changes, and every count stays right: QEMU finds no error and no leak.
/// </summary>
public sealed class RefcountCacheTests : EngineTestBase
{
    private const int BlockBytes = 4096; // 4 KiB clusters: one refcount block counts 2048 clusters (8 MiB of file)
    private readonly ITestOutputHelper output;
    private CacheBudget Budget { get; }

    public RefcountCacheTests(ITestOutputHelper output) : this(output, new CacheBudget(2 * BlockBytes, 1L << 30)) { }

    private RefcountCacheTests(ITestOutputHelper output, CacheBudget budget) : base(refcountBudget: budget)
    {
        this.output = output;
        Budget = budget;
    }

    [Fact]
    public async Task Counts_survive_blocks_dropped_and_read_again_across_writes_zeroing_and_reopen()
    {
        const string name = "counted";
        const long size = 96L << 20; // up to ~24k data clusters: a dozen refcount blocks
        await Service.CreateAsync(name, size, 4096, 16, default);
        var model = new byte[size];
        var rng = new Random(777);
        long peak = 0;
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
            if (k % 25 == 24)
            {
                await Service.FlushAsync(name, default);
                peak = Math.Max(peak, Budget.UsedBytes);
            }
            if (k == 150)
            {
                // Close and reopen: open reads every block once for the free clusters and keeps only two.
                await Service.FlushAsync(name, default);
                Store.Tell(new QcowActors.Actors.Store.Passivate(name), Akka.Actor.ActorRefs.NoSender);
                for (int i = 0; i < 100 && Budget.UsedBytes != 0; i++) await Task.Delay(20);
                Assert.Equal(0, Budget.UsedBytes); // closed: its blocks left memory
            }
        }
        await Service.FlushAsync(name, default);
        await Service.FlushAsync(name, default); // the second runs after the first's decrements: nothing left to write
        long settled = Budget.UsedBytes;
        output.WriteLine($"refcount blocks in memory after flushes: at most {peak / BlockBytes}; settled at {settled / BlockBytes}");
        Assert.True(settled <= 2 * BlockBytes, $"{settled / BlockBytes} refcount blocks kept with room for 2");
        var (exit, text) = QemuCheck(ImagePath(name));
        Assert.True(exit == 0, text); // 0: no corruption and no leak

        for (long off = 0; off < size; off += 8 << 20)
        {
            var back = await ReadAsync(name, off, 8 << 20);
            Assert.True(model.AsSpan((int)off, 8 << 20).SequenceEqual(back), $"mismatch in the 8 MiB at {off}");
        }
    }
}
