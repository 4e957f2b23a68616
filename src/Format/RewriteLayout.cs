namespace QcowActors.Format;

/// <summary>
/// Where a metadata rewrite puts its new structures: all of them in fresh clusters from the end of
/// the file on, none referenced until one header write switches to them, so a crash before that write
/// leaves the old image untouched and one after it the new one, whole. In order: the active L1 table,
/// the snapshot table, the refcount table, one refcount block for every block index up to the new end
/// (a block covers itself and everything else), the slots for copied L2 tables, taken in order
/// (unused ones are never written and stay free), and last any extra clusters (the persistent
/// bitmaps rewritten for a new disk size). The refcount structure must
/// cover what it counts, which includes itself: the sizes are found by iterating to a fixpoint.
/// </summary>
public sealed record RewriteLayout(
    long FirstCluster,
    long L1Cluster, long L1Clusters,
    long SnapshotTableCluster, long SnapshotTableClusters,
    long RefcountTableCluster, long RefcountTableClusters,
    long FirstBlockCluster, long Blocks,
    long FirstCopyCluster, long CopySlots,
    long ExtraClusters = 0)
{
    /// <summary>The first of <see cref="ExtraClusters"/>, after the copy slots.</summary>
    public long FirstExtraCluster => FirstCopyCluster + CopySlots;

    /// <summary>One past the last cluster the layout may use.</summary>
    public long EndCluster => FirstExtraCluster + ExtraClusters;

    /// <param name="fileClusters">Clusters of the file now (its length rounded up): the fresh region starts here.</param>
    /// <param name="l1Entries">Entries of the new active L1 (at least one cluster is used even for 0).</param>
    /// <param name="snapshotTableBytes">0 when no snapshot remains.</param>
    /// <param name="copySlots">Most L2 tables that may need a copy (the allocated entries of the new active L1).</param>
    /// <param name="extraClusters">Clusters for other structures, contiguous, at the end.</param>
    public static RewriteLayout Plan(ClusterLayout layout, long fileClusters, long l1Entries, long snapshotTableBytes, long copySlots, long extraClusters = 0)
    {
        long l1Clusters = Math.Max(1, layout.ClustersFor(l1Entries * 8));
        long snapClusters = layout.ClustersFor(snapshotTableBytes);
        long fixedClusters = l1Clusters + snapClusters + copySlots + extraClusters;
        long rtClusters = 1, blocks = 1;
        for (int round = 0; round < 64; round++)
        {
            long end = fileClusters + fixedClusters + rtClusters + blocks;
            long needBlocks = (end + layout.RefcountBlockEntries - 1) >> layout.RefcountBlockBits;
            long needRt = Math.Max(1, layout.ClustersFor(needBlocks * 8));
            if (needBlocks == blocks && needRt == rtClusters) break;
            blocks = needBlocks;
            rtClusters = needRt;
        }
        if (rtClusters * layout.ClusterSize > QcowLimits.MaxRefcountTableBytes)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "refcount_table_clusters",
                $"the refcount table would need {rtClusters} clusters, over QEMU's {ByteSize.Format(QcowLimits.MaxRefcountTableBytes)} limit");
        long l1 = fileClusters;
        long snap = l1 + l1Clusters;
        long rt = snap + snapClusters;
        long firstBlock = rt + rtClusters;
        long firstCopy = firstBlock + blocks;
        if (((firstCopy + copySlots + extraClusters) << layout.ClusterBits) > (long)QcowLimits.MaxHostOffset)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "file size", "the image file would grow past 2^56 bytes");
        return new RewriteLayout(fileClusters, l1, l1Clusters, snap, snapClusters, rt, rtClusters, firstBlock, blocks, firstCopy, copySlots, extraClusters);
    }
}
