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

    public static async Task<OpenedImage> OpenAsync(string path, string markerPath, IImageFileSystem fs, CancellationToken ct)
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
            return await ReadAsync(file, writable, markerPath, fs, ct).ConfigureAwait(false);
        }
        catch
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async Task<OpenedImage> ReadAsync(IImageFile file, bool writable, string markerPath, IImageFileSystem fs, CancellationToken ct)
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
        var blocks = new Dictionary<long, byte[]>();
        for (long t = 0; t < refTable.Length; t++)
        {
            long off = (long)(refTable[t] & RefcountTableOffsetMask);
            if (off == 0) continue;
            if ((off & (cs - 1)) != 0 || off + cs > RoundUp(length, cs))
                throw new QcowFormatException(QcowProblem.Invalid, "refcount_table",
                    $"refcount table entry {t} points to {off}, outside the file or not cluster aligned");
            var block = new byte[cs];
            await file.ReadAsync(block, off, ct).ConfigureAwait(false);
            blocks[t] = block;
        }

        var dataRefusal = DataRefusal(header);
        var writeRefusal = dataRefusal ?? WriteRefusal(header, writable);
        string? repaired = null;
        bool unclean = File.Exists(markerPath);
        bool dirty = (header.IncompatibleFeatures & FeatureBits.IncompatibleDirty) != 0;
        if ((unclean || dirty) && writeRefusal is null)
        {
            repaired = await RefcountRepair.RunAsync(file, header, l1, refTable, blocks, ct).ConfigureAwait(false);
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

        var (end, free) = FindFree(layout, RoundUp(file.Length, cs) / cs, blocks);
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

    /// <summary>Clusters with refcount 0 inside the file, and the first cluster past every used one.</summary>
    private static (long End, List<long> Free) FindFree(ClusterLayout layout, long fileClusters, Dictionary<long, byte[]> blocks)
    {
        long lastUsed = -1;
        foreach (var (t, block) in blocks)
        {
            long first = layout.FirstClusterOfRefcountBlock(t);
            for (long i = layout.RefcountBlockEntries - 1; i >= 0; i--)
            {
                if (RefcountBlock.Get(block, i, layout.RefcountOrder) != 0)
                {
                    lastUsed = Math.Max(lastUsed, first + i);
                    break;
                }
            }
        }
        long end = Math.Max(fileClusters, lastUsed + 1);
        var free = new List<long>();
        for (long c = 0; c < end; c++)
        {
            long t = layout.RefcountTableIndex(c);
            if (!blocks.TryGetValue(t, out var block) || RefcountBlock.Get(block, layout.RefcountBlockIndex(c), layout.RefcountOrder) == 0)
                free.Add(c);
        }
        return (end, free);
    }

    internal static long RoundUp(long value, long unit) => (value + unit - 1) / unit * unit;
}
