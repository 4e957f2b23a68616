using QcowActors.Actors.Service;
using QcowActors.Format;
using Xunit;

namespace QcowActors.Actors.Tests.Units;

/// <summary>imageio's dirty extents: a bitmap's runs laid over zero extents, contiguous, equal neighbours merged.</summary>
public sealed class DirtyExtentMergerTests
{
    private const long KiB = 1024;

    private static async Task<List<DirtyExtent>> MergeAsync(IEnumerable<DiskExtent> extents, DirtyBits bits)
    {
        var merged = new List<DirtyExtent>();
        await foreach (var e in DirtyExtentMerger.MergeAsync(extents.ToAsyncEnumerable(), bits)) merged.Add(e);
        return merged;
    }

    /// <summary>The expected answer built byte-range by byte-range from a per-granule model, independently of the merger.</summary>
    private static List<DirtyExtent> Expected(long size, long granularity, ISet<long> dirtyGranules, Func<long, bool> zeroAt, long step)
    {
        var result = new List<DirtyExtent>();
        for (long o = 0; o < size; o += step)
        {
            long n = Math.Min(step, size - o);
            bool dirty = dirtyGranules.Contains(o / granularity);
            bool zero = zeroAt(o);
            if (result.Count > 0 && result[^1].Dirty == dirty && result[^1].Zero == zero)
                result[^1] = result[^1] with { Length = result[^1].Length + n };
            else
                result.Add(new DirtyExtent(o, n, dirty, zero));
        }
        return result;
    }

    [Fact]
    public async Task Dirty_runs_split_zero_extents_and_equal_neighbours_merge()
    {
        long size = 1024 * KiB + 512; // a partial last granule
        var bits = new DirtyBits(size, 16); // 64 KiB granules
        bits.Mark(70 * KiB, 1);           // granule 1
        bits.Mark(128 * KiB, 64 * KiB);   // granule 2: adjacent, one run
        bits.Mark(size - 1, 1);           // the partial last granule
        var zeroFrom = 320 * KiB;         // data below, zeros above
        var extents = new[] { new DiskExtent(0, zeroFrom, false, false), new DiskExtent(zeroFrom, size - zeroFrom, true, true) };

        var merged = await MergeAsync(extents, bits);

        var expected = Expected(size, 64 * KiB, new HashSet<long> { 1, 2, 16 }, o => o >= zeroFrom, 512);
        Assert.Equal(expected, merged);
        Assert.Equal(5, merged.Count);
    }

    [Fact]
    public async Task A_disk_larger_than_the_bitmap_is_dirty_past_its_end()
    {
        // A checkpoint taken before a shrink: its disk outgrows the bitmap, whose bits say nothing there.
        var bits = new DirtyBits(256 * KiB, 16);
        var merged = await MergeAsync([new DiskExtent(0, 512 * KiB, true, true)], bits);
        Assert.Equal([new DirtyExtent(0, 256 * KiB, false, true), new DirtyExtent(256 * KiB, 256 * KiB, true, true)], merged);
    }
}
