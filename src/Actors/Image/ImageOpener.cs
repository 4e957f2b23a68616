using QcowActors.Actors.Backing;
using QcowActors.Actors.Image.Bitmaps;
using System.Buffers.Binary;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// Opens an image: parses the header, reserves its tables in the metadata budget and reads them,
/// decides what is refused (features the server does not serve), repairs refcounts of an image that was not
/// closed cleanly (our open marker left behind) or carries the dirty bit, fences its metadata
/// clusters, and finds the free clusters below the end of the file. Metadata found with a count
/// of 0, or placed outside the file, is reported as a violation: reads go on, the first write
/// marks the image corrupt.
/// </summary>
internal static class ImageOpener
{
    /// <summary>Bits 9-55 of a refcount table entry: the block's offset. Bits 0-8 are reserved; an offset of 2^56 or more is outside any image.</summary>
    private const ulong RefcountTableOffsetMask = 0x00FF_FFFF_FFFF_FE00UL;

    /// <param name="chains">
    /// The node's backing disks: an image other images name as their backing file is opened
    /// read-only with a shared lock and refuses writes (409 naming them); an overlay's chain is
    /// opened (shared) before anything else. Null: no backing files (an image with one is refused).
    /// </param>
    public static async Task<OpenedImage> OpenAsync(string path, string markerPath, IImageFileSystem fs, MetadataBudget budget,
        TimeSpan waitLimit, CancellationToken ct, BackingChains? chains = null)
    {
        string image = Path.GetFileNameWithoutExtension(path);
        var users = chains is null ? [] : await chains.UsersOfAsync(Path.GetFileName(path), ct).ConfigureAwait(false);
        IImageFile file;
        bool writable = true;
        ImageRefusal? backingOf = null;
        if (users.Count > 0)
        {
            file = fs.OpenShared(path);
            writable = false;
            backingOf = new ImageRefusal("backing image", $"image '{image}' is the backing image of {string.Join(", ", users.Select(u => $"'{u}'"))}; "
                + "it is read-only while they use it (delete them, or qemu-img rebase them onto another base, first)", Conflict: true);
        }
        else
        {
            try { file = fs.Open(path, writable: true); }
            catch (UnauthorizedAccessException)
            {
                file = fs.Open(path, writable: false);
                writable = false;
            }
        }
        var reservation = new Reservation(budget);
        BackingDisk? backing = null;
        try
        {
            var opened = await ReadAsync(file, writable, backingOf, markerPath, fs, reservation, waitLimit, ct,
                async header => backing = header.BackingFile is null || chains is null ? null : await chains.AcquireAsync(image, header, ct).ConfigureAwait(false))
                .ConfigureAwait(false);
            return opened;
        }
        catch
        {
            reservation.ReleaseAll();
            if (backing is not null) await chains!.ReleaseAsync(backing).ConfigureAwait(false);
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Bytes taken in the budget while opening, given back if the open fails.</summary>
    private sealed class Reservation(MetadataBudget budget)
    {
        public MetadataBudget Budget { get; } = budget;
        public long Bytes { get; private set; }

        public async Task TakeAsync(long bytes, TimeSpan waitLimit, string image, CancellationToken ct)
        {
            if (!await Budget.ReserveAsync(bytes, waitLimit, ct).ConfigureAwait(false))
                throw new ImageException(ImageError.Unavailable,
                    $"image '{image}' cannot be opened now: the metadata cache (Storage:MetadataCacheBytesTotal) stayed full for {waitLimit.TotalSeconds:0.#} s; try again");
            Bytes += bytes;
        }

        public bool TryTake(long bytes)
        {
            if (!Budget.TryReserve(bytes, priority: false)) return false;
            Bytes += bytes;
            return true;
        }

        public void Give(long bytes)
        {
            Budget.Release(bytes);
            Bytes -= bytes;
        }

        public void ReleaseAll()
        {
            Budget.Release(Bytes);
            Bytes = 0;
        }
    }

    private static async Task<OpenedImage> ReadAsync(IImageFile file, bool writable, ImageRefusal? backingOf, string markerPath, IImageFileSystem fs,
        Reservation reservation, TimeSpan waitLimit, CancellationToken ct, Func<QcowHeader, Task<BackingDisk?>> openBacking)
    {
        string image = Path.GetFileNameWithoutExtension(file.Path);
        long length = file.Length;
        var header = await ReadHeaderAsync(file, length, ct).ConfigureAwait(false);
        // The chain beneath first. A backing name that is refused (outside the store, no format, a
        // cycle...) refuses the data and leaves this file untouched (no repair, no header write);
        // the image is still described (info). A lock held elsewhere fails the open: it may pass.
        BackingDisk? backing = null;
        ImageRefusal? chainRefusal = null;
        if (DataRefusal(header) is null)
        {
            try { backing = await openBacking(header).ConfigureAwait(false); }
            catch (ImageException e) when (e.Error == ImageError.Unsupported)
            {
                chainRefusal = new ImageRefusal(e.Feature ?? BackingReference.Feature, e.Message);
            }
        }
        var layout = header.Layout;
        int cs = layout.ClusterSize;
        long fileClusters = layout.ClustersFor(length);

        long l1Bytes = (long)header.L1Size * 8;
        long rtBytes = (long)header.RefcountTableClusters * cs;
        // What the image holds at all times (its tables), and a working set of tables and blocks beside them.
        long fixedBytes = l1Bytes + rtBytes;
        if (fixedBytes + 8L * cs > reservation.Budget.PerImageBytes)
            throw new ImageException(ImageError.Unsupported,
                $"image '{image}' has {fixedBytes} bytes of L1 and refcount tables, more than the per-image metadata budget "
                + $"(Storage:MetadataCacheBytesPerImage, {reservation.Budget.PerImageBytes} bytes) leaves room for; raise it to open this image",
                "metadata budget");
        await reservation.TakeAsync(fixedBytes + cs, waitLimit, image, ct).ConfigureAwait(false); // + one cluster to scan blocks with

        var l1 = await ReadTableAsync(file, header.L1TableOffset, header.L1Size, ct).ConfigureAwait(false);
        var refTable = new byte[rtBytes];
        await file.ReadAsync(refTable, header.RefcountTableOffset, ct).ConfigureAwait(false);

        var dataRefusal = DataRefusal(header) ?? chainRefusal
            ?? (header.BackingFile is not null && backing is null ? new ImageRefusal(BackingReference.Feature, "the image has a backing file, which this store does not open") : null);
        var writeRefusal = dataRefusal ?? backingOf ?? WriteRefusal(header, writable);
        string? repaired = null;
        bool unclean = FileKind.Of(markerPath) != FileKindValue.Missing;
        bool dirty = (header.IncompatibleFeatures & FeatureBits.IncompatibleDirty) != 0;
        // Bitmaps QEMU would refuse (a bad extension, directory or table) fail the open, as in QEMU.
        var storedBitmaps = dataRefusal is null ? await BitmapLoader.ReadDirectoryAsync(file, header, ct, reservation.Budget.PerImageBytes).ConfigureAwait(false) : null;
        if (storedBitmaps is null && writeRefusal is null) header.Extensions.RemoveAll(e => e.Type == HeaderExtensionType.Bitmaps); // stale: QEMU ignores it too
        var fences = new MetadataClusters(layout.ClusterBits);
        string? violation = await FenceAsync(file, header, l1, refTable, fences, fileClusters, ct, storedBitmaps).ConfigureAwait(false);
        if ((unclean || dirty) && writeRefusal is null && violation is null)
        {
            // A repair recounts every block; it reads them all (outside the budget: it runs once, before any request).
            var rt = RefcountTableEntries(refTable);
            var allBlocks = new Dictionary<long, byte[]>();
            for (long t = 0; t < rt.Length; t++)
            {
                long off = (long)(rt[t] & RefcountTableOffsetMask);
                if (off == 0) continue;
                var block = new byte[cs];
                await file.ReadAsync(block, off, ct).ConfigureAwait(false);
                allBlocks[t] = block;
            }
            repaired = await RefcountRepair.RunAsync(file, header, l1, rt, allBlocks, ct, storedBitmaps).ConfigureAwait(false);
            if (dirty) header.IncompatibleFeatures &= ~FeatureBits.IncompatibleDirty;
            await WriteHeaderAsync(file, header, ct).ConfigureAwait(false);
        }
        if (writeRefusal is null && (header.AutoclearFeatures & ~FeatureBits.AutoclearBitmaps) != 0)
        {
            // Autoclear bits we do not know describe extensions we will not keep up to date: clear them before writing.
            // Never bit 0: the bitmaps are kept up to date (and without the extension the bit claims nothing).
            header.AutoclearFeatures &= FeatureBits.AutoclearBitmaps;
            await WriteHeaderAsync(file, header, ct).ConfigureAwait(false);
        }
        if (unclean && writeRefusal is null && violation is null)
        {
            File.Delete(markerPath);
            fs.SyncDirectory(Path.GetDirectoryName(markerPath)!);
        }

        List<PersistentBitmap> bitmaps = [];
        if (storedBitmaps is not null)
        {
            long bitmapBytes = storedBitmaps.Entries.Where(e => !e.InUse).Sum(e => PersistentBitmap.MemoryFor(header.Size, e.GranularityBits));
            bool tooLarge = fixedBytes + bitmapBytes + 8L * cs > reservation.Budget.PerImageBytes;
            if (tooLarge)
            {
                // Too large to keep up to date here: the image is served read-only and its bitmaps stay as QEMU left them.
                writeRefusal ??= new ImageRefusal("metadata budget",
                    $"the image's persistent bitmaps need {bitmapBytes} bytes of memory beside {fixedBytes} bytes of tables, more than the per-image "
                    + $"metadata budget (Storage:MetadataCacheBytesPerImage, {reservation.Budget.PerImageBytes} bytes) leaves room for: writes are refused "
                    + "so the bitmaps stay valid; raise the budget, or remove bitmaps with qemu-img bitmap --remove");
            }
            bitmaps = await BitmapLoader.LoadAsync(file, header, storedBitmaps, bytes => reservation.TakeAsync(bytes, waitLimit, image, ct), ct,
                withBits: !tooLarge).ConfigureAwait(false);
            // QEMU's order: in_use is durable before the first write after open.
            if (writeRefusal is null && violation is null && bitmaps.Exists(b => b.Consistent))
                await BitmapLoader.MarkInUseAsync(file, storedBitmaps, bitmaps, ct).ConfigureAwait(false);
        }

        var scan = await ScanRefcountsAsync(file, layout, refTable, fences, fileClusters, reservation, ct).ConfigureAwait(false);
        reservation.Give(cs); // the scan's cluster
        return new OpenedImage
        {
            File = file, Header = header, L1 = l1, Backing = backing, RefcountTable = refTable, RefcountBlocks = scan.Kept,
            EndCluster = fileClusters, Free = scan.Free, Fences = fences, ReservedBytes = reservation.Bytes,
            DataRefusal = dataRefusal, WriteRefusal = writeRefusal, Violation = violation ?? scan.Violation, Repaired = repaired,
            Bitmaps = bitmaps, BitmapDirectory = storedBitmaps?.DirectoryClusters(layout.ClusterBits) ?? [],
        };
    }

    /// <summary>
    /// Fences every metadata cluster QEMU's cached overlap check covers. Returns the first problem
    /// (two structures in one cluster, a table placed outside the file or off a cluster boundary).
    /// </summary>
    internal static async Task<string?> FenceAsync(IImageFile file, QcowHeader header, ulong[] l1, byte[] refTable,
        MetadataClusters fences, long fileClusters, CancellationToken ct, StoredBitmaps? bitmaps = null)
    {
        var layout = header.Layout;
        int cs = layout.ClusterSize;
        string? problem = null;
        void Note(string what) => problem ??= what;
        void Fence(long offset, long bytes, MetadataKind kind, string what)
        {
            if ((offset & (cs - 1)) != 0 && kind is not MetadataKind.SnapshotTable)
                Note($"{what} at host offset {offset} is not cluster aligned");
            else if (((offset + bytes - 1) >> layout.ClusterBits) >= fileClusters && bytes > 0)
                Note($"{what} at host offset {offset} lies past the end of the file");
            if (fences.AddRange(offset, bytes, kind) is { } clash)
                Note($"{what} shares cluster {clash.Cluster} with {MetadataClusters.Describe(clash.Kind)}");
        }

        Fence(0, cs, MetadataKind.Header, "the header");
        Fence(header.L1TableOffset, (long)header.L1Size * 8, MetadataKind.L1Table, "the L1 table");
        Fence(header.RefcountTableOffset, refTable.Length, MetadataKind.RefcountTable, "the refcount table");
        for (int t = 0; t < refTable.Length / 8; t++)
        {
            ulong raw = BinaryPrimitives.ReadUInt64BigEndian(refTable.AsSpan(t * 8));
            if ((raw & ~RefcountTableOffsetMask) != 0)
                Note($"refcount table entry {t} (0x{raw:x16}) has reserved bits set or an offset of 2^56 or more");
            long off = (long)(raw & RefcountTableOffsetMask);
            if (off != 0) Fence(off, cs, MetadataKind.RefcountBlock, $"refcount block {t}");
        }
        for (int i = 0; i < l1.Length; i++)
        {
            var e = L1Entry.From(l1[i]);
            if ((l1[i] & L1Entry.ReservedMask) != 0) Note($"L1 entry {i} (0x{l1[i]:x16}) has reserved bits set");
            if (!e.IsUnallocated) Fence(e.L2Offset, cs, MetadataKind.L2Table, $"L2 table {i}");
        }
        if (bitmaps is not null)
            foreach (var (offset, bytes, kind, what) in bitmaps.Structures(cs))
                Fence(offset, bytes, kind, what);
        if (header.NbSnapshots > 0)
        {
            long tableSpace = Math.Min(Math.Max(0, file.Length - header.SnapshotsOffset), 64L << 20);
            var probe = new byte[tableSpace];
            await file.ReadAsync(probe, header.SnapshotsOffset, ct).ConfigureAwait(false);
            var (snapshots, tableBytes) = SnapshotTable.Parse(probe, header.NbSnapshots, (int)header.Version);
            Fence(header.SnapshotsOffset, tableBytes, MetadataKind.SnapshotTable, "the snapshot table");
            foreach (var s in snapshots)
            {
                // Each snapshot may claim a 32 MiB L1, and a 64 KiB table holds a thousand of them: fenced cluster by
                // cluster they took a minute and 6 GB (FuzzRegressions/crashes/snapshot-l1-fences). Valid ones lie inside
                // the file apart, so their clusters add up to at most the file's; once one is not, the image is a
                // violation, takes no write, and further fences would guard nothing.
                if (problem is not null) break;
                Fence(s.L1TableOffset, (long)s.L1Size * 8, MetadataKind.SnapshotL1Table, $"the L1 table of snapshot '{s.Name}'");
            }
        }
        return problem;
    }

    /// <summary>
    /// The header from the image's first cluster, read at its real size (the cluster size is in
    /// the first bytes): opening a thousand 64 KiB-cluster images should not allocate 2 MiB each.
    /// </summary>
    internal static async Task<QcowHeader> ReadHeaderAsync(IImageFile file, long length, CancellationToken ct)
    {
        const int ClusterBitsOffset = 20;
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent((int)Math.Min(length, 4096));
        try
        {
            int first = (int)Math.Min(length, 4096);
            await file.ReadAsync(buffer.AsMemory(0, first), 0, ct).ConfigureAwait(false);
            int size = first;
            if (first >= ClusterBitsOffset + 4)
            {
                int bits = (int)BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(ClusterBitsOffset));
                if (bits is >= QcowLimits.MinClusterBits and <= QcowLimits.MaxClusterBits && (1 << bits) > first && length > first)
                {
                    size = (int)Math.Min(length, 1L << bits);
                    System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                    buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(size);
                    await file.ReadAsync(buffer.AsMemory(0, size), 0, ct).ConfigureAwait(false);
                }
            }
            return QcowHeader.Parse(buffer.AsSpan(0, size), length);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    internal static async Task WriteHeaderAsync(IImageFile file, QcowHeader header, CancellationToken ct)
    {
        await file.WriteAsync(HeaderCluster(header), 0, ct).ConfigureAwait(false);
        await file.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The header, its extensions and backing file name as the whole first cluster: a shorter header
    /// must not leave stale extension bytes behind. Throws when they do not fit the cluster.
    /// </summary>
    internal static byte[] HeaderCluster(QcowHeader header)
    {
        var cluster = new byte[header.ClusterSize];
        header.WriteTo(cluster);
        return cluster;
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

    private static ulong[] RefcountTableEntries(byte[] table)
    {
        var entries = new ulong[table.Length / 8];
        for (int i = 0; i < entries.Length; i++) entries[i] = BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(i * 8));
        return entries;
    }

    internal static ImageRefusal? DataRefusal(QcowHeader h)
    {
        if ((h.IncompatibleFeatures & FeatureBits.IncompatibleExternalData) != 0)
            return new("external data file", $"the image keeps its data in an external data file{DataFileName(h)}; this server serves only "
                + "images whose data is inside the qcow2 file (qemu-img convert makes one)");
        return null;
    }

    /// <summary>The external data file's name from its header extension (qcow2.txt: not NUL-terminated), for the refusal.</summary>
    private static string DataFileName(QcowHeader h)
        => h.FindExtension(HeaderExtensionType.ExternalDataFile) is { Data.Length: > 0 } e
            ? $" ('{System.Text.Encoding.UTF8.GetString(e.Data).TrimEnd('\0')}')"
            : "";

    /// <summary>
    /// Writes that would leave something stale are refused; the file is then not written at all
    /// (no repair, no autoclear change), so whatever the image carries survives our open.
    /// </summary>
    internal static ImageRefusal? WriteRefusal(QcowHeader h, bool writable)
    {
        if ((h.IncompatibleFeatures & FeatureBits.IncompatibleCorrupt) != 0)
            return new(Corruption.Feature, "the image is marked corrupt; it is served read-only (repair it with qemu-img check -r all)");
        if (!writable)
            return new("read-only file", "the image file is not writable by the server");
        return null;
    }

    private sealed record Scan(FreeClusters Free, Dictionary<long, byte[]> Kept, string? Violation);

    /// <summary>
    /// Walks the refcount blocks over the file (never past its end: a count there is a leak, and a
    /// block wholly past it is not read): the free clusters as runs, and the first blocks kept in
    /// memory while they fit a quarter of the per-image budget. A fenced cluster with count 0 is a
    /// violation and is never free; clusters under a block that could not be fenced (misplaced) are
    /// not free either, as their counts are unknown.
    /// </summary>
    private static async Task<Scan> ScanRefcountsAsync(IImageFile file, ClusterLayout layout, byte[] refTable,
        MetadataClusters fences, long fileClusters, Reservation reservation, CancellationToken ct)
    {
        int cs = layout.ClusterSize;
        long entries = layout.RefcountBlockEntries;
        long keepLimit = reservation.Budget.PerImageBytes / 4;
        var kept = new Dictionary<long, byte[]>();
        var free = new FreeClusters();
        string? violation = null;
        byte[]? scratch = null;
        long tableEntries = refTable.Length / 8;
        for (long t = 0; t < tableEntries && layout.FirstClusterOfRefcountBlock(t) < fileClusters; t++)
        {
            long first = layout.FirstClusterOfRefcountBlock(t);
            long end = Math.Min(first + entries, fileClusters);
            long off = (long)(BinaryPrimitives.ReadUInt64BigEndian(refTable.AsSpan((int)(t * 8))) & RefcountTableOffsetMask);
            if (off == 0)
            {
                // No block: every count it would hold is 0.
                violation ??= AddFree(free, fences, first, end, static (_, _) => 0, null);
                continue;
            }
            if ((off & (cs - 1)) != 0 || (off >> layout.ClusterBits) >= fileClusters) continue; // reported by the fence; counts unknown
            bool keep = kept.Count * (long)cs + cs <= keepLimit && reservation.TryTake(cs);
            byte[] block = keep ? reservation.Budget.Pool.Rent(cs, zeroed: false) : scratch ??= new byte[cs];
            await file.ReadAsync(block, off, ct).ConfigureAwait(false);
            if (keep) kept[t] = block;
            violation ??= AddFree(free, fences, first, end, (b, i) => RefcountBlock.Get(b, i, layout.RefcountOrder), block);
        }
        // Clusters no block covers yet, up to the end of the file, count 0 too.
        long covered = tableEntries * entries;
        if (covered < fileClusters) violation ??= AddFree(free, fences, covered, fileClusters, static (_, _) => 0, null);
        return new Scan(free, kept, violation);
    }

    /// <summary>Adds the clusters of [first, end) whose count is 0 as free runs, except fenced ones (returned as a violation).</summary>
    private static string? AddFree(FreeClusters free, MetadataClusters fences, long first, long end, Func<byte[], long, ulong> count, byte[]? block)
    {
        string? violation = null;
        long run = -1;
        for (long c = first; c < end; c++)
        {
            bool isFree = count(block!, c - first) == 0;
            if (isFree && fences.KindOf(c) is { } kind)
            {
                violation ??= $"cluster {c} holds {MetadataClusters.Describe(kind)} but its refcount is 0";
                isFree = false;
            }
            if (isFree && run < 0) run = c;
            else if (!isFree && run >= 0)
            {
                free.Add(run, c);
                run = -1;
            }
        }
        if (run >= 0) free.Add(run, end);
        return violation;
    }
}
