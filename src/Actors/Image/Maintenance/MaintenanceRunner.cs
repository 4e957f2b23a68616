using System.Buffers.Binary;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image.Maintenance;

/// <summary>
/// Runs one <see cref="MaintenanceOperation"/> on an image file that no supervisor has open (the
/// store closed it and holds its messages): opens the file with its lock (no other process may open
/// it meanwhile), refuses what the engine would refuse to write, turns the operation into a
/// <see cref="RewriteRequest"/> and runs the <see cref="MetadataRewrite"/>. Its memory is reserved in
/// the metadata budget first. The next request opens the image again from what is on disk.
/// </summary>
internal static class MaintenanceRunner
{
    public static async Task<object> RunAsync(string name, string path, IImageFileSystem fs, MetadataBudget budget, TimeSpan waitLimit,
        MaintenanceOperation operation, CancellationToken ct)
    {
        IImageFile file;
        try { file = fs.Open(path, writable: true); }
        catch (UnauthorizedAccessException)
        {
            throw new ImageException(ImageError.Unsupported, $"image '{name}': the image file is not writable by the server", "read-only file");
        }
        await using var _ = file;
        var header = await ImageOpener.ReadHeaderAsync(file, file.Length, ct).ConfigureAwait(false);
        if ((ImageOpener.DataRefusal(header) ?? ImageOpener.WriteRefusal(header, writable: true)) is { } refusal)
            throw new ImageException(ImageError.Unsupported, $"image '{name}': {refusal.Detail}", refusal.Feature);
        if ((header.IncompatibleFeatures & FeatureBits.IncompatibleDirty) != 0)
            throw new ImageException(ImageError.Unavailable, $"image '{name}' carries the dirty bit (its refcounts are being repaired); try again");

        var (snapshots, tableBytes) = await SnapshotTableReader.ReadAsync(file, header.SnapshotsOffset, header.NbSnapshots, (int)header.Version, ct).ConfigureAwait(false);
        long l1Bytes = (long)header.L1Size * 8;
        long memory = l1Bytes + (long)header.RefcountTableClusters * header.ClusterSize
            + MetadataRewrite.MemoryBytes(header, Math.Max(header.L1Size, MaxL1EntriesOf(operation, header, snapshots)), tableBytes + 4096);
        if (!await budget.ReserveAsync(memory, waitLimit, ct).ConfigureAwait(false))
            throw new ImageException(ImageError.Unavailable,
                $"image '{name}': the metadata cache (Storage:MetadataCacheBytesTotal) stayed full for {waitLimit.TotalSeconds:0.#} s; try again");
        try
        {
            var l1 = await ImageOpener.ReadTableAsync(file, header.L1TableOffset, header.L1Size, ct).ConfigureAwait(false);
            var refTable = await ImageOpener.ReadTableAsync(file, header.RefcountTableOffset, (long)header.RefcountTableClusters * header.ClusterSize / 8, ct).ConfigureAwait(false);
            // The open's checks first: a closed image may be corrupt (a v2 image keeps no corrupt bit), and the rewrite trusts its tables.
            var refTableBytes = new byte[refTable.Length * 8];
            for (int t = 0; t < refTable.Length; t++) System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(refTableBytes.AsSpan(t * 8), refTable[t]);
            if (await ImageOpener.FenceAsync(file, header, l1, refTableBytes, new MetadataClusters(header.Layout.ClusterBits),
                    header.Layout.ClustersFor(file.Length), ct).ConfigureAwait(false) is { } violation)
                throw new ImageException(ImageError.Unsupported,
                    $"image '{name}' has corrupt metadata ({violation}); repair it with qemu-img check -r all", Corruption.Feature);
            // Read only by the operations that rewrite bitmaps.
            Task<Bitmaps.StoredBitmaps?> StoredAsync() => Bitmaps.BitmapLoader.ReadDirectoryAsync(file, header, ct, budget.PerImageBytes);
            var rewrite = new MetadataRewrite(file, header, l1, refTable, tableBytes);
            var ops = new MaintenancePlans(name, file, header, l1, snapshots);
            switch (operation)
            {
                case CreateSnapshotOperation c:
                {
                    var (request, created) = ops.Create(c.Name, DateTimeOffset.UtcNow);
                    var after = await rewrite.RunAsync(request, ct).ConfigureAwait(false);
                    return SnapshotInfo.From(created, after.Size);
                }
                case CreateCheckpointOperation c:
                {
                    var (request, _) = ops.Create(c.Name, DateTimeOffset.UtcNow);
                    await RewriteAsync(rewrite, request, await CheckpointBitmapsAsync(name, file, header, await StoredAsync().ConfigureAwait(false), c, budget, waitLimit, ct)
                        .ConfigureAwait(false), budget, ct).ConfigureAwait(false);
                    return new BitmapInfo(c.Name, 1L << c.GranularityBits, c.Enabled, true, 0);
                }
                case DeleteSnapshotOperation d:
                {
                    var (request, deleted) = ops.Delete(d.IdOrName);
                    var after = await rewrite.RunAsync(request, ct).ConfigureAwait(false);
                    return SnapshotInfo.From(deleted, after.Size);
                }
                case RevertSnapshotOperation r:
                {
                    var request = await ops.RevertAsync(r.IdOrName, ct).ConfigureAwait(false);
                    var after = await RewriteAsync(rewrite, request, await ResizedBitmapsAsync(file, header, await StoredAsync().ConfigureAwait(false), request.NewSize,
                        allDirty: true, budget, waitLimit, ct).ConfigureAwait(false), budget, ct).ConfigureAwait(false);
                    return ImageInfo.FromHeader(name, after, file.Length);
                }
                case ResizeOperation z:
                {
                    var request = await ops.ResizeAsync(z.NewSize, ct).ConfigureAwait(false);
                    var after = await RewriteAsync(rewrite, request, await ResizedBitmapsAsync(file, header, await StoredAsync().ConfigureAwait(false), request.NewSize,
                        allDirty: false, budget, waitLimit, ct).ConfigureAwait(false), budget, ct).ConfigureAwait(false);
                    return ImageInfo.FromHeader(name, after, file.Length);
                }
                default:
                    throw new ArgumentException($"unknown maintenance operation {operation.GetType().Name}");
            }
        }
        catch (QcowFormatException e)
        {
            var kind = e.Problem == QcowProblem.LimitExceeded ? ImageError.LimitExceeded : ImageError.Unsupported;
            throw new ImageException(kind, $"image '{name}': {e.Message}", e.Feature ?? e.Field, e);
        }
        finally
        {
            budget.Release(memory);
        }
    }

    private sealed record RewrittenBitmaps(Bitmaps.BitmapStorePlan Plan, long Memory);

    /// <summary>The shadow commit, carrying the bitmaps' plan when there is one; their memory goes back after it.</summary>
    private static async Task<QcowHeader> RewriteAsync(MetadataRewrite rewrite, RewriteRequest request, RewrittenBitmaps? bitmaps, MetadataBudget budget, CancellationToken ct)
    {
        try
        {
            return await rewrite.RunAsync(request, ct, bitmaps?.Plan).ConfigureAwait(false);
        }
        finally
        {
            if (bitmaps is not null) budget.Release(bitmaps.Memory);
        }
    }

    /// <summary>
    /// A bitmap's table is sized for the disk: when the size changes, each consistent bitmap is
    /// rewritten for the new size — its bits kept (the grown part clean, as QEMU grows them), or all
    /// set after a revert — and an in-use one is kept as it is (QEMU does not size-check those).
    /// Null when nothing changes.
    /// </summary>
    private static async Task<RewrittenBitmaps?> ResizedBitmapsAsync(IImageFile file, QcowHeader header, Bitmaps.StoredBitmaps? stored, long newSize,
        bool allDirty, MetadataBudget budget, TimeSpan waitLimit, CancellationToken ct)
    {
        if (stored is null || newSize == header.Size || stored.Entries.All(e => e.InUse)) return null;
        if (newSize == 0)
            throw new ImageException(ImageError.Conflict, "the disk would be 0 bytes: remove its persistent bitmaps first (a bitmap of no bytes cannot be stored)");
        return await RewriteBitmapsAsync(file, header, stored, newSize, bits =>
        {
            if (!allDirty) return bits.Resized(newSize, markGrownDirty: false);
            var all = new DirtyBits(newSize, bits.GranularityBits);
            all.SetAll();
            return all;
        }, added: null, budget, waitLimit, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Every consistent bitmap written anew (its bits from <paramref name="bitsFor"/>), an in-use one
    /// kept, and <paramref name="added"/> after them: the plan a shadow commit carries out. The bits'
    /// memory (the stored bits, and new ones when the size changes) is reserved in the budget first;
    /// the caller releases <see cref="RewrittenBitmaps.Memory"/>.
    /// </summary>
    private static async Task<RewrittenBitmaps> RewriteBitmapsAsync(IImageFile file, QcowHeader header, Bitmaps.StoredBitmaps? stored, long newSize,
        Func<DirtyBits, DirtyBits> bitsFor, Bitmaps.PersistentBitmap? added, MetadataBudget budget, TimeSpan waitLimit, CancellationToken ct)
    {
        long memory = (stored?.Entries ?? []).Where(e => !e.InUse)
            .Sum(e => Bitmaps.PersistentBitmap.MemoryFor(header.Size, e.GranularityBits)
                      + (newSize != header.Size ? Bitmaps.PersistentBitmap.MemoryFor(newSize, e.GranularityBits) : 0))
            + (added?.MemoryBytes ?? 0);
        if (!await budget.ReserveAsync(memory, waitLimit, ct).ConfigureAwait(false))
            throw new ImageException(ImageError.Unavailable, "the metadata cache (Storage:MetadataCacheBytesTotal) stayed full while the bitmaps were rewritten; try again");
        try
        {
            var loaded = stored is null ? [] : await Bitmaps.BitmapLoader.LoadAsync(file, header, stored, _ => Task.CompletedTask, ct).ConfigureAwait(false);
            var bitmaps = loaded.Select(b => b.Bits is null ? b
                : new Bitmaps.PersistentBitmap(b.Name, b.GranularityBits, b.Enabled, bitsFor(b.Bits), b.ExtraData) { Stored = b.Stored, StoredClusters = b.StoredClusters })
                .ToList();
            if (added is not null) bitmaps.Add(added);
            var keeper = new Bitmaps.BitmapKeeper(header.Layout, newSize, bitmaps, stored?.DirectoryClusters(header.ClusterBits) ?? []);
            return new RewrittenBitmaps(keeper.Plan(closing: true), memory);
        }
        catch
        {
            budget.Release(memory);
            throw;
        }
    }

    /// <summary>
    /// A checkpoint's bitmap: refused like an add (the service checked the version and size under its
    /// gate entry; a name taken or too many bitmaps are checked here, on the file), then planned with every other bitmap.
    /// </summary>
    private static Task<RewrittenBitmaps> CheckpointBitmapsAsync(string name, IImageFile file, QcowHeader header, Bitmaps.StoredBitmaps? stored,
        CreateCheckpointOperation c, MetadataBudget budget, TimeSpan waitLimit, CancellationToken ct)
    {
        if (stored is not null && stored.Entries.Any(e => e.Name == c.Name))
            throw new ImageException(ImageError.AlreadyExists, $"image '{name}' already has a bitmap named '{c.Name}'");
        if (stored is not null && stored.Entries.Count >= BitmapLimits.MaxBitmaps)
            throw new ImageException(ImageError.Conflict, $"image '{name}' has {stored.Entries.Count} bitmaps, the most a qcow2 image may hold");
        var added = new Bitmaps.PersistentBitmap(c.Name, c.GranularityBits, c.Enabled, new DirtyBits(header.Size, c.GranularityBits), []);
        return RewriteBitmapsAsync(file, header, stored, header.Size, bits => bits, added, budget, waitLimit, ct);
    }

    /// <summary>The largest L1 the operation may build (reserved before the tables are read).</summary>
    private static long MaxL1EntriesOf(MaintenanceOperation operation, QcowHeader header, IReadOnlyList<SnapshotEntry> snapshots) => operation switch
    {
        ResizeOperation z when z.NewSize >= 0 => Math.Min(header.Layout.L1EntriesFor(z.NewSize), QcowLimits.MaxL1Bytes / 8),
        RevertSnapshotOperation => snapshots.Select(s => Math.Max(s.L1Size, header.Layout.L1EntriesFor(Math.Max(0, s.DiskSize)))).DefaultIfEmpty(0).Max(),
        _ => header.L1Size,
    };

}
