using System.Buffers.Binary;
using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// Opens an image: parses the header, reads L1, the refcount table and blocks, decides what is
/// refused (features not built yet), repairs refcounts of an image that was not closed cleanly
/// (our open marker left behind) or carries the dirty bit, and finds the free clusters.
/// </summary>
internal static class ImageOpener
{
    private const ulong RefcountTableOffsetMask = ~511UL;

    /// <param name="keepRefcountBytes">Refcount blocks kept in memory after open (the first ones); the rest are read once, for the free clusters, and dropped.</param>
    public static async Task<OpenedImage> OpenAsync(string path, string markerPath, IImageFileSystem fs, long keepRefcountBytes, CancellationToken ct)
    {
        IImageFile file;
        bool writable = true;
        try { file = fs.Open(path, writable: true); }
        catch (UnauthorizedAccessException)
        {
            file = fs.Open(path, writable: false);
            writable = false;
        }
        try
        {
            return await ReadAsync(file, writable, markerPath, fs, keepRefcountBytes, ct).ConfigureAwait(false);
        }
        catch
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async Task<OpenedImage> ReadAsync(IImageFile file, bool writable, string markerPath, IImageFileSystem fs, long keepRefcountBytes, CancellationToken ct)
    {
        long length = file.Length;
        var probe = new byte[(int)Math.Min(length, 1 << QcowLimits.MaxClusterBits)];
        await file.ReadAsync(probe, 0, ct).ConfigureAwait(false);
        var header = QcowHeader.Parse(probe, length);
        var layout = header.Layout;
        int cs = layout.ClusterSize;

        var l1 = await ReadTableAsync(file, header.L1TableOffset, header.L1Size, ct).ConfigureAwait(false);
        long rtEntries = (long)header.RefcountTableClusters * cs / 8;
        var refTable = await ReadTableAsync(file, header.RefcountTableOffset, rtEntries, ct).ConfigureAwait(false);
        for (long t = 0; t < refTable.Length; t++)
        {
            long off = (long)(refTable[t] & RefcountTableOffsetMask);
            if (off != 0 && ((off & (cs - 1)) != 0 || off + cs > RoundUp(length, cs)))
                throw new QcowFormatException(QcowProblem.Invalid, "refcount_table",
                    $"refcount table entry {t} points to {off}, outside the file or not cluster aligned");
        }

        var dataRefusal = DataRefusal(header);
        var writeRefusal = dataRefusal ?? WriteRefusal(header, writable);
        string? repaired = null;
        bool unclean = File.Exists(markerPath);
        bool dirty = (header.IncompatibleFeatures & FeatureBits.IncompatibleDirty) != 0;
        // A repair recounts every block, so it holds them all; otherwise they are read one at a time.
        Dictionary<long, byte[]>? allBlocks = null;
        if ((unclean || dirty) && writeRefusal is null)
        {
            allBlocks = [];
            for (long t = 0; t < refTable.Length; t++)
            {
                long off = (long)(refTable[t] & RefcountTableOffsetMask);
                if (off == 0) continue;
                var block = new byte[cs];
                await file.ReadAsync(block, off, ct).ConfigureAwait(false);
                allBlocks[t] = block;
            }
            repaired = await RefcountRepair.RunAsync(file, header, l1, refTable, allBlocks, ct).ConfigureAwait(false);
            if (dirty) header.IncompatibleFeatures &= ~FeatureBits.IncompatibleDirty;
            await WriteHeaderAsync(file, header, ct).ConfigureAwait(false);
        }
        if (writeRefusal is null && (header.AutoclearFeatures & ~FeatureBits.AutoclearBitmaps) != 0)
        {
            // Autoclear bits we do not know describe extensions we will not keep up to date: clear them before writing.
            header.AutoclearFeatures &= FeatureBits.AutoclearBitmaps;
            await WriteHeaderAsync(file, header, ct).ConfigureAwait(false);
        }
        if (unclean && writeRefusal is null)
        {
            File.Delete(markerPath);
            fs.SyncDirectory(Path.GetDirectoryName(markerPath)!);
        }

        var (end, free, blocks) = await ScanRefcountsAsync(file, layout, refTable, allBlocks, keepRefcountBytes, ct).ConfigureAwait(false);
        return new OpenedImage
        {
            File = file, Header = header, L1 = l1, RefcountTable = refTable, RefcountBlocks = blocks,
            EndCluster = end, FreeClusters = free, DataRefusal = dataRefusal, WriteRefusal = writeRefusal,
            Repaired = repaired,
        };
    }

    internal static async Task WriteHeaderAsync(IImageFile file, QcowHeader header, CancellationToken ct)
    {
        var cluster = new byte[header.ClusterSize];
        header.WriteTo(cluster);
        // The whole first cluster: a shorter header must not leave stale extension bytes behind.
        await file.WriteAsync(cluster, 0, ct).ConfigureAwait(false);
        await file.FlushAsync(ct).ConfigureAwait(false);
    }

    internal static async Task<ulong[]> ReadTableAsync(IImageFile file, long offset, long entries, CancellationToken ct)
    {
        var table = new ulong[entries];
        if (entries == 0) return table;
        var bytes = new byte[entries * 8];
        await file.ReadAsync(bytes, offset, ct).ConfigureAwait(false);
        for (long i = 0; i < entries; i++)
            table[i] = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan((int)(i * 8)));
        return table;
    }

    private static ImageRefusal? DataRefusal(QcowHeader h)
    {
        if (h.BackingFile is not null)
            return new("backing file", $"the image has a backing file ('{h.BackingFile}'); backing files are not supported yet");
        if ((h.IncompatibleFeatures & FeatureBits.IncompatibleExtendedL2) != 0)
            return new("subclusters", "the image uses extended L2 entries (subclusters), which are not supported yet");
        if ((h.IncompatibleFeatures & FeatureBits.IncompatibleExternalData) != 0)
            return new("external data file", "the image keeps its data in an external data file, which is not supported yet");
        return null;
    }

    private static ImageRefusal? WriteRefusal(QcowHeader h, bool writable)
    {
        if ((h.IncompatibleFeatures & FeatureBits.IncompatibleCorrupt) != 0)
            return new("corrupt", "the image is marked corrupt; it is served read-only (repair it with qemu-img check -r all)");
        if (h.FindExtension(HeaderExtensionType.Bitmaps) is not null)
            return new("bitmaps", "the image carries persistent dirty bitmaps, which are not maintained yet; writes are refused, reads work");
        if (!writable)
            return new("read-only file", "the image file is not writable by the server");
        return null;
    }

    /// <summary>
    /// Walks every refcount block once: the clusters with refcount 0 inside the file, the first
    /// cluster past every used one, and the blocks to keep in memory (the first ones, up to keepBytes).
    /// </summary>
    private static async Task<(long End, List<long> Free, Dictionary<long, byte[]> Kept)> ScanRefcountsAsync(
        IImageFile file, ClusterLayout layout, ulong[] refTable, Dictionary<long, byte[]>? loaded, long keepBytes, CancellationToken ct)
    {
        int cs = layout.ClusterSize;
        long fileClusters = RoundUp(file.Length, cs) / cs;
        long entries = layout.RefcountBlockEntries;
        var kept = new Dictionary<long, byte[]>();
        var free = new List<long>();
        long lastUsed = -1;
        byte[]? scratch = null;
        for (long t = 0; t < refTable.Length; t++)
        {
            long first = layout.FirstClusterOfRefcountBlock(t);
            long off = (long)(refTable[t] & RefcountTableOffsetMask);
            if (off == 0)
            {
                // No block: every cluster it would count is free (those past the end are trimmed below).
                for (long c = first; c < Math.Min(first + entries, fileClusters); c++) free.Add(c);
                continue;
            }
            bool keep = (kept.Count + 1L) * cs <= keepBytes;
            byte[] block = loaded?[t] ?? (keep ? new byte[cs] : scratch ??= new byte[cs]);
            if (loaded is null) await file.ReadAsync(block, off, ct).ConfigureAwait(false);
            if (keep) kept[t] = block;
            for (long i = 0; i < entries; i++)
            {
                if (RefcountBlock.Get(block, i, layout.RefcountOrder) == 0) free.Add(first + i);
                else lastUsed = first + i;
            }
        }
        long end = Math.Max(fileClusters, lastUsed + 1);
        int past = free.Count;
        while (past > 0 && free[past - 1] >= end) past--;
        free.RemoveRange(past, free.Count - past);
        // Clusters no block covers yet, up to the end of the file, are free too.
        for (long c = (long)refTable.Length * entries; c < end; c++) free.Add(c);
        return (end, free, kept);
    }

    internal static long RoundUp(long value, long unit) => (value + unit - 1) / unit * unit;
}
