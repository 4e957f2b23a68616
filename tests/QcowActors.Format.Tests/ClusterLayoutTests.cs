namespace QcowActors.Format.Tests;

public sealed class ClusterLayoutTests
{
    private const int Bits64K = 16;
    private const long ClusterSize64K = 1L << Bits64K;
    /// <summary>qcow2.txt: an L2 table holds cluster_size / 8 entries, each mapping one cluster.</summary>
    private const long L2Coverage64K = ClusterSize64K * (ClusterSize64K / 8);
    private const long GiB = 1L << 30;

    private static readonly ClusterLayout Layout64K = new(Bits64K, refcountOrder: 4);

    [Theory]
    [InlineData(0, 0, 0)]
    [InlineData(ClusterSize64K - 1, 0, ClusterSize64K - 1)]
    [InlineData(ClusterSize64K, 1, 0)]
    [InlineData(3 * ClusterSize64K + 7, 3, 7)]
    public void Cluster_index_and_offset_at_cluster_edges(long offset, long cluster, int inCluster)
    {
        Assert.Equal(cluster, Layout64K.ClusterIndex(offset));
        Assert.Equal(inCluster, Layout64K.OffsetInCluster(offset));
        Assert.Equal(cluster * ClusterSize64K, Layout64K.ClusterStart(offset));
    }

    [Theory]
    [InlineData(0, 0, 0)]
    [InlineData(1, 1, ClusterSize64K)]
    [InlineData(ClusterSize64K, 1, ClusterSize64K)]
    [InlineData(ClusterSize64K + 1, 2, 2 * ClusterSize64K)]
    public void Rounding_up_to_clusters(long bytes, long clusters, long rounded)
    {
        Assert.Equal(clusters, Layout64K.ClustersFor(bytes));
        Assert.Equal(rounded, Layout64K.RoundUpToCluster(bytes));
    }

    [Fact]
    public void Clusters_for_long_max_value_does_not_overflow()
        => Assert.Equal((long.MaxValue >> Bits64K) + 1, Layout64K.ClustersFor(long.MaxValue));

    [Fact]
    public void L2_table_of_64K_clusters_covers_512_MiB()
    {
        Assert.Equal(8192, Layout64K.L2Entries);
        Assert.Equal(L2Coverage64K, Layout64K.L2Coverage);
        Assert.Equal(512L << 20, Layout64K.L2Coverage);
    }

    [Theory]
    [InlineData(0, 0, 0)]
    [InlineData(ClusterSize64K - 1, 0, 0)]
    [InlineData(ClusterSize64K, 0, 1)]
    [InlineData(L2Coverage64K - 1, 0, 8191)] // last byte of the first L2 table
    [InlineData(L2Coverage64K, 1, 0)] // first byte of the second
    [InlineData(GiB - 1, 1, 8191)] // last byte of a 1 GiB disk
    public void L1_and_L2_index_at_table_edges(long virtualOffset, long l1Index, int l2Index)
    {
        Assert.Equal(l1Index, Layout64K.L1Index(virtualOffset));
        Assert.Equal(l2Index, Layout64K.L2Index(virtualOffset));
        Assert.Equal(l1Index * L2Coverage64K, Layout64K.L2TableStart(l1Index));
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(L2Coverage64K, 1)]
    [InlineData(L2Coverage64K + 1, 2)]
    [InlineData(GiB, 2)]
    public void L1_entries_for_disk_sizes(long size, long entries) => Assert.Equal(entries, Layout64K.L1EntriesFor(size));

    [Fact]
    public void L1_entries_for_the_largest_size_does_not_overflow()
    {
        var layout = new ClusterLayout(QcowLimits.MaxClusterBits, 4);
        long coverage = layout.L2Coverage;
        Assert.Equal(long.MaxValue / coverage + 1, layout.L1EntriesFor(long.MaxValue));
    }

    [Theory]
    [InlineData(16, 4)] // 64 KiB, 16-bit: 32768 entries
    [InlineData(9, 0)] // 512 B, 1-bit: 4096 entries
    [InlineData(21, 6)] // 2 MiB, 64-bit: 262144 entries
    [InlineData(9, 6)] // 512 B, 64-bit: 64 entries
    public void Refcount_indexes_at_block_edges(int clusterBits, int refcountOrder)
    {
        var layout = new ClusterLayout(clusterBits, refcountOrder);
        long entries = (1L << clusterBits) * 8 / (1L << refcountOrder); // qcow2.txt refcount_block_entries
        Assert.Equal(entries, layout.RefcountBlockEntries);
        Assert.Equal(0, layout.RefcountTableIndex(entries - 1));
        Assert.Equal((int)(entries - 1), layout.RefcountBlockIndex(entries - 1));
        Assert.Equal(1, layout.RefcountTableIndex(entries));
        Assert.Equal(0, layout.RefcountBlockIndex(entries));
        Assert.Equal(entries * 5, layout.FirstClusterOfRefcountBlock(5));
    }

    [Theory]
    [InlineData(8, 4)]
    [InlineData(22, 4)]
    [InlineData(16, -1)]
    [InlineData(16, 7)]
    public void Constructor_rejects_out_of_range_parameters(int clusterBits, int refcountOrder)
        => Assert.Throws<ArgumentOutOfRangeException>(() => new ClusterLayout(clusterBits, refcountOrder));
}
