using System.Buffers;
using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Image.Bitmaps;

/// <summary>
/// One rewrite of the bitmap directory, as QEMU lays bitmaps out: new structures in fresh clusters,
/// never in place. Built by <see cref="BitmapKeeper.Plan"/>, given its counted clusters
/// (<see cref="Assign"/>), written by <see cref="WriteAsync"/> (data, then tables, then the
/// directory: all unreferenced until the header names the directory), then committed by the
/// keeper: the header's extension changes, the old clusters are released (after the header is durable).
/// </summary>
internal sealed class BitmapStorePlan
{
    /// <summary>A bitmap that gets a new table: its chunks' states and, once assigned, its table's entries.</summary>
    internal sealed class NewTable(PersistentBitmap bitmap, ChunkState[] chunks)
    {
        public PersistentBitmap Bitmap { get; } = bitmap;
        public ChunkState[] Chunks { get; } = chunks;
        public ulong[] Entries { get; } = new ulong[chunks.Length];
        public long TableOffset { get; set; }
        public List<long> Clusters { get; } = [];
    }

    private readonly ClusterLayout _layout;

    public BitmapStorePlan(ClusterLayout layout, bool closing, List<PersistentBitmap> bitmaps, List<NewTable> tables, long[] release)
    {
        _layout = layout;
        Closing = closing;
        Bitmaps = bitmaps;
        Tables = tables;
        Release = release;
        int cs = layout.ClusterSize;
        foreach (var t in tables)
            ClustersNeeded += TableClusters(t) + t.Chunks.Count(c => c == ChunkState.Mixed);
        if (bitmaps.Count > 0)
        {
            // Sizing needs no offsets: every entry's size depends on its name and extra data only.
            DirectoryBytes = BitmapDirectory.SizeOf([.. bitmaps.Select(b => Entry(b, 0, 0))]);
            ClustersNeeded += (DirectoryBytes + cs - 1) / cs;
        }
        Contiguous = tables.Any(t => TableClusters(t) > 1) || DirectoryBytes > cs;
    }

    /// <summary>At close: every consistent bitmap's bits are stored and <c>in_use</c> is cleared.</summary>
    public bool Closing { get; }
    /// <summary>The bitmaps the new directory lists, in order.</summary>
    public List<PersistentBitmap> Bitmaps { get; }
    public List<NewTable> Tables { get; }
    /// <summary>Clusters the old directory, and the tables and data replaced or removed, held: released once the header no longer names them.</summary>
    public long[] Release { get; }
    public int ClustersNeeded { get; }
    /// <summary>A table or the directory spans clusters: everything is taken as one run (contiguous), else cluster by cluster.</summary>
    public bool Contiguous { get; }
    public int DirectoryBytes { get; }
    public long DirectoryOffset { get; private set; }
    public long[] DirectoryClusters { get; private set; } = [];
    public List<BitmapDirectoryEntry> Directory { get; } = [];
    /// <summary>Every cluster assigned, with what it will hold (the caller fences them).</summary>
    public List<(long Cluster, MetadataKind Kind)> Assigned { get; } = [];

    private int TableClusters(NewTable t) => (int)(((long)t.Chunks.Length * 8 + _layout.ClusterSize - 1) / _layout.ClusterSize);

    /// <summary>In use while the image is open, and always for an inconsistent bitmap.</summary>
    private BitmapFlags FlagsOf(PersistentBitmap b) => b.FlagsFor(inUse: !Closing || !b.Consistent);

    private BitmapDirectoryEntry Entry(PersistentBitmap b, long tableOffset, int tableSize)
        => new(tableOffset, tableSize, FlagsOf(b), b.GranularityBits, b.Name, b.ExtraData);

    /// <summary>Places data, tables and directory in the clusters taken (in that order; a run when <see cref="Contiguous"/>).</summary>
    public void Assign(long[] clusters)
    {
        int next = 0;
        int bits = _layout.ClusterBits;
        foreach (var t in Tables)
        {
            for (int k = 0; k < t.Chunks.Length; k++)
            {
                t.Entries[k] = t.Chunks[k] switch
                {
                    ChunkState.Ones => BitmapTable.AllOnes,
                    ChunkState.Mixed => (ulong)(clusters[next] << bits),
                    _ => 0,
                };
                if (t.Chunks[k] == ChunkState.Mixed)
                {
                    Assigned.Add((clusters[next], MetadataKind.BitmapData));
                    t.Clusters.Add(clusters[next++]);
                }
            }
            t.TableOffset = clusters[next] << bits;
            for (int k = TableClusters(t); k > 0; k--)
            {
                Assigned.Add((clusters[next], MetadataKind.BitmapTable));
                t.Clusters.Add(clusters[next++]);
            }
        }
        if (Bitmaps.Count == 0) return;
        DirectoryOffset = clusters[next] << bits;
        DirectoryClusters = clusters[next..];
        foreach (long c in DirectoryClusters) Assigned.Add((c, MetadataKind.BitmapDirectory));
        foreach (var b in Bitmaps)
        {
            var t = Tables.Find(x => x.Bitmap == b);
            Directory.Add(t is null ? b.Stored! with { Flags = FlagsOf(b) } : Entry(b, t.TableOffset, t.Chunks.Length));
        }
    }

    /// <summary>
    /// Writes the data clusters, tables and directory (no fsync: the flush that writes the header
    /// syncs data first). Each bitmap's bits are read as they are now: at close nothing marks them
    /// any more; while open, a stored bitmap is <c>in_use</c> and its bits are not trusted anyway.
    /// </summary>
    public Task WriteAsync(IImageFile file, CancellationToken ct)
        => WriteAsync((bytes, offset, token) => file.WriteAsync(bytes, offset, token), ct);

    /// <summary>As <see cref="WriteAsync(IImageFile, CancellationToken)"/>, through <paramref name="write"/> (a metadata rewrite's fresh region).</summary>
    public async Task WriteAsync(Func<ReadOnlyMemory<byte>, long, CancellationToken, ValueTask> write, CancellationToken ct)
    {
        int cs = _layout.ClusterSize;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(cs);
        try
        {
            foreach (var t in Tables)
            {
                for (int k = 0; k < t.Chunks.Length; k++)
                {
                    if (t.Chunks[k] != ChunkState.Mixed) continue;
                    buffer.AsSpan(0, cs).Clear();
                    t.Bitmap.Bits!.WriteChunk(k, buffer.AsSpan(0, cs));
                    await write(buffer.AsMemory(0, cs), (long)(t.Entries[k] & BitmapTable.OffsetMask), ct).ConfigureAwait(false);
                }
                var table = new byte[(long)TableClustersBytes(t)];
                BitmapTable.WriteEntries(t.Entries, table);
                await write(table, t.TableOffset, ct).ConfigureAwait(false);
            }
            if (Bitmaps.Count == 0) return;
            var directory = new byte[DirectoryClusters.Length * (long)cs];
            BitmapDirectory.Write(Directory, directory);
            await write(directory, DirectoryOffset, ct).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private long TableClustersBytes(NewTable t) => (long)TableClusters(t) * _layout.ClusterSize;

    /// <summary>The header extension for the new directory, or null when no bitmap is left.</summary>
    public BitmapsExtension? Extension
        => Bitmaps.Count == 0 ? null : new BitmapsExtension((uint)Bitmaps.Count, DirectoryBytes, DirectoryOffset);
}
