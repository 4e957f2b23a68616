using System.Buffers.Binary;
using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// Recounts every reference in an image (header, L1/L2 of the active state and of each snapshot,
/// data clusters, refcount structures, snapshot table, persistent bitmaps' directory, tables and data) and makes the stored refcounts match:
/// reclaims leaks after an unclean close, rebuilds counts of an image carrying the dirty bit.
/// Runs at open, before the first write; the fixed blocks are written and fsynced before return.
/// </summary>
internal static class RefcountRepair
{
    public static async Task<string> RunAsync(IImageFile file, QcowHeader header, ulong[] l1, ulong[] refTable,
        Dictionary<long, byte[]> blocks, CancellationToken ct, Bitmaps.StoredBitmaps? bitmaps = null)
    {
        var layout = header.Layout;
        int cs = layout.ClusterSize;
        var expected = new Dictionary<long, ulong>();
        void AddRange(long offset, long bytes, ulong times = 1)
        {
            if (bytes <= 0) return;
            for (long c = offset >> layout.ClusterBits; c <= (offset + bytes - 1) >> layout.ClusterBits; c++)
                expected[c] = expected.GetValueOrDefault(c) + times;
        }

        AddRange(0, cs);
        AddRange(header.L1TableOffset, (long)header.L1Size * 8);
        AddRange(header.RefcountTableOffset, (long)header.RefcountTableClusters * cs);
        foreach (ulong e in refTable)
            if ((e & ~511UL) != 0) AddRange((long)(e & ~511UL), cs);
        if (bitmaps is not null)
            foreach (var (offset, bytes, _, _) in bitmaps.Structures(cs)) AddRange(offset, bytes);
        var activeL2 = await CountTreeAsync(file, layout, l1, (o, b) => AddRange(o, b), ct).ConfigureAwait(false);

        if (header.NbSnapshots > 0)
        {
            var probe = new byte[Math.Min(file.Length - header.SnapshotsOffset, 64L << 20)];
            await file.ReadAsync(probe, header.SnapshotsOffset, ct).ConfigureAwait(false);
            var (snapshots, tableBytes) = SnapshotTable.Parse(probe, header.NbSnapshots, (int)header.Version);
            AddRange(header.SnapshotsOffset, tableBytes);
            // Snapshots' L1 entries may all name one L2 table (open fences only their L1s): each table is read and
            // walked once, its references counted as often as it is named. Walked per entry and kept, a 1 MiB image
            // whose snapshot names one table 90,000 times took 10 s and 6 GB (FuzzRegressions/crashes/repair-shared-l2).
            var named = new Dictionary<long, ulong>();
            foreach (var s in snapshots)
            {
                AddRange(s.L1TableOffset, (long)s.L1Size * 8);
                var snapL1 = await ImageOpener.ReadTableAsync(file, s.L1TableOffset, s.L1Size, ct).ConfigureAwait(false);
                foreach (ulong raw in snapL1)
                    if (L1Entry.From(raw) is { IsUnallocated: false } e) named[e.L2Offset] = named.GetValueOrDefault(e.L2Offset) + 1;
            }
            foreach (var (l2Offset, times) in named)
            {
                AddRange(l2Offset, cs, times);
                var l2 = await ImageOpener.ReadTableAsync(file, l2Offset, cs / 8, ct).ConfigureAwait(false);
                CountL2(layout, l2, (o, b) => AddRange(o, b, times));
            }
        }

        int changed = 0;
        var dirtyBlocks = new HashSet<long>();
        foreach (var (t, block) in blocks)
        {
            long first = layout.FirstClusterOfRefcountBlock(t);
            for (long i = 0; i < layout.RefcountBlockEntries; i++)
            {
                ulong want = expected.GetValueOrDefault(first + i);
                if (RefcountBlock.Get(block, i, layout.RefcountOrder) == want) continue;
                RefcountBlock.Set(block, i, layout.RefcountOrder, Math.Min(want, RefcountBlock.MaxValue(layout.RefcountOrder)));
                dirtyBlocks.Add(t);
                changed++;
            }
        }
        foreach (long c in expected.Keys)
        {
            if (!blocks.ContainsKey(layout.RefcountTableIndex(c)))
                throw new QcowFormatException(QcowProblem.Invalid, "refcount_table",
                    $"cluster {c} is in use but no refcount block covers it; repair the image with qemu-img check -r all");
        }

        int flagsFixed = await FixCopiedFlagsAsync(file, layout, l1, activeL2, expected, header.L1TableOffset, ct).ConfigureAwait(false);
        foreach (long t in dirtyBlocks)
            await file.WriteAsync(blocks[t], (long)(refTable[t] & ~511UL), ct).ConfigureAwait(false);
        await file.FlushAsync(ct).ConfigureAwait(false);
        return $"{changed} refcounts corrected, {flagsFixed} COPIED flags corrected";
    }

    /// <summary>Counts the L2 tables and data clusters under an L1 table; returns the L2 tables read (by L1 index).</summary>
    private static async Task<Dictionary<int, ulong[]>> CountTreeAsync(IImageFile file, ClusterLayout layout, ulong[] l1,
        Action<long, long> addRange, CancellationToken ct)
    {
        var tables = new Dictionary<int, ulong[]>();
        for (int i = 0; i < l1.Length; i++)
        {
            var e = L1Entry.From(l1[i]);
            if (e.IsUnallocated) continue;
            addRange(e.L2Offset, layout.ClusterSize);
            var l2 = await ImageOpener.ReadTableAsync(file, e.L2Offset, layout.ClusterSize / 8, ct).ConfigureAwait(false);
            tables[i] = l2;
            CountL2(layout, l2, addRange);
        }
        return tables;
    }

    /// <summary>Counts the data clusters one L2 table references.</summary>
    private static void CountL2(ClusterLayout layout, ulong[] l2, Action<long, long> addRange)
    {
        // Read as words: with extended L2 every second one is a bitmap, which references nothing.
        for (int k = 0; k < l2.Length; k += layout.L2EntryWords)
        {
            ulong raw = l2[k];
            var d = L2Entry.From(raw);
            if (d.IsCompressed)
            {
                var (first, last) = CompressedDescriptor.From(raw, layout.ClusterBits).HostClusters(layout.ClusterBits);
                for (long h = first; h <= last; h++) addRange(h << layout.ClusterBits, 1);
            }
            else if (d.HostOffset != 0)
            {
                addRange(d.HostOffset, layout.ClusterSize);
            }
        }
    }

    /// <summary>COPIED must be set exactly when the refcount is 1, in every table reachable from the active L1.</summary>
    private static async Task<int> FixCopiedFlagsAsync(IImageFile file, ClusterLayout layout, ulong[] l1,
        Dictionary<int, ulong[]> tables, Dictionary<long, ulong> counts, long l1Offset, CancellationToken ct)
    {
        int fixedCount = 0;
        bool l1Dirty = false;
        foreach (var (i, l2) in tables)
        {
            bool l2Dirty = false;
            for (int k = 0; k < l2.Length; k += layout.L2EntryWords)
            {
                var d = L2Entry.From(l2[k]);
                if (d.IsCompressed || d.HostOffset == 0) continue;
                bool want = counts.GetValueOrDefault(d.HostOffset >> layout.ClusterBits) == 1;
                if (d.Copied == want) continue;
                l2[k] = want ? d.Raw | L2Entry.CopiedFlag : d.Raw & ~L2Entry.CopiedFlag;
                l2Dirty = true;
                fixedCount++;
            }
            var e = L1Entry.From(l1[i]);
            if (l2Dirty) await WriteTableAsync(file, l2, e.L2Offset, ct).ConfigureAwait(false);
            bool wantL1 = counts.GetValueOrDefault(e.L2Offset >> layout.ClusterBits) == 1;
            if (e.Copied != wantL1)
            {
                l1[i] = L1Entry.Create(e.L2Offset, wantL1).ToRaw();
                l1Dirty = true;
                fixedCount++;
            }
        }
        if (l1Dirty) await WriteTableAsync(file, l1, l1Offset, ct).ConfigureAwait(false);
        return fixedCount;
    }

    private static async Task WriteTableAsync(IImageFile file, ulong[] table, long offset, CancellationToken ct)
    {
        var bytes = new byte[table.Length * 8];
        for (int i = 0; i < table.Length; i++) BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(i * 8), table[i]);
        await file.WriteAsync(bytes, offset, ct).ConfigureAwait(false);
    }
}
