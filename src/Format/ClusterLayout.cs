namespace QcowActors.Format;

/// <summary>
/// All layout arithmetic in one place: which cluster, L1/L2 slot, subcluster and refcount slot a
/// byte falls in. Standard L2 entries are 8 bytes; extended ones 16 (the entry, then its
/// subcluster bitmap), so an extended table maps half as many clusters.
/// </summary>
public sealed class ClusterLayout
{
    /// <summary>An extended L2 entry's cluster is split into this many subclusters.</summary>
    public const int Subclusters = 32;

    public ClusterLayout(int clusterBits, int refcountOrder, bool extendedL2 = false)
    {
        if (clusterBits is < QcowLimits.MinClusterBits or > QcowLimits.MaxClusterBits)
            throw new ArgumentOutOfRangeException(nameof(clusterBits));
        if (refcountOrder is < 0 or > QcowLimits.MaxRefcountOrder)
            throw new ArgumentOutOfRangeException(nameof(refcountOrder));
        ClusterBits = clusterBits;
        RefcountOrder = refcountOrder;
        ExtendedL2 = extendedL2;
        L2Bits = clusterBits - (extendedL2 ? 4 : 3);
        // refcount_block_entries = cluster_size * 8 / refcount_bits
        RefcountBlockBits = clusterBits + 3 - refcountOrder;
    }

    public int ClusterBits { get; }
    public int RefcountOrder { get; }
    /// <summary>Incompatible bit 4: 128-bit L2 entries with a subcluster bitmap.</summary>
    public bool ExtendedL2 { get; }
    /// <summary>64-bit words per L2 entry: the entry, and with extended L2 its bitmap after it.</summary>
    public int L2EntryWords => ExtendedL2 ? 2 : 1;
    /// <summary>Bytes of one subcluster (extended L2 only).</summary>
    public int SubclusterSize => ClusterSize / Subclusters;
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
