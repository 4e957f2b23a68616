using System.Buffers;
using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Image.Bitmaps;

/// <summary>The bitmaps extension as found at open: its directory and each bitmap's table, decoded and validated.</summary>
internal sealed record StoredBitmaps(BitmapsExtension Extension, IReadOnlyList<BitmapDirectoryEntry> Entries, IReadOnlyList<BitmapTableEntry[]> Tables)
{
    /// <summary>The clusters of [offset, offset+bytes).</summary>
    public static IEnumerable<long> ClustersIn(long offset, long bytes, int clusterBits)
    {
        for (long c = offset >> clusterBits; bytes > 0 && c <= (offset + bytes - 1) >> clusterBits; c++) yield return c;
    }

    /// <summary>The clusters the directory occupies.</summary>
    public long[] DirectoryClusters(int clusterBits) => [.. ClustersIn(Extension.DirectoryOffset, Extension.DirectorySize, clusterBits)];

    /// <summary>The clusters of one bitmap's table and data.</summary>
    public long[] ClustersOf(int index, int clusterBits)
        => [.. ClustersIn(Entries[index].TableOffset, (long)Entries[index].TableSize * 8, clusterBits),
            .. Tables[index].Where(t => t.Kind == BitmapTableEntryKind.Data).Select(t => t.Offset >> clusterBits)];

    /// <summary>Every cluster the bitmaps hold, with what it holds (for the fence and for counting references).</summary>
    public IEnumerable<(long Offset, long Bytes, MetadataKind Kind, string What)> Structures(int clusterSize)
    {
        yield return (Extension.DirectoryOffset, Extension.DirectorySize, MetadataKind.BitmapDirectory, "the bitmap directory");
        for (int i = 0; i < Entries.Count; i++)
        {
            var e = Entries[i];
            yield return (e.TableOffset, (long)e.TableSize * 8, MetadataKind.BitmapTable, $"the table of bitmap '{e.Name}'");
            foreach (var t in Tables[i])
                if (t.Kind == BitmapTableEntryKind.Data)
                    yield return (t.Offset, clusterSize, MetadataKind.BitmapData, $"data of bitmap '{e.Name}'");
        }
    }
}

/// <summary>
/// Reads the persistent bitmaps at open (QEMU's checks, in <see cref="BitmapDirectory"/> and
/// <see cref="BitmapTable"/>) and, for an image opened for writing, sets <c>in_use</c> on each
/// consistent one in place before any write — the flags field of an entry never straddles a sector,
/// so a torn write leaves each bitmap either still consistent (nothing written yet) or in use.
/// </summary>
internal static class BitmapLoader
{
    /// <summary>The stored bitmaps, or null when the image has none (or a writer without bitmap support cleared autoclear bit 0: QEMU ignores them then).</summary>
    /// <param name="maxTableBytes">
    /// The most the tables may claim together (the per-image budget): they are read whole, and an
    /// in-use bitmap's table is not size-checked, so a hostile file could claim gigabytes.
    /// </param>
    public static async Task<StoredBitmaps?> ReadDirectoryAsync(IImageFile file, QcowHeader header, CancellationToken ct, long maxTableBytes = long.MaxValue)
    {
        if (header.FindExtension(HeaderExtensionType.Bitmaps) is not { } raw) return null;
        if ((header.AutoclearFeatures & FeatureBits.AutoclearBitmaps) == 0) return null;
        long length = file.Length;
        var extension = BitmapsExtension.Parse(raw.Data, length, header.ClusterBits);
        var directory = new byte[extension.DirectorySize];
        await file.ReadAsync(directory, extension.DirectoryOffset, ct).ConfigureAwait(false);
        var entries = BitmapDirectory.Parse(directory, extension.Count, header.Size, header.ClusterBits, length);
        long tableBytes = entries.Sum(e => (long)e.TableSize * 8);
        if (tableBytes > length || tableBytes > maxTableBytes)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "bitmap_table_size",
                $"the bitmap tables claim {tableBytes} bytes together, more than {(tableBytes > length ? $"the file's {length}" : $"the per-image metadata budget's {maxTableBytes}")}");
        var tables = new List<BitmapTableEntry[]>(entries.Count);
        foreach (var e in entries)
        {
            var bytes = new byte[(long)e.TableSize * 8];
            await file.ReadAsync(bytes, e.TableOffset, ct).ConfigureAwait(false);
            tables.Add([.. BitmapTable.ParseEntries(bytes).Select(raw => BitmapTable.Decode(raw, header.ClusterBits, length))]); // throws on a bad entry
        }
        return new StoredBitmaps(extension, entries, tables);
    }

    /// <summary>
    /// The bitmaps' bits: a consistent bitmap is read chunk by chunk (one pooled cluster at a time),
    /// its memory reserved first through <paramref name="reserve"/>; an inconsistent one is kept as
    /// stored, and so is every one when <paramref name="withBits"/> is false (too large to keep here).
    /// </summary>
    public static async Task<List<PersistentBitmap>> LoadAsync(IImageFile file, QcowHeader header, StoredBitmaps stored,
        Func<long, Task> reserve, CancellationToken ct, bool withBits = true)
    {
        int cs = header.ClusterSize;
        var bitmaps = new List<PersistentBitmap>(stored.Entries.Count);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(cs);
        try
        {
            for (int i = 0; i < stored.Entries.Count; i++)
            {
                var e = stored.Entries[i];
                DirtyBits? bits = null;
                if (!e.InUse && withBits)
                {
                    await reserve(PersistentBitmap.MemoryFor(header.Size, e.GranularityBits)).ConfigureAwait(false);
                    bits = new DirtyBits(header.Size, e.GranularityBits);
                    var table = stored.Tables[i];
                    for (int k = 0; k < table.Length; k++)
                    {
                        var t = table[k];
                        if (t.Kind == BitmapTableEntryKind.Ones) bits.LoadChunkAllOnes(k, cs);
                        else if (t.Kind == BitmapTableEntryKind.Data)
                        {
                            await file.ReadAsync(buffer.AsMemory(0, cs), t.Offset, ct).ConfigureAwait(false);
                            bits.LoadChunk(k, buffer.AsSpan(0, cs));
                        }
                    }
                }
                bitmaps.Add(new PersistentBitmap(e.Name, e.GranularityBits, e.Auto, bits, e.ExtraData)
                {
                    Stored = e,
                    StoredClusters = stored.ClustersOf(i, header.ClusterBits),
                });
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return bitmaps;
    }

    /// <summary>Sets <c>in_use</c> on every consistent bitmap's stored entry, in place, and makes it durable.</summary>
    public static async Task MarkInUseAsync(IImageFile file, StoredBitmaps stored, List<PersistentBitmap> bitmaps, CancellationToken ct)
    {
        var entries = new List<BitmapDirectoryEntry>(stored.Entries.Count);
        for (int i = 0; i < bitmaps.Count; i++)
        {
            var b = bitmaps[i];
            b.Stored = b.Stored! with { Flags = b.Stored.Flags | BitmapFlags.InUse };
            entries.Add(b.Stored);
        }
        var directory = new byte[stored.Extension.DirectorySize];
        BitmapDirectory.Write(entries, directory);
        await file.WriteAsync(directory, stored.Extension.DirectoryOffset, ct).ConfigureAwait(false);
        await file.FsyncAsync(ct).ConfigureAwait(false);
    }
}
