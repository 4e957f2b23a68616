using Microsoft.Win32.SafeHandles;

namespace QcowActors.Actors.Io;

/// <summary>
/// An image file on disk, read and written with RandomAccess at explicit offsets. It is held with
/// an exclusive lock from open to close (a backing image: a shared one) (FileShare.None: .NET takes flock(LOCK_EX|LOCK_NB)), so a
/// second process, on this node or another one sharing the store, cannot open it at the same time:
/// that is the storage-level fence behind "one writer per image". On that same open file
/// description it takes QEMU's permission locks (<see cref="QemuPermissionLocks"/>), so QEMU's
/// tools and the server refuse each other's conflicting opens.
/// </summary>
public sealed class RandomAccessImageFile : IImageFile
{
    private const int EWOULDBLOCK = 11;
    private readonly SafeFileHandle _handle;
    private int _disposed;

    /// <param name="shared">
    /// Read-only, held with a shared lock (FileShare.Read: flock(LOCK_SH)) — a backing image, which
    /// any number of overlays and nodes read at once while nobody may write it.
    /// </param>
    public RandomAccessImageFile(string path, bool writable, bool shared = false)
    {
        if (shared && writable) throw new ArgumentException("a shared image file is read-only", nameof(shared));
        Path = path;
        // Never follow a link out of the store, never block opening a FIFO: regular files only.
        if (FileKind.NotAnImage(FileKind.Of(path)) is { } notAnImage) throw new NotAnImageFileException(path, notAnImage);
        try
        {
            _handle = File.OpenHandle(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read,
                shared ? FileShare.Read : FileShare.None, FileOptions.Asynchronous);
        }
        catch (IOException e) when (e.HResult == EWOULDBLOCK && e is not FileNotFoundException)
        {
            throw new ImageLockedException(path, e);
        }
        // The cluster fence (flock) first, then QEMU's locks on the same open file description.
        try
        {
            // Checked again on the descriptor: the entry may have been replaced since the lstat.
            if (FileKind.NotAnImage(FileKind.Of(_handle)) is { } replaced) throw new NotAnImageFileException(path, replaced);
            // open() and flock() are two calls: a DELETE elsewhere may take the lock, unlink the file and
            // let go in between. Writes acknowledged into an unlinked file would be lost: it is gone.
            if (FileKind.LinkCount(_handle) == 0) throw new FileNotFoundException($"the image file was deleted while it was being opened", path);
            QemuPermissionLocks.Acquire(_handle, path, writable);
        }
        catch
        {
            QemuPermissionLocks.Release(_handle);
            _handle.Dispose();
            throw;
        }
        WriterLog.Opened(path);
    }

    public string Path { get; }
    public long Length => RandomAccess.GetLength(_handle);

    /// <summary>Reads up to this size first try the page cache on the caller's thread (see <see cref="PageCacheRead"/>).</summary>
    private const int CachedReadBytes = 64 * 1024;

    public ValueTask ReadAsync(Memory<byte> buffer, long offset, CancellationToken ct)
    {
        if (buffer.Length <= CachedReadBytes)
        {
            ct.ThrowIfCancellationRequested();
            int n = PageCacheRead.TryRead(_handle, buffer.Span, offset);
            if (n == 0)
            {
                buffer.Span.Clear(); // sparse tail past EOF reads as zeros
                return ValueTask.CompletedTask;
            }
            if (n == buffer.Length) return ValueTask.CompletedTask;
            if (n > 0)
            {
                buffer = buffer[n..];
                offset += n;
            }
        }
        return ReadQueuedAsync(buffer, offset, ct);
    }

    private async ValueTask ReadQueuedAsync(Memory<byte> buffer, long offset, CancellationToken ct)
    {
        while (buffer.Length > 0)
        {
            int n = await RandomAccess.ReadAsync(_handle, buffer, offset, ct).ConfigureAwait(false);
            if (n == 0)
            {
                buffer.Span.Clear(); // sparse tail past EOF reads as zeros
                return;
            }
            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <summary>Writes at least this large start their write-back at once (Linux), so a later fsync has little left to do.</summary>
    private const int EagerWritebackBytes = 1 << 20;

    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct)
    {
        // .NET's async write on Unix is a blocking pwrite queued to the thread pool. Already on a
        // pool thread (after an actor's answer), a small one is done here: the same blocking call
        // without the hop. Socket threads (inline scheduling) never block on a write: they queue it.
        if (data.Length <= CachedReadBytes && Thread.CurrentThread.IsThreadPoolThread)
        {
            ct.ThrowIfCancellationRequested();
            RandomAccess.Write(_handle, data.Span, offset);
            return ValueTask.CompletedTask;
        }
        return WriteQueuedAsync(data, offset, ct);
    }

    private async ValueTask WriteQueuedAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct)
    {
        await RandomAccess.WriteAsync(_handle, data, offset, ct).ConfigureAwait(false);
        if (data.Length >= EagerWritebackBytes && OperatingSystem.IsLinux()) StartWriteback(offset, data.Length);
    }

    /// <summary>
    /// sync_file_range(SYNC_FILE_RANGE_WRITE): queues the range for write-out without waiting and
    /// without any durability promise (flush still fsyncs); it overlaps the disk with the network.
    /// </summary>
    private void StartWriteback(long offset, long length)
    {
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            _ = SyncFileRange((int)_handle.DangerousGetHandle(), offset, length, SyncFileRangeWrite);
        }
        catch (EntryPointNotFoundException)
        {
            // Not Linux glibc: the fsync at flush does all the work.
        }
        finally
        {
            if (added) _handle.DangerousRelease();
        }
    }

    private const int SeekData = 3, SeekHole = 4, ENXIO = 6;

    /// <summary>
    /// The next byte at or after <paramref name="offset"/> that holds data (lseek SEEK_DATA), or
    /// the next hole (SEEK_HOLE); -1 when there is no data up to the end of the file. A file system
    /// that cannot tell says all of the file is data (as lseek's fallback does).
    /// </summary>
    public long Seek(long offset, bool hole)
    {
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            long at = LSeek((int)_handle.DangerousGetHandle(), offset, hole ? SeekHole : SeekData);
            if (at >= 0) return at;
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno == ENXIO) return hole ? Length : -1;
            return hole ? Length : offset;
        }
        catch (EntryPointNotFoundException)
        {
            return hole ? Length : offset;
        }
        finally
        {
            if (added) _handle.DangerousRelease();
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static extern long LSeek(int fd, long offset, int whence);

    private const uint SyncFileRangeWrite = 2;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static extern int SyncFileRange(int fd, long offset, long nbytes, uint flags);

    public ValueTask FlushAsync(CancellationToken ct)
    {
        // fsync is synchronous in .NET; run it off the caller's thread so no actor or request thread blocks.
        return new ValueTask(Task.Run(() => RandomAccess.FlushToDisk(_handle), ct));
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return ValueTask.CompletedTask;
        // Logged before the lock goes: a logged close always precedes any other process's logged open.
        WriterLog.Closing(Path);
        QemuPermissionLocks.Release(_handle);
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }
}
