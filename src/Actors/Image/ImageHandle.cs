using Akka.Actor;
using QcowActors.Actors.Backing;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// What a request needs of one open image to move bytes itself: its geometry, the file, the I/O
/// gate, and a narrow way to the image's mapping — map a range, try an in-place write plan, ask
/// its supervisor. Valid while the request holds a gate token of this incarnation (the gate keeps
/// the incarnation, its file and its supervisor alive until the token is returned).
/// </summary>
public sealed class ImageHandle
{
    private readonly L2Directory _directory;
    private readonly MetadataClusters _fences;
    private readonly IActorRef _supervisor;
    private ImageRefusal? _writeRefusal;

    internal ImageHandle(string image, QcowHeader header, IImageFile file, IoEpochGate gate, ImageRefusal? dataRefusal,
        ImageRefusal? writeRefusal, L2Directory directory, MetadataClusters fences, IActorRef supervisor, BackingDisk? backingDisk = null,
        Bitmaps.DirtyTracking? tracking = null)
    {
        Tracking = tracking ?? new Bitmaps.DirtyTracking();
        BackingDisk = backingDisk;
        Image = image;
        VirtualSize = header.Size;
        Version = (int)header.Version;
        Layout = header.Layout;
        CompressionType = header.CompressionType;
        Backing = header.BackingFile;
        BackingFormat = header.BackingFile is null ? null : BackingReference.FormatOf(header);
        Dirty = (header.IncompatibleFeatures & FeatureBits.IncompatibleDirty) != 0;
        SnapshotsOffset = header.SnapshotsOffset;
        SnapshotCount = header.NbSnapshots;
        File = file;
        Gate = gate;
        DataRefusal = dataRefusal;
        _writeRefusal = writeRefusal;
        _directory = directory;
        _fences = fences;
        _supervisor = supervisor;
    }

    public string Image { get; }
    public long VirtualSize { get; }
    public int Version { get; }
    public ClusterLayout Layout { get; }
    /// <summary>How its compressed clusters are compressed (<see cref="QcowCompression"/>).</summary>
    public byte CompressionType { get; }
    /// <summary>The backing file name its header records, or null.</summary>
    public string? Backing { get; }
    public string? BackingFormat { get; }
    /// <summary>The disk beneath this overlay (what its unallocated clusters read), open while this incarnation is.</summary>
    public BackingDisk? BackingDisk { get; }
    /// <summary>The persistent bitmaps that track writes: every write and zeroing marks its range here once done.</summary>
    public Bitmaps.DirtyTracking Tracking { get; }
    /// <summary>The dirty bit as the file had it at open (repaired since).</summary>
    public bool Dirty { get; }
    /// <summary>The snapshot table as the header had it at open: only a maintenance operation changes it, and that closes this incarnation first.</summary>
    internal long SnapshotsOffset { get; }
    internal uint SnapshotCount { get; }
    internal IImageFile File { get; }
    internal IoEpochGate Gate { get; }
    internal ImageRefusal? DataRefusal { get; }
    /// <summary>Why writes are refused, if they are; set by the supervisor when it marks the image corrupt.</summary>
    internal ImageRefusal? WriteRefusal => Volatile.Read(ref _writeRefusal);

    internal void RefuseWrites(ImageRefusal refusal) => Volatile.Write(ref _writeRefusal, refusal);

    private ImageException? _failure;
    /// <summary>Set when this incarnation can serve nothing more (a failed fsync): every request answers it until the image reopens.</summary>
    internal ImageException? Failure => Volatile.Read(ref _failure);
    internal void Fail(ImageException failure) => Volatile.Write(ref _failure, failure);

    /// <summary>Throws what every request of a failed incarnation answers (a fresh exception each time: requests run concurrently).</summary>
    internal void ThrowIfFailed()
    {
        if (Failure is { } f) throw new ImageException(f.Error, f.Message, f.Feature);
    }

    /// <summary>The runs of a range inside one L2 table when they are known here; null = ask (<see cref="MapRange"/>).</summary>
    internal List<MappedRun>? TryMap(long offset, long length) => _directory.TryMap(offset, length);

    /// <summary>
    /// A plan for a write inside one L2 table that lands in place (clusters this image alone holds),
    /// or null (ask <see cref="PrepareWrite"/>). A target holding metadata is reported to the
    /// supervisor, which marks the image corrupt, and refused here.
    /// </summary>
    internal WritePlan? TryPlanInPlace(long offset, long length)
    {
        try
        {
            return _directory.TryPlanInPlace(offset, length, _fences);
        }
        catch (FenceViolationException e)
        {
            _supervisor.Tell(new ReportCorruption(Image, e.Message));
            throw Corruption.WriteRefused(Image, e.Message);
        }
    }

    internal List<ExtentRun>? TryExtents(long l1Index) => _directory.TryExtents(l1Index);

    /// <summary>The first host cluster the image does not have: data mapped at or past it is corrupt metadata, never zeros.</summary>
    internal long EndCluster => _fences.EndCluster;

    /// <summary>Asks the image's supervisor (every image message while a token is held goes this way).</summary>
    internal async Task<T> AskAsync<T>(IImageMessage message, TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            return await _supervisor.Ask<T>(message, timeout, ct).ConfigureAwait(false);
        }
        catch (AskTimeoutException e)
        {
            throw new ImageException(ImageError.Unavailable, $"image '{Image}' did not answer in time; try again", null, e);
        }
    }

    internal void Tell(IImageMessage message) => _supervisor.Tell(message);
}
