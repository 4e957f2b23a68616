using QcowActors.Actors.Image;
using QcowActors.Actors.Image.Maintenance;
using QcowActors.Actors.Store;
using QcowActors.Format;

namespace QcowActors.Actors.Service;

/// <summary>
/// Snapshots and resize. Listing and reading a snapshot need no more than a gate entry (the
/// snapshot table and the snapshots' tables change only while the image is closed). Create, delete,
/// revert and resize are maintenance operations: the request checks what it can under a gate entry,
/// leaves the gate, and asks the store to run the operation with the image closed
/// (<see cref="RunMaintenance"/>); requests arriving meanwhile wait and then see the new state.
/// </summary>
public sealed partial class ImageService
{
    /// <summary>How long a maintenance operation may take before its request gives up waiting (it still completes).</summary>
    private TimeSpan MaintenanceTimeout => AskTimeout > TimeSpan.FromMinutes(10) ? AskTimeout : TimeSpan.FromMinutes(10);

    public async Task<IReadOnlyList<SnapshotInfo>> ListSnapshotsAsync(string name, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token)
        {
            var entries = await ReadSnapshotsAsync(handle, ct).ConfigureAwait(false);
            return entries.Select(e => SnapshotInfo.From(e, handle.VirtualSize)).ToList();
        }
    }

    internal static async Task<IReadOnlyList<SnapshotEntry>> ReadSnapshotsAsync(ImageHandle handle, CancellationToken ct)
    {
        try
        {
            return (await SnapshotTableReader.ReadAsync(handle.File, handle.SnapshotsOffset, handle.SnapshotCount, handle.Version, ct).ConfigureAwait(false)).Entries;
        }
        catch (QcowFormatException e)
        {
            throw new ImageException(ImageError.Unsupported, $"image '{handle.Image}': its snapshot table is unreadable: {e.Message}", "snapshot table", e);
        }
    }

    public Task<SnapshotInfo> CreateSnapshotAsync(string name, string snapshotName, CancellationToken ct)
    {
        if (SnapshotNames.Validate(snapshotName) is { } problem) throw new ImageException(ImageError.InvalidArgument, problem);
        return MaintainAsync<SnapshotInfo>(name, new CreateSnapshotOperation(snapshotName), ct);
    }

    public Task<SnapshotInfo> DeleteSnapshotAsync(string name, string idOrName, CancellationToken ct)
        => MaintainAsync<SnapshotInfo>(name, new DeleteSnapshotOperation(idOrName), ct);

    public async Task<ImageInfo> RevertSnapshotAsync(string name, string idOrName, CancellationToken ct)
    {
        // Every block may differ after a revert: each bitmap becomes fully dirty first (stored so at the close the revert makes).
        await using (await OpenSnapshotAsync(name, idOrName, ct).ConfigureAwait(false)) { }
        await MarkBitmapsDirtyAsync(name, ct).ConfigureAwait(false);
        return await MaintainAsync<ImageInfo>(name, new RevertSnapshotOperation(idOrName), ct).ConfigureAwait(false);
    }

    public Task<ImageInfo> ResizeAsync(string name, long size, CancellationToken ct)
        => MaintainAsync<ImageInfo>(name, new ResizeOperation(size), ct);

    /// <summary>
    /// Opens the image first (a missing, unopenable or write-refused image answers as any write
    /// would; an image not closed cleanly is repaired by that open), then leaves its gate — the
    /// operation waits for every gate entry to end — and has the store run the operation.
    /// </summary>
    private async Task<T> MaintainAsync<T>(string name, MaintenanceOperation operation, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token) ThrowIfRefused(handle, write: true);
        try
        {
            return await Akka.Actor.Futures.Ask<T>(_store, new RunMaintenance(name, operation), MaintenanceTimeout, ct).ConfigureAwait(false);
        }
        catch (Akka.Actor.AskTimeoutException e)
        {
            throw new ImageException(ImageError.Unavailable, $"image '{name}': the operation did not finish within {MaintenanceTimeout.TotalMinutes:0} minutes; it goes on, check the image later", null, e);
        }
    }

    /// <summary>A read-only view of one snapshot for one request (see <see cref="SnapshotView"/>).</summary>
    public async Task<SnapshotView> OpenSnapshotAsync(string name, string idOrName, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        try
        {
            ThrowIfRefused(handle, write: false);
            var entries = await ReadSnapshotsAsync(handle, ct).ConfigureAwait(false);
            if (SnapshotNames.IsAmbiguous(entries, idOrName))
                throw new ImageException(ImageError.Conflict, $"image '{name}' has several snapshots named '{idOrName}'; address one by its id");
            var entry = SnapshotNames.Find(entries, idOrName)
                ?? throw new ImageException(ImageError.NotFound, $"image '{name}' has no snapshot with id or name '{idOrName}'");
            return new SnapshotView(this, handle, token, entry);
        }
        catch
        {
            token.Dispose();
            throw;
        }
    }
}
