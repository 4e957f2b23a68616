namespace QcowActors.Actors.Io;

/// <summary>
/// The one seam every byte and fsync of an image goes through (positional I/O, no shared file
/// position). Tests wrap it to hold writes, inject failures, or record writes and fsyncs and
/// replay the states a power loss could leave.
/// </summary>
public interface IImageFile : IAsyncDisposable
{
    string Path { get; }
    long Length { get; }
    /// <summary>Reads up to buffer.Length bytes at offset; past the end of the file reads as zeros.</summary>
    ValueTask ReadAsync(Memory<byte> buffer, long offset, CancellationToken ct);
    ValueTask WriteAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct);
    /// <summary>fsync: every write that completed before this call is durable when it returns.</summary>
    ValueTask FlushAsync(CancellationToken ct);
}

/// <summary>Opens image files and makes directory changes durable; replaced in tests.</summary>
public interface IImageFileSystem
{
    IImageFile Open(string path, bool writable);
    /// <summary>Opens an image read-only with a shared lock: a backing image, or an image other images use as one.</summary>
    IImageFile OpenShared(string path) => Open(path, writable: false);
    /// <summary>Creates a file with the given content durably and atomically under finalPath (fails if it exists).</summary>
    Task CreateAtomicAsync(string finalPath, IEnumerable<(long Offset, ReadOnlyMemory<byte> Bytes)> writes, long length, CancellationToken ct);
    /// <summary>fsync of a directory, so a rename or unlink in it survives power loss.</summary>
    void SyncDirectory(string directory);
    /// <summary>Creates an empty marker file (or finds it there) without following a link planted under its name.</summary>
    void CreateMarker(string path) => DiskFileSystem.CreateMarkerFile(path);
}

/// <summary>
/// An fsync of an image failed. Linux may have dropped the dirty pages it could not write and will
/// not report that again, so a later fsync that succeeds proves nothing: the image must be reopened
/// (and repaired) before anything it holds is called durable — the lesson PostgreSQL learnt.
/// </summary>
public sealed class FsyncFailedException(string path, Exception inner)
    : IOException($"fsync of '{Path.GetFileName(path)}' failed: {inner.Message}", inner);

public static class ImageFileExtensions
{
    /// <summary>The flush path's fsync: any failure becomes <see cref="FsyncFailedException"/>.</summary>
    public static async ValueTask FsyncAsync(this IImageFile file, CancellationToken ct)
    {
        try
        {
            await file.FlushAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException and not FsyncFailedException)
        {
            throw new FsyncFailedException(file.Path, e);
        }
    }
}
