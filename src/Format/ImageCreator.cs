using System.Buffers.Binary;
using System.Numerics;

namespace QcowActors.Format;

/// <summary>
/// The bytes of a new image: write each chunk at its offset, in order, then set the file length.
/// The chunks are made as they are enumerated (a preallocated 1 TiB image is 160 MiB of tables), so
/// a writer holds one at a time; enumerating again makes them again.
/// </summary>
public sealed record ImagePlan(QcowHeader Header, IEnumerable<(long Offset, ReadOnlyMemory<byte> Bytes)> Writes, long FileLength);

/// <summary>
/// Lays out a new image the way qemu-img 7.2 does: header cluster 0 (v3: header_length 112 with
/// compression_type, feature name table extension above 4 KiB clusters; v2: 72 bytes, no
/// extensions), refcount table from cluster 1, refcount blocks next, then the L1 table; without
/// preallocation the file ends at the end of the L1 table. Where one refcount block covers that the
/// file is byte for byte what qemu-img writes; beyond that qemu-img places further blocks after the
/// L1 as it grows, while this plan keeps all blocks before the L1 (equally valid, and no leaks).
/// With <see cref="Preallocation.Metadata"/> the tables and data clusters follow
/// (<see cref="MetadataPreallocation"/>).
/// </summary>
public static class ImageCreator
{
    internal const int SectorSize = 512;
    internal const int L1EntryBytes = 8;
    internal const int RefcountTableEntryBytes = 8;
    internal const int L2EntryBytes = 8;
    internal const int ExtendedL2EntryBytes = 16;
    /// <summary>qemu-img 7.2 writes compression_type (byte 104) and pads the header to 112.</summary>
    private const uint CreatedHeaderLength = 112;
    internal const int HeaderClusters = 1;
    /// <summary>
    /// qemu-img 7.2 adds the feature name table only above 4 KiB clusters (observed): in a smaller
    /// first cluster its 384 bytes would crowd out the backing file name.
    /// </summary>
    private const int FeatureTableMinClusterBits = 13;

    /// <summary>
    /// Virtual size rounds up to a multiple of 512. Throws QcowFormatException (LimitExceeded) when
    /// the L1 table would pass 32 MiB (message names the limit and suggests a larger cluster size),
    /// the refcount table 8 MiB, or a preallocation its limits (<see cref="MetadataPreallocation"/>);
    /// (Invalid) for cluster size not a power of two in 512..2 MiB, refcount bits not a power of two
    /// in 1..64, size &lt;= 0, and option combinations qemu-img refuses (see <see cref="CheckVersionRules"/>).
    /// </summary>
    public static ImagePlan Plan(CreateOptions options)
    {
        int clusterBits = CheckClusterSize(options.ClusterSize);
        int refcountOrder = CheckRefcountBits(options.RefcountBits);
        CheckVersionRules(options, clusterBits);
        if (options.VirtualSize <= 0)
            throw new QcowFormatException(QcowProblem.Invalid, "size", $"size {options.VirtualSize} must be positive");
        ulong size = ((ulong)options.VirtualSize + SectorSize - 1) & ~(ulong)(SectorSize - 1);
        int l2EntryBytes = options.ExtendedL2 ? ExtendedL2EntryBytes : L2EntryBytes;
        long l1Entries = L1EntriesFor(size, clusterBits, l2EntryBytes);
        var layout = new ClusterLayout(clusterBits, refcountOrder);

        if (options.Preallocation == Preallocation.Metadata)
            return MetadataPreallocation.Plan(options, layout, (long)size, l1Entries, l2EntryBytes);

        long l1Bytes = l1Entries * L1EntryBytes;
        var start = StartLayout.Solve(layout, layout.ClustersFor(l1Bytes), minTableClusters: 1);
        var (header, headerBytes) = BuildHeader(options, layout, (long)size, l1Entries, start);
        long usedClusters = start.EndCluster; // everything up to the end of the L1
        var writes = new List<(long, ReadOnlyMemory<byte>)>
        {
            (0, headerBytes),
            (start.TableOffset, RefcountTable(layout, start)),
        };
        for (long b = 0; b < start.Blocks; b++)
            writes.Add((start.BlockOffset(b), OnesBlock(layout, b, usedClusters)));
        // The L1 stays all zeros (nothing allocated): extending the file to FileLength provides it.
        return new ImagePlan(header, writes, start.L1Offset + l1Bytes);
    }

    /// <summary>
    /// What qemu-img 7.2 refuses, with its reasons: compat 0.10 has no feature bits, no
    /// compression_type field and refcount_order fixed at 4; subclusters need 32 of at least 512
    /// bytes, so clusters of 16 KiB or more.
    /// </summary>
    private static void CheckVersionRules(CreateOptions o, int clusterBits)
    {
        if (o.Version is not (2 or 3))
            throw new QcowFormatException(QcowProblem.Invalid, "version", $"version {o.Version} is not 2 (compat 0.10) or 3 (compat 1.1)");
        if (o.CompressionType is not (QcowCompression.Zlib or QcowCompression.Zstd))
            throw new QcowFormatException(QcowProblem.Invalid, "compression_type", $"compression_type {o.CompressionType} is not zlib (0) or zstd (1)");
        if (o.Version == 2)
        {
            string Needs(string what) => $"{what} needs version 3 (compat 1.1); version 2 (compat 0.10) images cannot express it";
            if (o.RefcountBits != 16)
                throw new QcowFormatException(QcowProblem.Invalid, "refcount_bits",
                    $"refcount_bits {o.RefcountBits} needs version 3 (compat 1.1): version 2 (compat 0.10) images have 16-bit refcounts");
            if (o.ExtendedL2) throw new QcowFormatException(QcowProblem.Invalid, "extended_l2", Needs("extended L2 entries"));
            if (o.CompressionType != QcowCompression.Zlib) throw new QcowFormatException(QcowProblem.Invalid, "compression_type", Needs("compression type zstd"));
            if (o.LazyRefcounts) throw new QcowFormatException(QcowProblem.Invalid, "lazy_refcounts", Needs("lazy refcounts"));
        }
        if (o.ExtendedL2 && clusterBits < QcowLimits.MinExtendedL2ClusterBits)
            throw new QcowFormatException(QcowProblem.Invalid, "cluster_size",
                $"extended L2 entries need clusters of at least {ByteSize.Format(1L << QcowLimits.MinExtendedL2ClusterBits)} " +
                $"(32 subclusters of at least 512 bytes), not {ByteSize.Format(1L << clusterBits)}");
    }

    internal static (QcowHeader Header, byte[] Bytes) BuildHeader(CreateOptions o, ClusterLayout layout, long size, long l1Entries, StartLayout start)
    {
        var header = new QcowHeader
        {
            Version = (uint)o.Version,
            ClusterBits = layout.ClusterBits,
            Size = size,
            L1Size = (uint)l1Entries,
            L1TableOffset = start.L1Offset,
            RefcountTableOffset = start.TableOffset,
            RefcountTableClusters = (uint)start.TableClusters,
            RefcountOrder = layout.RefcountOrder,
        };
        if (o.BackingFile is not null)
        {
            // qemu-img's order: the backing format first, then the feature name table; the name after the extensions.
            header.BackingFile = o.BackingFile;
            header.Extensions.Add(new HeaderExtension(HeaderExtensionType.BackingFormat,
                System.Text.Encoding.UTF8.GetBytes(o.BackingFormat ?? throw new QcowFormatException(QcowProblem.Invalid, "backing_format", "a backing file needs its format"))));
        }
        if (o.Version == 3)
        {
            header.HeaderLength = CreatedHeaderLength;
            header.CompressionType = o.CompressionType;
            header.AdditionalFields = new byte[CreatedHeaderLength - QcowHeader.V3MinLength];
            if (o.CompressionType != QcowCompression.Zlib) header.IncompatibleFeatures |= FeatureBits.IncompatibleCompressionType;
            if (o.ExtendedL2) header.IncompatibleFeatures |= FeatureBits.IncompatibleExtendedL2;
            if (o.LazyRefcounts) header.CompatibleFeatures |= FeatureBits.CompatibleLazyRefcounts;
            if (layout.ClusterBits >= FeatureTableMinClusterBits)
                header.Extensions.Add(FeatureNameTable.Build());
        }
        var cluster = new byte[layout.ClusterSize];
        int used = header.WriteTo(cluster);
        return (header, cluster[..used]);
    }

    /// <summary>
    /// Finds the smallest refcount table and block count such that the blocks count every cluster in
    /// use (header, table, blocks themselves, L1) and the table points at every block. Growing one
    /// can grow the other, so iterate to the least fixpoint.
    /// </summary>
    internal static (int TableClusters, long Blocks) SolveRefcountLayout(ClusterLayout layout, long l1Clusters, long minTableClusters = 1)
    {
        long tableClusters = minTableClusters, blocks = 1;
        while (true)
        {
            long used = HeaderClusters + tableClusters + blocks + l1Clusters;
            long neededBlocks = DivideRoundingUp(used, layout.RefcountBlockEntries);
            long neededTable = DivideRoundingUp(neededBlocks * RefcountTableEntryBytes, layout.ClusterSize);
            if (neededBlocks <= blocks && neededTable <= tableClusters)
                return ((int)tableClusters, blocks);
            blocks = Math.Max(blocks, neededBlocks);
            tableClusters = Math.Max(tableClusters, neededTable);
            CheckRefcountTableLimit(layout, tableClusters);
        }
    }

    internal static void CheckRefcountTableLimit(ClusterLayout layout, long tableClusters)
    {
        long tableBytes = tableClusters << layout.ClusterBits;
        if (tableBytes > QcowLimits.MaxRefcountTableBytes)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "refcount_table_clusters",
                $"the image needs a refcount table of {ByteSize.Format(tableBytes)} with {ByteSize.Format(layout.ClusterSize)} " +
                $"clusters; QEMU's limit is {ByteSize.Format(QcowLimits.MaxRefcountTableBytes)}: use larger clusters or fewer refcount bits");
    }

    private static long L1EntriesFor(ulong size, int clusterBits, int l2EntryBytes)
    {
        ulong entries = L1EntriesFor(size, clusterBits, l2EntryBytes, out ulong l1Bytes);
        if (l1Bytes <= QcowLimits.MaxL1Bytes)
            return (long)entries;
        string advice = "no cluster size up to 2 MiB can map it";
        for (int bits = clusterBits + 1; bits <= QcowLimits.MaxClusterBits; bits++)
        {
            L1EntriesFor(size, bits, l2EntryBytes, out ulong biggerL1Bytes);
            if (biggerL1Bytes <= QcowLimits.MaxL1Bytes)
            {
                advice = $"use clusters of at least {ByteSize.Format(1L << bits)}";
                break;
            }
        }
        throw new QcowFormatException(QcowProblem.LimitExceeded, "l1_size",
            $"a {ByteSize.Format(size)} disk needs an L1 table of {ByteSize.Format(l1Bytes)} with {ByteSize.Format(1L << clusterBits)} " +
            $"clusters{(l2EntryBytes == ExtendedL2EntryBytes ? " and extended L2 entries" : "")}; " +
            $"QEMU's limit is {ByteSize.Format(QcowLimits.MaxL1Bytes)}: {advice}");
    }

    /// <summary>At least one entry: qemu-img gives even a 512-byte disk an L1 table. One L2 table maps cluster_size/entry-size clusters.</summary>
    private static ulong L1EntriesFor(ulong size, int clusterBits, int l2EntryBytes, out ulong l1Bytes)
    {
        int coverageBits = clusterBits + clusterBits - int.Log2(l2EntryBytes);
        ulong entries = Math.Max(1, (size >> coverageBits) + ((size & ((1UL << coverageBits) - 1)) != 0 ? 1UL : 0UL));
        l1Bytes = entries * L1EntryBytes;
        return entries;
    }

    private static byte[] RefcountTable(ClusterLayout layout, StartLayout start)
    {
        var table = new byte[start.TableClusters << layout.ClusterBits];
        for (long i = 0; i < start.Blocks; i++)
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(i * RefcountTableEntryBytes)), (ulong)start.BlockOffset(i));
        return table;
    }

    /// <summary>Refcount block <paramref name="tableIndex"/> when every cluster below <paramref name="usedClusters"/> holds one reference.</summary>
    internal static byte[] OnesBlock(ClusterLayout layout, long tableIndex, long usedClusters)
    {
        var block = new byte[layout.ClusterSize];
        long first = layout.FirstClusterOfRefcountBlock(tableIndex);
        long count = Math.Clamp(usedClusters - first, 0, layout.RefcountBlockEntries);
        for (long i = 0; i < count; i++)
            RefcountBlock.Set(block, i, layout.RefcountOrder, 1);
        return block;
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

    internal static long DivideRoundingUp(long value, long divisor) => (value + divisor - 1) / divisor;
}

/// <summary>
/// Where a new image's first structures go: header (cluster 0), refcount table from cluster 1,
/// its blocks, then the L1 table. <see cref="EndCluster"/> is the first cluster after the L1.
/// </summary>
internal sealed record StartLayout(int ClusterBits, int TableClusters, long Blocks, long L1Clusters)
{
    public long TableOffset => (long)ImageCreator.HeaderClusters << ClusterBits;
    public long BlocksOffset => TableOffset + ((long)TableClusters << ClusterBits);
    public long BlockOffset(long index) => BlocksOffset + (index << ClusterBits);
    public long L1Offset => BlocksOffset + (Blocks << ClusterBits);
    public long EndCluster => (L1Offset >> ClusterBits) + L1Clusters;

    public static StartLayout Solve(ClusterLayout layout, long l1Clusters, long minTableClusters)
    {
        var (tableClusters, blocks) = ImageCreator.SolveRefcountLayout(layout, l1Clusters, minTableClusters);
        return new StartLayout(layout.ClusterBits, tableClusters, blocks, l1Clusters);
    }
}
