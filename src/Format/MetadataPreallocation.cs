using System.Buffers.Binary;

namespace QcowActors.Format;

/// <summary>
/// <c>preallocation=metadata</c> as qemu-img 7.2 lays it out: after the start layout (header,
/// refcount table, blocks, L1), for each L2 table in order, the table's cluster and then its data
/// clusters, contiguous; a data run that reaches clusters no refcount block covers yet gets a new
/// block at the first free cluster after the run (QEMU counts a run after reserving it). L2 entries
/// are host offset | COPIED with no zero flag (and a zero subcluster bitmap with extended L2), so
/// the data clusters read from the file, where they are holes: zeros, and no disk space used. A
/// size that ends inside a cluster (a subcluster with extended L2) gets the rest of it written as
/// zeros, as QEMU's copy-on-write of the tail does; the file ends there, or at the last table or
/// block if one comes after the data.
///
/// The result matches qemu-img byte for byte (and so <c>qemu-img map</c> offsets) while the
/// refcount table fits its first cluster and one block covers the start layout (64 KiB clusters:
/// up to 16 TiB). Beyond that qemu-img moves a growing table into the middle of the data; this plan
/// sizes the table up front instead, a different layout that is equally valid.
///
/// Nothing is held whole: the writes are made as they are enumerated, one L2 table or block or
/// 1 MiB piece of the L1 / refcount table at a time.
/// </summary>
internal static class MetadataPreallocation
{
    /// <summary>
    /// The largest disk preallocated: the file's length passes the disk's size (plus its metadata),
    /// and ext4 refuses files of 16 TiB; 8 TiB leaves room and covers the disks people preallocate.
    /// </summary>
    public const long MaxVirtualSize = 8L << 40;
    /// <summary>
    /// The most metadata a preallocation writes (synchronously, inside the create request): 8 TiB
    /// at 64 KiB clusters is 1.25 GiB; small clusters reach it first (512-byte clusters: ~100 GiB).
    /// </summary>
    public const long MaxMetadataBytes = 2L << 30;
    /// <summary>Pieces of the L1 and refcount tables are written this large at most.</summary>
    private const int TablePieceBytes = 1 << 20;
    private const ulong Copied = 1UL << 63;

    public static ImagePlan Plan(CreateOptions options, ClusterLayout layout, long size, long l1Entries, int l2EntryBytes)
    {
        if (size > MaxVirtualSize)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "preallocation",
                $"preallocation=metadata is limited to disks of {ByteSize.Format(MaxVirtualSize)}; a {ByteSize.Format(size)} disk " +
                "can be created with preallocation off");
        var shape = new Shape(layout, size, l1Entries, l2EntryBytes);
        long l1Clusters = layout.ClustersFor(l1Entries * ImageCreator.L1EntryBytes);

        // The table must point at every block, including those the data needs: grow it until it does.
        StartLayout start = StartLayout.Solve(layout, l1Clusters, minTableClusters: 1);
        Totals totals;
        while (true)
        {
            totals = Count(shape, start);
            long tableClusters = ImageCreator.DivideRoundingUp(totals.Blocks * ImageCreator.RefcountTableEntryBytes, layout.ClusterSize);
            if (tableClusters <= start.TableClusters)
                break;
            ImageCreator.CheckRefcountTableLimit(layout, tableClusters);
            start = StartLayout.Solve(layout, l1Clusters, tableClusters);
        }
        long metadataBytes = (totals.EndCluster - shape.DataClusters) << layout.ClusterBits;
        if (metadataBytes > MaxMetadataBytes)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "preallocation",
                $"preallocation=metadata of a {ByteSize.Format(size)} disk with {ByteSize.Format(layout.ClusterSize)} clusters writes " +
                $"{ByteSize.Format(metadataBytes)} of tables; the limit is {ByteSize.Format(MaxMetadataBytes)}: use larger clusters or preallocation off");

        var (header, headerBytes) = ImageCreator.BuildHeader(options, layout, size, l1Entries, start);
        return new ImagePlan(header, Writes(shape, start, totals, headerBytes), totals.FileLength);
    }

    /// <summary>The disk's geometry as the allocation walk needs it.</summary>
    private sealed class Shape(ClusterLayout layout, long size, long l1Entries, int l2EntryBytes)
    {
        public ClusterLayout Layout { get; } = layout;
        public long Size { get; } = size;
        public long L1Entries { get; } = l1Entries;
        public int L2EntryBytes { get; } = l2EntryBytes;
        public long L2Entries { get; } = layout.ClusterSize / l2EntryBytes;
        public long DataClusters { get; } = layout.ClustersFor(size);
        /// <summary>
        /// QEMU allocates at most INT_MAX bytes (cluster aligned) per step, so above 64 KiB clusters
        /// one L2 table's data comes in several runs; a block is placed after the run that needs it.
        /// </summary>
        public long RunClusters { get; } = (int.MaxValue & ~((long)layout.ClusterSize - 1)) >> layout.ClusterBits;

        /// <summary>Bytes of the last cluster that QEMU's tail copy-on-write covers: the cluster, or the subcluster, rounded up.</summary>
        public long TailEnd(long bytesInLastCluster)
        {
            long unit = L2EntryBytes == ImageCreator.ExtendedL2EntryBytes ? Layout.ClusterSize / 32 : Layout.ClusterSize;
            return (bytesInLastCluster + unit - 1) / unit * unit;
        }
    }

    private enum Kind { L2Table, Data, RefcountBlock }

    /// <summary>One allocation in QEMU's order: Index is the L1 index (table), first guest cluster (data) or refcount table index (block).</summary>
    private readonly record struct Allocation(Kind Kind, long HostCluster, long Count, long Index);

    private sealed record Totals(long EndCluster, long Blocks, long FileLength);

    private static Totals Count(Shape shape, StartLayout start)
    {
        long blocks = start.Blocks, end = start.EndCluster, fileLength = start.L1Offset;
        foreach (var a in Allocations(shape, start))
        {
            end = a.HostCluster + a.Count;
            if (a.Kind == Kind.RefcountBlock) blocks = a.Index + 1;
            fileLength = a.Kind == Kind.Data && a.Index + a.Count == shape.DataClusters
                ? ((a.HostCluster + a.Count - 1) << shape.Layout.ClusterBits) + shape.TailEnd(LastClusterBytes(shape))
                : end << shape.Layout.ClusterBits;
        }
        return new Totals(end, blocks, fileLength);
    }

    private static long LastClusterBytes(Shape shape) => shape.Size - ((shape.DataClusters - 1) << shape.Layout.ClusterBits);

    private static IEnumerable<Allocation> Allocations(Shape shape, StartLayout start)
    {
        var allocator = new SequentialAllocator(shape.Layout, start.EndCluster, start.Blocks);
        var step = new List<Allocation>(4);
        for (long table = 0; table < shape.L1Entries; table++)
        {
            // QEMU allocates the L2 table (get_cluster_table) before the clusters it maps.
            allocator.Allocate(Kind.L2Table, 1, table, step);
            long first = table * shape.L2Entries, end = Math.Min(first + shape.L2Entries, shape.DataClusters);
            for (long guest = first; guest < end; guest += shape.RunClusters)
                allocator.Allocate(Kind.Data, Math.Min(shape.RunClusters, end - guest), guest, step);
            foreach (var a in step) yield return a;
            step.Clear();
        }
    }

    /// <summary>QEMU's allocator on a new image: nothing is ever freed, so the next free cluster is the end.</summary>
    private sealed class SequentialAllocator(ClusterLayout layout, long firstFree, long coveredRanges)
    {
        private long _next = firstFree;
        private long _covered = coveredRanges;

        public void Allocate(Kind kind, long count, long index, List<Allocation> into)
        {
            long host = _next;
            _next += count;
            into.Add(new Allocation(kind, host, count, index));
            CountRun(host, count, into);
        }

        /// <summary>
        /// Counts a reserved run in order. A cluster in a range with no block yet gets one at the
        /// next free cluster; a block that falls outside its own range is counted in turn, which
        /// can need the next range's block (qcow2-refcount.c alloc_refcount_block).
        /// </summary>
        private void CountRun(long host, long count, List<Allocation> into)
        {
            long entries = layout.RefcountBlockEntries;
            for (long c = host; c < host + count; c = (c / entries + 1) * entries)
            {
                long range = c / entries;
                if (range < _covered) continue;
                if (range > _covered)
                    throw new InvalidOperationException($"allocation skipped refcount range {_covered}: runs must be contiguous");
                long block = _next++;
                _covered++;
                into.Add(new Allocation(Kind.RefcountBlock, block, 1, range));
                CountRun(block, 1, into);
            }
        }
    }

    private static IEnumerable<(long Offset, ReadOnlyMemory<byte> Bytes)> Writes(Shape shape, StartLayout start, Totals totals, byte[] headerBytes)
    {
        var layout = shape.Layout;
        int bits = layout.ClusterBits;
        yield return (0, headerBytes);

        var refcountTable = new TablePieces(start.TableOffset);
        var l1 = new TablePieces(start.L1Offset);
        byte[]? fullBlock = null; // every block but the last holds the same bytes: all ones
        ReadOnlyMemory<byte> Block(long index)
        {
            if (layout.FirstClusterOfRefcountBlock(index + 1) <= totals.EndCluster)
                return fullBlock ??= ImageCreator.OnesBlock(layout, index, totals.EndCluster);
            return ImageCreator.OnesBlock(layout, index, totals.EndCluster);
        }

        for (long b = 0; b < start.Blocks; b++)
        {
            yield return (start.BlockOffset(b), Block(b));
            if (refcountTable.Add((ulong)start.BlockOffset(b)) is { } piece) yield return piece;
        }

        byte[]? table = null;
        long tableHost = 0, tableFirstGuest = 0;
        foreach (var a in Allocations(shape, start))
        {
            switch (a.Kind)
            {
                case Kind.L2Table:
                    if (table is not null) yield return (tableHost << bits, table);
                    table = new byte[layout.ClusterSize];
                    tableHost = a.HostCluster;
                    tableFirstGuest = a.Index * shape.L2Entries;
                    if (l1.Add((ulong)(a.HostCluster << bits) | Copied) is { } l1Piece) yield return l1Piece;
                    break;
                case Kind.Data:
                    for (long i = 0; i < a.Count; i++)
                    {
                        // COPIED, no zero flag: QEMU 7.2 leaves the zero flag (and the subcluster bitmap) clear.
                        int at = (int)((a.Index + i - tableFirstGuest) * shape.L2EntryBytes);
                        BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(at), (ulong)((a.HostCluster + i) << bits) | Copied);
                    }
                    if (a.Index + a.Count == shape.DataClusters)
                    {
                        long lastHost = (a.HostCluster + a.Count - 1) << bits;
                        long used = LastClusterBytes(shape), tailEnd = shape.TailEnd(used);
                        if (tailEnd > used) yield return (lastHost + used, new byte[tailEnd - used]);
                    }
                    break;
                case Kind.RefcountBlock:
                    yield return (a.HostCluster << bits, Block(a.Index));
                    if (refcountTable.Add((ulong)(a.HostCluster << bits)) is { } rtPiece) yield return rtPiece;
                    break;
            }
        }
        if (table is not null) yield return (tableHost << bits, table);
        if (l1.Flush() is { } lastL1) yield return lastL1;
        if (refcountTable.Flush() is { } lastRt) yield return lastRt;
    }

    /// <summary>A table of big-endian u64 entries filled in index order and written in pieces.</summary>
    private sealed class TablePieces(long offset)
    {
        private readonly int _entriesPerPiece = TablePieceBytes / sizeof(ulong);
        private byte[]? _piece;
        private int _count;
        private long _pieceOffset = offset;

        /// <summary>Adds the next entry; returns a full piece to write, or null.</summary>
        public (long, ReadOnlyMemory<byte>)? Add(ulong entry)
        {
            _piece ??= new byte[TablePieceBytes];
            BinaryPrimitives.WriteUInt64BigEndian(_piece.AsSpan(_count * sizeof(ulong)), entry);
            return ++_count == _entriesPerPiece ? Flush() : null;
        }

        public (long, ReadOnlyMemory<byte>)? Flush()
        {
            if (_count == 0) return null;
            var piece = (_pieceOffset, (ReadOnlyMemory<byte>)_piece.AsMemory(0, _count * sizeof(ulong)));
            _pieceOffset += (long)_count * sizeof(ulong);
            _piece = null;
            _count = 0;
            return piece;
        }
    }
}
