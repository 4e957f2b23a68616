using QcowActors.Actors.Image;
using QcowActors.Actors.Service;
using QcowActors.Format;
using Xunit;

namespace QcowActors.Actors.Tests.Units;

/// <summary>The allocator with its fence and quarantine, without actors.</summary>
public sealed class ClusterAllocatorTests
{
    private static readonly ClusterLayout Layout = new(16, 4);

    private static (ClusterAllocator Allocator, FreeClusters Free, MetadataClusters Fences, IoEpochGate Gate) Make(long end, params (long From, long To)[] free)
    {
        var runs = new FreeClusters();
        foreach (var (from, to) in free) runs.Add(from, to);
        var fences = new MetadataClusters(Layout.ClusterBits);
        var gate = new IoEpochGate();
        return (new ClusterAllocator(Layout, end, runs, fences, gate), runs, fences, gate);
    }

    [Fact]
    public void Freed_clusters_go_first_lowest_first_then_the_end_of_the_file_which_reads_as_zeros()
    {
        var (allocator, _, _, _) = Make(10, (7, 9), (3, 4));
        var taken = allocator.Take(5);
        Assert.Equal([3, 7, 8, 10, 11], taken.Clusters);
        Assert.Equal([false, false, false, true, true], taken.Fresh);
        Assert.Equal(12, allocator.EndCluster);
    }

    [Fact]
    public void A_free_cluster_the_fence_holds_is_never_handed_out_and_nothing_is_taken()
    {
        var (allocator, free, fences, _) = Make(20, (2, 6));
        fences.Add(4, MetadataKind.L2Table);
        var e = Assert.Throws<FenceViolationException>(() => allocator.Take(4));
        Assert.Equal(4, e.Cluster);
        Assert.Equal(MetadataKind.L2Table, e.Kind);
        Assert.Contains("an L2 table", e.Message);
        // What was taken before the violation is back; the fenced cluster is not free any more.
        Assert.Equal(3, free.Count);
        Assert.False(free.Contains(4));
        Assert.Equal(20, allocator.EndCluster);
        Assert.Equal([2, 3, 5], allocator.Take(3).Clusters);
    }

    [Fact]
    public void Clusters_freed_by_a_flush_wait_for_the_requests_that_entered_before_it()
    {
        var (allocator, _, _, gate) = Make(100);
        var reader = gate.TryEnter()!; // a read that may have mapped clusters 50 and 51
        allocator.Freed([50, 51]);
        Assert.Equal([100], allocator.Take(1).Clusters); // quarantined while the reader is in flight
        var later = gate.TryEnter()!; // entered after the flush: cannot have mapped them
        reader.Dispose();
        Assert.Equal([50, 51], allocator.Take(2).Clusters);
        later.Dispose();
    }

    [Fact]
    public void Allocation_stops_below_two_to_the_56_bytes_of_file()
    {
        var layout = new ClusterLayout(9, 4);
        long last = (1L << 56) >> 9; // clusters of 512 bytes up to 2^56
        var allocator = new ClusterAllocator(layout, last - 2, new FreeClusters(), new MetadataClusters(9), new IoEpochGate());
        var taken = allocator.Take(2);
        Assert.Equal([last - 2, last - 1], taken.Clusters);
        Assert.True(((taken.Clusters[1] + 1) << 9) - 1 <= (long)QcowLimits.MaxHostOffset);
        var e = Assert.Throws<ImageException>(() => allocator.Take(1));
        Assert.Equal(ImageError.DiskFull, e.Error);
        Assert.Throws<ImageException>(() => allocator.TakeContiguousAtEnd(1));
    }

    [Fact]
    public void Untaken_clusters_come_back_and_the_end_rolls_back()
    {
        var (allocator, free, _, _) = Make(10, (4, 5));
        var taken = allocator.Take(3);
        allocator.Untake(taken);
        Assert.Equal(10, allocator.EndCluster);
        Assert.Equal(1, free.Count);
        Assert.Equal([4, 10, 11], allocator.Take(3).Clusters);
    }

    [Fact]
    public void Free_runs_merge_and_split()
    {
        var free = new FreeClusters();
        free.Add(10, 12);
        free.Add(14, 16);
        free.Add(12, 14);
        Assert.Equal(1, free.Runs);
        Assert.Equal(6, free.Count);
        Assert.True(free.Remove(12));
        Assert.Equal(2, free.Runs);
        Assert.True(free.TryTakeLowest(out long c) && c == 10);
        Assert.Equal(4, free.Count);
    }

    [Fact]
    public void The_fence_tells_data_writes_and_metadata_writes_where_they_may_land()
    {
        var fences = new MetadataClusters(16);
        Assert.Null(fences.AddRange(0, 65536, MetadataKind.Header));
        Assert.Null(fences.AddRange(3 << 16, 16, MetadataKind.L1Table));
        Assert.Equal(MetadataKind.Header, fences.Add(0, MetadataKind.RefcountBlock)); // two structures in one cluster
        Assert.Equal((3L, (MetadataKind?)MetadataKind.L1Table), fences.Overlap((3L << 16) + 100, 10, own: null));
        Assert.Null(fences.Overlap(3L << 16, 8, own: MetadataKind.L1Table));
        Assert.Equal((4L, (MetadataKind?)null), fences.Overlap(4L << 16, 8, own: MetadataKind.L2Table)); // a table where none is known
        fences.Add(9, MetadataKind.L2Table);
        Assert.Equal(MetadataKind.L2Table, fences.Freed(9)); // a live table's count reached 0: a violation
        fences.Retire(9);
        Assert.Null(fences.Freed(9));
        Assert.Null(fences.KindOf(9));
    }
}
