using System.IO.Pipelines;

namespace QcowActors.Actors.Service;

/// <summary>
/// What the HTTP layer may do with the store. Every call names the image (or holds an
/// <see cref="ImageSession"/> of it). Errors are <see cref="ImageException"/>.
/// </summary>
public interface IImageService
{
    Task<ImageInfo> CreateAsync(string name, long virtualSize, int? clusterSize, int? refcountBits, CancellationToken ct);
    /// <summary>Creates an image with every layout and feature option (<see cref="Format.CreateOptions"/>).</summary>
    Task<ImageInfo> CreateAsync(string name, Format.CreateOptions options, CancellationToken ct);
    /// <summary>Lists the store without opening images (reads each file's header only).</summary>
    Task<IReadOnlyList<ImageInfo>> ListAsync(CancellationToken ct);
    Task<ImageInfo> GetInfoAsync(string name, CancellationToken ct);
    Task DeleteAsync(string name, CancellationToken ct);

    /// <summary>
    /// Lets go of the image on this node: requests inside finish, everything is flushed, the file is
    /// closed cleanly and its locks released. The next request opens it again. 404 for an unknown name.
    /// </summary>
    Task CloseAsync(string name, CancellationToken ct);

    /// <summary>
    /// Opens the image for one request: its I/O gate is entered once, and that entry serves the
    /// request's first operation (see <see cref="ImageSession"/>). Dispose it when the request ends.
    /// </summary>
    Task<ImageSession> OpenAsync(string name, CancellationToken ct);

    /// <summary>
    /// Opens a raw image of the store (NAME.raw, no NAME.qcow2) for one request's reads; null when
    /// the name is not one (then <see cref="OpenAsync"/>: the common case costs no extra await).
    /// </summary>
    Task<IDiskReader>? OpenRawAsync(string name, CancellationToken ct);

    /// <summary>
    /// Maps [offset, offset+length) completely (the caller checked the range against the size)
    /// and returns a plan that holds a read lease until disposed. Mapping errors (422 features,
    /// unknown image) surface here, before any response header is sent.
    /// </summary>
    Task<DiskReadPlan> PlanReadAsync(string name, long offset, long length, CancellationToken ct);

    /// <summary>Writes data at offset. Returns when the bytes are in the file and mapped (not yet durable).</summary>
    Task WriteAsync(string name, long offset, ReadOnlyMemory<byte> data, CancellationToken ct);

    /// <summary>Makes [offset, offset+length) read as zeros: whole clusters become zero clusters or are released.</summary>
    Task ZeroAsync(string name, long offset, long length, CancellationToken ct);

    /// <summary>Makes every write acknowledged before this call durable (ordered metadata writes and fsyncs).</summary>
    Task FlushAsync(string name, CancellationToken ct);

    /// <summary>
    /// Extents covering the whole disk in order, adjacent equal ones merged. The image is checked
    /// before this returns; the extents are produced as they are enumerated (a failure then
    /// surfaces from the enumeration).
    /// </summary>
    Task<IAsyncEnumerable<DiskExtent>> GetExtentsAsync(string name, CancellationToken ct);

    /// <summary>The image's internal snapshots, in table order.</summary>
    Task<IReadOnlyList<SnapshotInfo>> ListSnapshotsAsync(string name, CancellationToken ct);

    /// <summary>Takes an internal snapshot of the disk (the image is briefly closed: requests meanwhile wait).</summary>
    Task<SnapshotInfo> CreateSnapshotAsync(string name, string snapshotName, CancellationToken ct);

    /// <summary>Deletes a snapshot by id or unique name; returns what it was.</summary>
    Task<SnapshotInfo> DeleteSnapshotAsync(string name, string idOrName, CancellationToken ct);

    /// <summary>Makes the disk the snapshot's (contents and size); the snapshot stays.</summary>
    Task<ImageInfo> RevertSnapshotAsync(string name, string idOrName, CancellationToken ct);

    /// <summary>Changes the virtual size; a shrink that would drop data is refused (409).</summary>
    Task<ImageInfo> ResizeAsync(string name, long size, CancellationToken ct);

    /// <summary>A read-only view of one snapshot for one request; dispose it when the request ends.</summary>
    Task<SnapshotView> OpenSnapshotAsync(string name, string idOrName, CancellationToken ct);

    /// <summary>The image's persistent dirty bitmaps, in directory order.</summary>
    Task<IReadOnlyList<Image.BitmapInfo>> ListBitmapsAsync(string name, CancellationToken ct);

    /// <summary>
    /// Adds a persistent bitmap (durable when this returns). With <paramref name="checkpoint"/> an
    /// internal snapshot of the same name follows it: the disk as of the bitmap's start.
    /// </summary>
    Task<Image.BitmapInfo> AddBitmapAsync(string name, string bitmap, long granularity, bool enabled, bool checkpoint, CancellationToken ct);

    /// <summary>Removes a bitmap (durable when this returns); returns what it was.</summary>
    Task<Image.BitmapInfo> RemoveBitmapAsync(string name, string bitmap, CancellationToken ct);

    /// <summary>Enables or disables a bitmap and/or clears it.</summary>
    Task<Image.BitmapInfo> ChangeBitmapAsync(string name, string bitmap, bool? enabled, bool clear, CancellationToken ct);

    /// <summary>404 unless the image has this bitmap (no count of its bits: cheap enough for every request of its transfer URL).</summary>
    Task RequireBitmapAsync(string name, string bitmap, CancellationToken ct);

    /// <summary>imageio's dirty extents of a bitmap over the whole disk, or over a snapshot's disk.</summary>
    Task<IAsyncEnumerable<DirtyExtent>> GetDirtyExtentsAsync(string name, string bitmap, string? snapshot, CancellationToken ct);
}

/// <summary>A range of the virtual disk: zero = reads as zeros, hole = no data stored in this image for it.</summary>
public sealed record DiskExtent(long Start, long Length, bool Zero, bool Hole);

/// <summary>Image information as served by GET /images/{name}.</summary>
public sealed record ImageInfo(
    string Name,
    string Format,
    int Version,
    long VirtualSize,
    long ActualSize,
    int ClusterSize,
    int RefcountBits,
    string? Backing,
    bool Dirty)
{
    /// <summary>The backing file's format as the header records it (qcow2, raw), or null.</summary>
    public string? BackingFormat { get; init; }

    /// <summary>The info of an image file from its header and its length on disk.</summary>
    public static ImageInfo FromHeader(string name, QcowActors.Format.QcowHeader h, long actualSize)
        => new(name, "qcow2", (int)h.Version, h.Size, actualSize, h.ClusterSize, h.RefcountBits, h.BackingFile,
            (h.IncompatibleFeatures & QcowActors.Format.FeatureBits.IncompatibleDirty) != 0)
        {
            BackingFormat = h.BackingFile is null ? null : QcowActors.Actors.Backing.BackingReference.FormatOf(h),
        };

    /// <summary>A raw image of the store: its bytes are the disk.</summary>
    public static ImageInfo Raw(string name, long length) => new(name, "raw", 0, length, length, 0, 0, null, false);
}

/// <summary>
/// A fully mapped read. Copy it into a PipeWriter (RandomAccess reads straight into the writer's
/// memory); dispose to release the lease that keeps its host clusters from being reused.
/// </summary>
/// <summary>A virtual disk a request reads by ranges: the image's (<see cref="ImageSession"/>) or a snapshot's (<see cref="SnapshotView"/>).</summary>
public interface IDiskReadSource
{
    long VirtualSize { get; }
    /// <summary>Maps [offset, offset+length); the plan holds what keeps the mapped clusters in place until disposed.</summary>
    Task<DiskReadPlan> PlanReadAsync(long offset, long length, CancellationToken ct);
}

public abstract class DiskReadPlan : IAsyncDisposable
{
    public abstract long Offset { get; }
    public abstract long Length { get; }
    /// <summary>Streams exactly Length bytes; throws on I/O failure (the caller aborts the connection).</summary>
    public abstract Task CopyToAsync(PipeWriter destination, CancellationToken ct);
    public abstract ValueTask DisposeAsync();
}
