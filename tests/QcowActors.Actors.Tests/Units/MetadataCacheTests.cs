using QcowActors.Actors.Image;
using Xunit;

namespace QcowActors.Actors.Tests.Units;

/// <summary>The one metadata cache and its budget, without actors.</summary>
public sealed class MetadataCacheTests
{
    private const int Cluster = 4096;

    [Fact]
    public async Task The_process_budget_is_never_exceeded_by_images_reserving_and_releasing_at_once()
    {
        var budget = new MetadataBudget(64 * Cluster, 160 * Cluster);
        long worst = 0;
        int refused = 0;
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested) worst = Math.Max(worst, budget.UsedBytes);
        });
        // Eight images, each on its own thread (a cache is single-threaded: its supervisor's).
        var images = Enumerable.Range(0, 8).Select(k => Task.Run(() =>
        {
            var cache = new MetadataCache(budget, Cluster, 0);
            var rng = new Random(k);
            var held = new List<CacheEntry>();
            for (int n = 0; n < 20_000; n++)
            {
                if (held.Count > 0 && rng.Next(3) == 0)
                {
                    int i = rng.Next(held.Count);
                    cache.Remove(held[i]);
                    held.RemoveAt(i);
                }
                else if (cache.TryReserve(Cluster, (ReserveFor)rng.Next(3)))
                {
                    held.Add(cache.Add(new CacheKey(CacheKind.L2Table, n), Cluster, new object()));
                }
                else
                {
                    Interlocked.Increment(ref refused);
                }
                Assert.True(cache.UsedBytes <= budget.PerImageBytes, $"image {k} holds {cache.UsedBytes} bytes");
            }
            foreach (var e in held) cache.Remove(e);
        })).ToArray();
        await Task.WhenAll(images);
        stop.Cancel();
        await sampler;
        Assert.True(worst <= budget.TotalBytes, $"{worst} bytes reserved with a total of {budget.TotalBytes}");
        Assert.True(refused > 0, "the test never reached the budget");
        Assert.Equal(0, budget.UsedBytes);
    }

    [Fact]
    public void Requests_leave_counting_a_share_and_counting_leaves_the_flush_one()
    {
        var budget = new MetadataBudget(16 * Cluster, 64 * Cluster);
        var cache = new MetadataCache(budget, Cluster, 0);
        int requests = 0, counting = 0, flush = 0;
        while (cache.TryReserve(Cluster, ReserveFor.Request)) requests++;
        while (cache.TryReserve(Cluster, ReserveFor.Counting)) counting++;
        while (cache.TryReserve(Cluster, ReserveFor.Flush)) flush++;
        Assert.Equal((12, 2, 2), (requests, counting, flush)); // two clusters each above the tier below
        Assert.Equal(budget.PerImageBytes, cache.UsedBytes);

        // The process: requests stop short of its reserved share, the other tiers may use it.
        var small = new MetadataBudget(16 * Cluster, 16 * Cluster);
        var first = new MetadataCache(small, Cluster, 0);
        int taken = 0;
        while (first.TryReserve(Cluster, ReserveFor.Request)) taken++;
        Assert.Equal(12, taken); // the per-image request limit
        var second = new MetadataCache(small, Cluster, 0);
        Assert.False(second.TryReserve(Cluster, ReserveFor.Request)); // the process's request limit (12 of 16)
        Assert.True(second.TryReserve(Cluster, ReserveFor.Flush));
    }

    [Fact]
    public void Entries_used_since_the_hand_passed_are_spared_and_dirty_or_pinned_ones_never_chosen()
    {
        var budget = new MetadataBudget(1 << 20, 1 << 20);
        var cache = new MetadataCache(budget, Cluster, 0);
        var entries = Enumerable.Range(0, 8).Select(i =>
        {
            Assert.True(cache.TryReserve(Cluster, ReserveFor.Request));
            return cache.Add(new CacheKey(CacheKind.L2Table, i), Cluster, new object());
        }).ToList();
        // A first sweep clears every bit set at insertion and takes the first entry.
        var first = cache.ChooseVictims(Cluster);
        Assert.Single(first);
        // Entries 1..3 are used again (a fast-path hit sets the bit without the supervisor), 4 is dirty, 5 pinned.
        foreach (var hot in entries.Skip(1).Take(3)) hot.Clock.Touch();
        cache.SetDirty(entries[4], true);
        entries[5].Pin();
        var victims = cache.ChooseVictims(3 * Cluster);
        Assert.Equal(3, victims.Count);
        Assert.DoesNotContain(entries[4], victims);
        Assert.DoesNotContain(entries[5], victims);
        Assert.All(entries.Skip(1).Take(3), hot => Assert.DoesNotContain(hot, victims));
        Assert.Equal(Cluster * 1L, cache.DirtyBytes);
    }

    [Fact]
    public void A_compact_entry_gives_bytes_back_and_must_reserve_them_again_to_grow()
    {
        // 8 clusters: a request may hold 4 (counting and the flush keep two clusters each).
        var budget = new MetadataBudget(8 * Cluster, 8 * Cluster);
        var cache = new MetadataCache(budget, Cluster, 0);
        Assert.True(cache.TryReserve(Cluster, ReserveFor.Request));
        var sparse = cache.Add(new CacheKey(CacheKind.L2Table, 0), Cluster, new object());
        cache.Shrink(sparse, 200);
        Assert.Equal(200, cache.UsedBytes);
        Assert.Equal(200, budget.UsedBytes);
        Assert.True(cache.TryReserve(3 * Cluster + 1, ReserveFor.Request));
        Assert.False(cache.TryGrow(sparse, Cluster, ReserveFor.Request)); // one byte past what requests may hold
        cache.Release(1);
        Assert.True(cache.TryGrow(sparse, Cluster, ReserveFor.Request));
        Assert.Equal(4 * Cluster, budget.UsedBytes);
    }

    [Fact]
    public async Task Opening_waits_for_room_that_another_image_gives_back()
    {
        var budget = new MetadataBudget(8 * Cluster, 8 * Cluster);
        Assert.True(budget.TryReserve(6 * Cluster, priority: false));
        var waiting = budget.ReserveAsync(2 * Cluster, TimeSpan.FromSeconds(10), CancellationToken.None);
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);
        budget.Release(2 * Cluster);
        Assert.True(await waiting.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.False(await budget.ReserveAsync(4 * Cluster, TimeSpan.FromMilliseconds(200), CancellationToken.None));
    }
}
