namespace QcowActors.Format;

/// <summary>
/// All layout arithmetic in one place: which cluster, L1/L2 slot and refcount slot a byte falls in.
/// Standard L2 entries only (8 bytes); extended L2 is refused before a layout is built.
/// </summary>
public sealed class ClusterLayout
{
    public ClusterLayout(int clusterBits, int refcountOrder)
    {
        if (clusterBits is < QcowLimits.MinClusterBits or > QcowLimits.MaxClusterBits)
            throw new ArgumentOutOfRangeException(nameof(clusterBits));
        if (refcountOrder is < 0 or > QcowLimits.MaxRefcountOrder)
            throw new ArgumentOutOfRangeException(nameof(refcountOrder));
        ClusterBits = clusterBits;
        RefcountOrder = refcountOrder;
        L2Bits = clusterBits - 3;
        // refcount_block_entries = cluster_size * 8 / refcount_bits
        RefcountBlockBits = clusterBits + 3 - refcountOrder;
    }

    public int ClusterBits { get; }
    public int RefcountOrder { get; }
    public int L2Bits { get; }
    public int RefcountBlockBits { get; }

    public int ClusterSize => 1 << ClusterBits;
    public int RefcountBits => 1 << RefcountOrder;
    public int L2Entries => 1 << L2Bits;
    public long RefcountBlockEntries => 1L << RefcountBlockBits;
    /// <summary>Bytes of virtual disk one L2 table maps (512 MiB at 64 KiB clusters).</summary>
    public long L2Coverage => 1L << (ClusterBits + L2Bits);

    public long ClusterIndex(long offset) => offset >> ClusterBits;
    public int OffsetInCluster(long offset) => (int)(offset & (ClusterSize - 1));
    public long ClusterStart(long offset) => offset & ~((long)ClusterSize - 1);
    public long RoundUpToCluster(long bytes) => (bytes + ClusterSize - 1) & ~((long)ClusterSize - 1);
    /// <summary>Rounds up without the overflow that adding cluster_size - 1 would risk near long.MaxValue.</summary>
    public long ClustersFor(long bytes) => (bytes >> ClusterBits) + ((bytes & (ClusterSize - 1)) != 0 ? 1 : 0);

    public long L1Index(long virtualOffset) => virtualOffset >> (ClusterBits + L2Bits);
    public int L2Index(long virtualOffset) => (int)((virtualOffset >> ClusterBits) & (L2Entries - 1));
    public long L2TableStart(long l1Index) => l1Index << (ClusterBits + L2Bits);

    /// <summary>Number of L1 entries needed to map a disk of this many bytes (no overflow near long.MaxValue).</summary>
    public long L1EntriesFor(long virtualSize)
        => (virtualSize >> (ClusterBits + L2Bits)) + ((virtualSize & (L2Coverage - 1)) != 0 ? 1 : 0);

    public long RefcountTableIndex(long hostCluster) => hostCluster >> RefcountBlockBits;
    public int RefcountBlockIndex(long hostCluster) => (int)(hostCluster & (RefcountBlockEntries - 1));
    public long FirstClusterOfRefcountBlock(long tableIndex) => tableIndex << RefcountBlockBits;
}
