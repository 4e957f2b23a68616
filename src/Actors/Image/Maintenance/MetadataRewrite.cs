using System.Buffers;
using System.Buffers.Binary;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image.Maintenance;

/// <summary>
/// Snapshot create, delete, revert and resize as one shadow commit. Counts and COPIED flags cannot
/// change together in place: between the two writes a power loss would leave an entry whose COPIED
/// flag disagrees with its refcount, which qemu-img check counts as corruption (QEMU accepts that
/// window and repairs it; we promise leaks at most). So every structure that changes is written anew
/// in fresh clusters past the end of the file — the active L1, the active L2 tables whose COPIED flags
/// change, the snapshot table, every refcount block and the refcount table — and then one header
/// write (its changed fields all lie in the first 72 bytes, one sector) switches to them.
/// Ordering rules, in the order they bind:
/// 1. Nothing below the fresh region is written (<see cref="FreshRegion"/>): until the header switches,
///    the old image is intact and the new structures are unreferenced bytes past its end.
/// 2. Every new structure is written, then fsync, then the header, then fsync. A crash before the
///    header's fsync leaves the old image or the new one, never a mix.
/// 3. Clusters the old structures held (old L1, old refcount table and blocks, old snapshot table,
///    a deleted snapshot's tables, L2 tables replaced by copies) are counted 0 in the new structure,
///    so they are free only once the header no longer points at them; the next open finds them free.
/// Memory: the L1 tables and refcount tables whole (as an open image holds them), one L2 table at a
/// time, and at most <see cref="ShadowRefcounts.CachedBlocks"/> refcount blocks.
/// </summary>
internal sealed class MetadataRewrite
{
    private readonly IImageFile _file;
    private readonly QcowHeader _header;
    private readonly ClusterLayout _layout;
    private readonly ulong[] _oldL1;
    private readonly ulong[] _oldRefcountTable;
    private readonly long _oldSnapshotTableBytes;
    private readonly long _fileClusters;

    public MetadataRewrite(IImageFile file, QcowHeader header, ulong[] oldL1, ulong[] oldRefcountTable, long oldSnapshotTableBytes)
    {
        _file = file;
        _header = header;
        _layout = header.Layout;
        _oldL1 = oldL1;
        _oldRefcountTable = oldRefcountTable;
        _oldSnapshotTableBytes = oldSnapshotTableBytes;
        _fileClusters = _layout.ClustersFor(file.Length);
    }

    /// <summary>Bytes of memory a rewrite holds beside the ones the caller holds (the new L1, the new refcount table, blocks and an L2 table).</summary>
    public static long MemoryBytes(QcowHeader header, long newL1Entries, long snapshotTableBytes)
        => newL1Entries * 8 + 2L * header.RefcountTableClusters * header.ClusterSize + snapshotTableBytes
           + (ShadowRefcounts.CachedBlocks + 2L) * header.ClusterSize;

    /// <summary>Runs the rewrite; returns the header now on disk.</summary>
    /// <param name="bitmaps">
    /// The persistent bitmaps rewritten for the new disk size (resize, a revert to another size): their
    /// new data, tables and directory go to the layout's extra clusters, the old ones lose their counts,
    /// and the header's extension names the new directory.
    /// </param>
    public async Task<QcowHeader> RunAsync(RewriteRequest request, CancellationToken ct, Bitmaps.BitmapStorePlan? bitmaps = null)
    {
        int cs = _layout.ClusterSize;
        byte[] snapshotTable = request.Snapshots.Count == 0 ? [] : SnapshotTable.Serialize(request.Snapshots, _header.Size);
        long copySlots = request.NewActiveL1.Count(e => !L1Entry.From(e).IsUnallocated);
        var plan = RewriteLayout.Plan(_layout, _fileClusters, request.NewActiveL1.Length, snapshotTable.Length, copySlots, bitmaps?.ClustersNeeded ?? 0);
        var region = new FreshRegion(_file, plan.FirstCluster << _layout.ClusterBits);
        await using var counts = new ShadowRefcounts(_file, _layout, _oldRefcountTable, plan, region);
        var l2 = ArrayPool<byte>.Shared.Rent(cs);
        try
        {
            await CountReferencesAsync(request, plan, counts, l2, ct).ConfigureAwait(false);
            if (bitmaps is not null)
            {
                bitmaps.Assign([.. Enumerable.Range(0, bitmaps.ClustersNeeded).Select(k => plan.FirstExtraCluster + k)]);
                foreach (long c in bitmaps.Release) await counts.AddAsync(c, -1, ct).ConfigureAwait(false);
                foreach (var (c, _) in bitmaps.Assigned) await counts.AddAsync(c, +1, ct).ConfigureAwait(false);
                await bitmaps.WriteAsync((bytes, offset, token) => region.WriteAsync(bytes, offset, token), ct).ConfigureAwait(false);
            }
            var newL1 = await BuildActiveTreeAsync(request, plan, counts, region, l2, ct).ConfigureAwait(false);

            await region.WriteAsync(newL1, plan.L1Cluster << _layout.ClusterBits, ct).ConfigureAwait(false);
            if (snapshotTable.Length > 0)
                await region.WriteAsync(snapshotTable, plan.SnapshotTableCluster << _layout.ClusterBits, ct).ConfigureAwait(false);
            byte[] refcountTable = await counts.CompleteAsync(ct).ConfigureAwait(false);
            await region.WriteAsync(refcountTable, plan.RefcountTableCluster << _layout.ClusterBits, ct).ConfigureAwait(false);
            // Rule 2: every new structure is durable before the header refers to it.
            await _file.FlushAsync(ct).ConfigureAwait(false);

            _header.Size = request.NewSize;
            _header.L1Size = (uint)request.NewActiveL1.Length;
            _header.L1TableOffset = plan.L1Cluster << _layout.ClusterBits;
            _header.RefcountTableOffset = plan.RefcountTableCluster << _layout.ClusterBits;
            _header.RefcountTableClusters = (uint)plan.RefcountTableClusters;
            _header.NbSnapshots = (uint)request.Snapshots.Count;
            _header.SnapshotsOffset = request.Snapshots.Count == 0 ? 0 : plan.SnapshotTableCluster << _layout.ClusterBits;
            if (bitmaps?.Extension is { } extension) Bitmaps.BitmapKeeper.SetExtension(_header, extension);
            await ImageOpener.WriteHeaderAsync(_file, _header, ct).ConfigureAwait(false); // writes, then fsync
            return _header;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(l2);
        }
    }

    /// <summary>Pass 1: every reference that appears or disappears, as deltas on the new counts.</summary>
    private async Task CountReferencesAsync(RewriteRequest r, RewriteLayout plan, ShadowRefcounts counts, byte[] l2, CancellationToken ct)
    {
        int cs = _layout.ClusterSize;
        if (r.ActiveTreeAdded) await WalkTreeAsync(r.NewActiveL1, +1, counts, l2, ct).ConfigureAwait(false);
        if (r.OldActiveTreeDropped) await WalkTreeAsync(_oldL1, -1, counts, l2, ct).ConfigureAwait(false);
        foreach (long table in r.DroppedTables) await WalkTableAsync(table, -1, counts, l2, ct).ConfigureAwait(false);
        if (r.Deleted is { } deleted)
        {
            var l1 = await ImageOpener.ReadTableAsync(_file, deleted.L1TableOffset, deleted.L1Size, ct).ConfigureAwait(false);
            await WalkTreeAsync(l1, -1, counts, l2, ct).ConfigureAwait(false);
            await counts.AddRangeAsync(deleted.L1TableOffset, (long)deleted.L1Size * 8, -1, ct).ConfigureAwait(false);
        }
        if (!r.OldActiveL1Kept) await counts.AddRangeAsync(_header.L1TableOffset, (long)_header.L1Size * 8, -1, ct).ConfigureAwait(false);
        if (_header.NbSnapshots > 0) await counts.AddRangeAsync(_header.SnapshotsOffset, _oldSnapshotTableBytes, -1, ct).ConfigureAwait(false);
        await counts.AddRangeAsync(_header.RefcountTableOffset, (long)_header.RefcountTableClusters * cs, -1, ct).ConfigureAwait(false);
        foreach (ulong e in _oldRefcountTable)
        {
            long block = (long)(e & ~511UL);
            if (block != 0) await counts.AddAsync(block >> _layout.ClusterBits, -1, ct).ConfigureAwait(false);
        }
        await AddClustersAsync(plan.L1Cluster, plan.L1Clusters, counts, ct).ConfigureAwait(false);
        await AddClustersAsync(plan.SnapshotTableCluster, plan.SnapshotTableClusters, counts, ct).ConfigureAwait(false);
        await AddClustersAsync(plan.RefcountTableCluster, plan.RefcountTableClusters, counts, ct).ConfigureAwait(false);
        await AddClustersAsync(plan.FirstBlockCluster, plan.Blocks, counts, ct).ConfigureAwait(false);
    }

    private static async Task AddClustersAsync(long first, long count, ShadowRefcounts counts, CancellationToken ct)
    {
        for (long c = first; c < first + count; c++) await counts.AddAsync(c, +1, ct).ConfigureAwait(false);
    }

    private async Task WalkTreeAsync(ulong[] l1, int delta, ShadowRefcounts counts, byte[] l2, CancellationToken ct)
    {
        foreach (ulong raw in l1)
        {
            var e = L1Entry.From(raw);
            if (!e.IsUnallocated) await WalkTableAsync(e.L2Offset, delta, counts, l2, ct).ConfigureAwait(false);
        }
    }

    /// <summary>One reference to an L2 table more or less: the table's count and one count for every cluster its entries reference (QEMU counts a shared table's clusters once per table that reaches them).</summary>
    private async Task WalkTableAsync(long offset, int delta, ShadowRefcounts counts, byte[] l2, CancellationToken ct)
    {
        int cs = _layout.ClusterSize;
        await ReadTableAsync(offset, l2, ct).ConfigureAwait(false);
        await counts.AddAsync(offset >> _layout.ClusterBits, delta, ct).ConfigureAwait(false);
        for (int k = 0; k < cs; k += 8 * _layout.L2EntryWords) // an extended entry's bitmap references nothing
        {
            ulong raw = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(k));
            var d = L2Entry.From(raw);
            if (d.IsCompressed)
            {
                var (first, last) = CompressedDescriptor.From(raw, _layout.ClusterBits).HostClusters(_layout.ClusterBits);
                for (long h = first; h <= last; h++) await counts.AddAsync(h, delta, ct).ConfigureAwait(false);
            }
            else if (d.HostOffset != 0)
            {
                await counts.AddAsync(d.HostOffset >> _layout.ClusterBits, delta, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task ReadTableAsync(long offset, byte[] l2, CancellationToken ct)
    {
        if ((offset & (_layout.ClusterSize - 1)) != 0 || (offset >> _layout.ClusterBits) >= _fileClusters)
            throw new ImageException(ImageError.Unsupported,
                $"an L2 table at host offset {offset} is unaligned or lies past the end of the file; repair the image with qemu-img check -r all", Corruption.Feature);
        await _file.ReadAsync(l2.AsMemory(0, _layout.ClusterSize), offset, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Pass 2, with the final counts of data clusters known: COPIED recomputed in every active L2
    /// table; a table whose entries change is copied to a fresh cluster (it may be a snapshot's too,
    /// and in place it would break rule 1), the copy counted 1 and the original one less.
    /// Returns the new active L1 table's bytes.
    /// </summary>
    private async Task<byte[]> BuildActiveTreeAsync(RewriteRequest r, RewriteLayout plan, ShadowRefcounts counts, FreshRegion region,
        byte[] l2, CancellationToken ct)
    {
        int cs = _layout.ClusterSize;
        var l1 = new byte[Math.Max(cs, r.NewActiveL1.Length * 8L)];
        long copies = 0;
        var known = new Dictionary<long, ulong>();
        for (int i = 0; i < r.NewActiveL1.Length; i++)
        {
            var e = L1Entry.From(r.NewActiveL1[i]);
            if (e.IsUnallocated) continue;
            await ReadTableAsync(e.L2Offset, l2, ct).ConfigureAwait(false);
            known.Clear();
            for (int k = 0; k < cs; k += 8 * _layout.L2EntryWords)
            {
                var d = L2Entry.From(BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(k)));
                if (d.IsCompressed || d.HostOffset == 0) continue;
                long c = d.HostOffset >> _layout.ClusterBits;
                if (!known.ContainsKey(c)) known[c] = await counts.GetAsync(c, ct).ConfigureAwait(false);
            }
            ulong entry;
            if (CopiedFlags.Recompute(l2.AsSpan(0, cs), _layout, c => known[c]))
            {
                long copy = (plan.FirstCopyCluster + copies++) << _layout.ClusterBits;
                await region.WriteAsync(l2.AsMemory(0, cs), copy, ct).ConfigureAwait(false);
                await counts.AddAsync(e.L2Offset >> _layout.ClusterBits, -1, ct).ConfigureAwait(false);
                await counts.AddAsync(copy >> _layout.ClusterBits, +1, ct).ConfigureAwait(false);
                entry = CopiedFlags.L1EntryFor(copy, 1);
            }
            else
            {
                entry = CopiedFlags.L1EntryFor(e.L2Offset, await counts.GetAsync(e.L2Offset >> _layout.ClusterBits, ct).ConfigureAwait(false));
            }
            BinaryPrimitives.WriteUInt64BigEndian(l1.AsSpan(i * 8), entry);
        }
        return l1;
    }
}
