using System.Buffers.Binary;
using System.Numerics;

namespace QcowActors.Format;

/// <summary>Parameters of a new v3 image, checked by <see cref="ImageCreator.Plan"/>.</summary>
public sealed record CreateOptions(long VirtualSize, int ClusterSize = 65536, int RefcountBits = 16);

/// <summary>The bytes of a new image: write each chunk at its offset, then set the file length.</summary>
public sealed record ImagePlan(QcowHeader Header, IReadOnlyList<(long Offset, byte[] Bytes)> Writes, long FileLength);

/// <summary>
/// Lays out a new compat 1.1 (v3) image the way qemu-img does: header cluster 0 (header_length
/// 112 with compression_type, feature name table extension above 4 KiB clusters), refcount table
/// from cluster 1, refcount blocks next, then the L1 table; the file ends at the end of the L1
/// table. Where one refcount block covers everything the file is byte for byte what qemu-img 7.2
/// writes; beyond that qemu-img places further blocks after the L1 as it grows, while this plan
/// keeps all blocks before the L1 (equally valid, and no leaks).
/// </summary>
public static class ImageCreator
{
    private const int SectorSize = 512;
    private const int L1EntryBytes = 8;
    private const int RefcountTableEntryBytes = 8;
    /// <summary>qemu-img 7.2 writes compression_type (byte 104) and pads the header to 112.</summary>
    private const uint CreatedHeaderLength = 112;
    private const int HeaderClusters = 1;
    /// <summary>
    /// qemu-img 7.2 adds the feature name table only above 4 KiB clusters (observed): in a smaller
    /// first cluster its 384 bytes would crowd out the backing file name.
    /// </summary>
    private const int FeatureTableMinClusterBits = 13;

    /// <summary>
    /// Virtual size rounds up to a multiple of 512. Throws QcowFormatException (LimitExceeded) when
    /// the L1 table would pass 32 MiB (message names the limit and suggests a larger cluster size)
    /// or the refcount table 8 MiB; (Invalid) for cluster size not a power of two in 512..2 MiB,
    /// refcount bits not a power of two in 1..64, size &lt;= 0.
    /// </summary>
    public static ImagePlan Plan(CreateOptions options)
    {
        int clusterBits = CheckClusterSize(options.ClusterSize);
        int refcountOrder = CheckRefcountBits(options.RefcountBits);
        if (options.VirtualSize <= 0)
            throw new QcowFormatException(QcowProblem.Invalid, "size", $"size {options.VirtualSize} must be positive");
        ulong size = ((ulong)options.VirtualSize + SectorSize - 1) & ~(ulong)(SectorSize - 1);
        long l1Entries = L1EntriesFor(size, clusterBits);

        var layout = new ClusterLayout(clusterBits, refcountOrder);
        long l1Bytes = l1Entries * L1EntryBytes;
        long l1Clusters = layout.ClustersFor(l1Bytes);
        var (tableClusters, blockCount) = SolveRefcountLayout(layout, l1Clusters);
        long tableOffset = (long)HeaderClusters << clusterBits;
        long blocksOffset = tableOffset + ((long)tableClusters << clusterBits);
        long l1Offset = blocksOffset + (blockCount << clusterBits);

        var header = new QcowHeader
        {
            Version = 3,
            ClusterBits = clusterBits,
            Size = (long)size,
            L1Size = (uint)l1Entries,
            L1TableOffset = l1Offset,
            RefcountTableOffset = tableOffset,
            RefcountTableClusters = (uint)tableClusters,
            RefcountOrder = refcountOrder,
            HeaderLength = CreatedHeaderLength,
            CompressionType = QcowCompression.Zlib,
            AdditionalFields = new byte[CreatedHeaderLength - QcowHeader.V3MinLength],
        };
        if (clusterBits >= FeatureTableMinClusterBits)
            header.Extensions.Add(FeatureNameTable.Build());
        var headerCluster = new byte[layout.ClusterSize];
        int headerBytes = header.WriteTo(headerCluster);

        long usedClusters = (l1Offset >> clusterBits) + l1Clusters; // everything up to the end of the L1
        var writes = new List<(long, byte[])>
        {
            (0, headerCluster[..headerBytes]),
            (tableOffset, RefcountTable(layout, tableClusters, blockCount, blocksOffset)),
            (blocksOffset, RefcountBlocks(layout, blockCount, usedClusters)),
        };
        // The L1 stays all zeros (nothing allocated): extending the file to FileLength provides it.
        return new ImagePlan(header, writes, l1Offset + l1Bytes);
    }

    /// <summary>
    /// Finds the smallest refcount table and block count such that the blocks count every cluster in
    /// use (header, table, blocks themselves, L1) and the table points at every block. Growing one
    /// can grow the other, so iterate to the least fixpoint.
    /// </summary>
    internal static (int TableClusters, long Blocks) SolveRefcountLayout(ClusterLayout layout, long l1Clusters)
    {
        long tableClusters = 1, blocks = 1;
        while (true)
        {
            long used = HeaderClusters + tableClusters + blocks + l1Clusters;
            long neededBlocks = DivideRoundingUp(used, layout.RefcountBlockEntries);
            long neededTable = DivideRoundingUp(neededBlocks * RefcountTableEntryBytes, layout.ClusterSize);
            if (neededBlocks <= blocks && neededTable <= tableClusters)
                return ((int)tableClusters, blocks);
            blocks = Math.Max(blocks, neededBlocks);
            tableClusters = Math.Max(tableClusters, neededTable);
            long tableBytes = tableClusters << layout.ClusterBits;
            if (tableBytes > QcowLimits.MaxRefcountTableBytes)
                throw new QcowFormatException(QcowProblem.LimitExceeded, "refcount_table_clusters",
                    $"the image needs a refcount table of {ByteSize.Format(tableBytes)} with {ByteSize.Format(layout.ClusterSize)} " +
                    $"clusters; QEMU's limit is {ByteSize.Format(QcowLimits.MaxRefcountTableBytes)}: use larger clusters or fewer refcount bits");
        }
    }

    private static long L1EntriesFor(ulong size, int clusterBits)
    {
        ulong entries = L1EntriesFor(size, clusterBits, out ulong l1Bytes);
        if (l1Bytes <= QcowLimits.MaxL1Bytes)
            return (long)entries;
        string advice = "no cluster size up to 2 MiB can map it";
        for (int bits = clusterBits + 1; bits <= QcowLimits.MaxClusterBits; bits++)
        {
            L1EntriesFor(size, bits, out ulong biggerL1Bytes);
            if (biggerL1Bytes <= QcowLimits.MaxL1Bytes)
            {
                advice = $"use clusters of at least {ByteSize.Format(1L << bits)}";
                break;
            }
        }
        throw new QcowFormatException(QcowProblem.LimitExceeded, "l1_size",
            $"a {ByteSize.Format(size)} disk needs an L1 table of {ByteSize.Format(l1Bytes)} with {ByteSize.Format(1L << clusterBits)} " +
            $"clusters; QEMU's limit is {ByteSize.Format(QcowLimits.MaxL1Bytes)}: {advice}");
    }

    /// <summary>At least one entry: qemu-img gives even a 512-byte disk an L1 table.</summary>
    private static ulong L1EntriesFor(ulong size, int clusterBits, out ulong l1Bytes)
    {
        int coverageBits = clusterBits + clusterBits - int.Log2(L1EntryBytes); // one L2 table maps cluster_size/8 clusters
        ulong entries = Math.Max(1, (size >> coverageBits) + ((size & ((1UL << coverageBits) - 1)) != 0 ? 1UL : 0UL));
        l1Bytes = entries * L1EntryBytes;
        return entries;
    }

    private static byte[] RefcountTable(ClusterLayout layout, int tableClusters, long blockCount, long blocksOffset)
    {
        var table = new byte[tableClusters << layout.ClusterBits];
        for (long i = 0; i < blockCount; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(i * RefcountTableEntryBytes)),
                (ulong)(blocksOffset + (i << layout.ClusterBits)));
        }
        return table;
    }

    /// <summary>Every cluster from 0 to usedClusters-1 holds exactly one reference.</summary>
    private static byte[] RefcountBlocks(ClusterLayout layout, long blockCount, long usedClusters)
    {
        var blocks = new byte[blockCount << layout.ClusterBits];
        for (long cluster = 0; cluster < usedClusters; cluster++)
        {
            var block = blocks.AsSpan((int)(layout.RefcountTableIndex(cluster) << layout.ClusterBits), layout.ClusterSize);
            RefcountBlock.Set(block, layout.RefcountBlockIndex(cluster), layout.RefcountOrder, 1);
        }
        return blocks;
    }

    private static int CheckClusterSize(int clusterSize)
    {
        int min = 1 << QcowLimits.MinClusterBits, max = 1 << QcowLimits.MaxClusterBits;
        if (clusterSize < min || clusterSize > max || !BitOperations.IsPow2(clusterSize))
            throw new QcowFormatException(QcowProblem.Invalid, "cluster_size",
                $"cluster_size {clusterSize} is not a power of two from {ByteSize.Format(min)} to {ByteSize.Format(max)}");
        return BitOperations.Log2((uint)clusterSize);
    }

    private static int CheckRefcountBits(int refcountBits)
    {
        int max = 1 << QcowLimits.MaxRefcountOrder;
        if (refcountBits < 1 || refcountBits > max || !BitOperations.IsPow2(refcountBits))
            throw new QcowFormatException(QcowProblem.Invalid, "refcount_bits",
                $"refcount_bits {refcountBits} is not a power of two from 1 to {max}");
        return BitOperations.Log2((uint)refcountBits);
    }

    private static long DivideRoundingUp(long value, long divisor) => (value + divisor - 1) / divisor;
}
