using QcowActors.Actors.Image;
using QcowActors.Actors.Image.Bitmaps;
using QcowActors.Format;

namespace QcowActors.Actors.Service;

/// <summary>
/// Persistent dirty bitmaps: listing and changing them goes to the image's supervisor under a gate
/// entry; a checkpoint (a bitmap and an internal snapshot of the same name) is a maintenance operation,
/// one shadow commit with the image closed.
/// </summary>
public sealed partial class ImageService
{
    public async Task<IReadOnlyList<BitmapInfo>> ListBitmapsAsync(string name, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token)
        {
            ThrowIfRefused(handle, write: false);
            return (await handle.AskAsync<BitmapList>(new ListBitmaps(handle.Image), AskTimeout, ct).ConfigureAwait(false)).Bitmaps;
        }
    }

    public async Task<BitmapInfo> AddBitmapAsync(string name, string bitmap, long granularity, bool enabled, bool checkpoint, CancellationToken ct)
    {
        if (BitmapNames.Validate(bitmap) is { } problem) throw new ImageException(ImageError.InvalidArgument, problem);
        var (bits, granularityProblem) = BitmapNames.Granularity(granularity);
        if (granularityProblem is not null) throw new ImageException(ImageError.InvalidArgument, granularityProblem);
        if (checkpoint && SnapshotNames.Validate(bitmap) is { } snapshotProblem)
            throw new ImageException(ImageError.InvalidArgument, $"a checkpoint's snapshot takes the bitmap's name: {snapshotProblem}");
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token)
        {
            ThrowIfRefused(handle, write: true);
            if (handle.VirtualSize == 0) throw new ImageException(ImageError.Conflict, $"image '{name}' has a disk of 0 bytes: a bitmap would track nothing");
            if (handle.Version < 3)
                throw new ImageException(ImageError.Conflict, $"image '{name}' is a version 2 (compat=0.10) image, which cannot hold persistent bitmaps; "
                    + "qemu-img amend -o compat=1.1 upgrades it");
            if (!checkpoint)
            {
                // Not cancellable: once asked, the bitmap is added; the answer says so.
                return await handle.AskAsync<BitmapInfo>(new AddBitmap(handle.Image, bitmap, bits, enabled), AskTimeout, CancellationToken.None).ConfigureAwait(false);
            }
            if ((await handle.AskAsync<BitmapList>(new ListBitmaps(handle.Image), AskTimeout, ct).ConfigureAwait(false)).Bitmaps.Any(b => b.Name == bitmap))
                throw new ImageException(ImageError.AlreadyExists, $"image '{name}' already has a bitmap named '{bitmap}'");
        }
        // The bitmap and its snapshot in one shadow commit, with the image closed: every write acknowledged
        // before is in the snapshot, every write after is marked in the bitmap, and a crash leaves both or neither.
        return await MaintainAsync<BitmapInfo>(name, new Image.Maintenance.CreateCheckpointOperation(bitmap, bits, enabled), ct).ConfigureAwait(false);
    }

    public async Task<BitmapInfo> RemoveBitmapAsync(string name, string bitmap, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token)
        {
            ThrowIfRefused(handle, write: true);
            return await handle.AskAsync<BitmapInfo>(new RemoveBitmap(handle.Image, bitmap), AskTimeout, CancellationToken.None).ConfigureAwait(false);
        }
    }

    public async Task<BitmapInfo> ChangeBitmapAsync(string name, string bitmap, bool? enabled, bool clear, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token)
        {
            ThrowIfRefused(handle, write: true);
            return await handle.AskAsync<BitmapInfo>(new ChangeBitmap(handle.Image, bitmap, enabled, clear), AskTimeout, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The bitmap's dirty extents over the whole disk — or, with <paramref name="snapshot"/>, over that
    /// snapshot's disk — with the zero flag of the disk (or snapshot) read there. 404 for an unknown
    /// bitmap, 409 for an inconsistent one, before anything is returned.
    /// </summary>
    public async Task<IAsyncEnumerable<DirtyExtent>> GetDirtyExtentsAsync(string name, string bitmap, string? snapshot, CancellationToken ct)
    {
        if (await BitsOfAsync(name, bitmap, ct).ConfigureAwait(false) is not { } bits) throw BitmapKeeper.Inconsistent(name, bitmap);
        if (snapshot is null) return DirtyExtentMerger.MergeAsync(await GetExtentsAsync(name, ct).ConfigureAwait(false), bits, ct);
        var view = await OpenSnapshotAsync(name, snapshot, ct).ConfigureAwait(false);
        await view.DisposeAsync().ConfigureAwait(false); // checked; the enumeration holds its own gate entry
        return DirtyExtentMerger.MergeAsync(view.GetExtentsAsync(ct), bits, ct);
    }

    public async Task RequireBitmapAsync(string name, string bitmap, CancellationToken ct) => await BitsOfAsync(name, bitmap, ct).ConfigureAwait(false);

    /// <summary>The bitmap's bits (null when inconsistent); 404 for an unknown bitmap.</summary>
    private async Task<DirtyBits?> BitsOfAsync(string name, string bitmap, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token)
        {
            ThrowIfRefused(handle, write: false);
            return (await handle.AskAsync<BitmapBits>(new GetBitmapBits(handle.Image, bitmap), AskTimeout, ct).ConfigureAwait(false)).Bits;
        }
    }

    /// <summary>Before a revert replaces the disk: every bitmap's bits set (each block may differ now).</summary>
    internal async Task MarkBitmapsDirtyAsync(string name, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token) await handle.AskAsync<BitmapList>(new MarkBitmapsDirty(handle.Image), AskTimeout, ct).ConfigureAwait(false);
    }
}
