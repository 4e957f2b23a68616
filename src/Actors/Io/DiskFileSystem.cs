using System.Runtime.InteropServices;

namespace QcowActors.Actors.Io;

/// <summary>The real file system: RandomAccess files, fsync of files and directories.</summary>
public sealed class DiskFileSystem : IImageFileSystem
{
    public IImageFile Open(string path, bool writable) => new RandomAccessImageFile(path, writable);

    public IImageFile OpenShared(string path) => new RandomAccessImageFile(path, writable: false, shared: true);

    public async Task CreateAtomicAsync(string finalPath, IEnumerable<(long Offset, ReadOnlyMemory<byte> Bytes)> writes, long length, CancellationToken ct)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(finalPath))!;
        // A dot name that does not end in .qcow2: never listed, even if a crash leaves it behind.
        string temp = Path.Combine(dir, $".{Path.GetFileName(finalPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var handle = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.Asynchronous))
            {
                foreach (var (offset, bytes) in writes)
                    await RandomAccess.WriteAsync(handle, bytes, offset, ct).ConfigureAwait(false);
                RandomAccess.SetLength(handle, length);
                RandomAccess.FlushToDisk(handle);
            }
            // On Unix File.Move without overwrite links then unlinks: it fails instead of replacing an existing image.
            File.Move(temp, finalPath, overwrite: false);
            SyncDirectory(dir);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>A failure is an error of the operation that needed it: a rename or unlink that may not survive a crash is not done.</summary>
    public void SyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        int fd = Native.open(directory, 0 /* O_RDONLY */);
        if (fd < 0) throw new DirectorySyncException(directory, Marshal.GetLastPInvokeError());
        try
        {
            if (Native.fsync(fd) != 0) throw new DirectorySyncException(directory, Marshal.GetLastPInvokeError());
        }
        finally { Native.close(fd); }
    }

    /// <summary>
    /// O_CREAT|O_EXCL|O_NOFOLLOW: a symbolic link (or anything else) planted under the marker's name
    /// is removed, never followed or written through; an existing regular file is the marker already.
    /// </summary>
    public static void CreateMarkerFile(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            using (File.Create(path)) { }
            return;
        }
        const int Flags = 0x1 /* O_WRONLY */ | 0x40 /* O_CREAT */ | 0x80 /* O_EXCL */ | 0x20000 /* O_NOFOLLOW */ | 0x80000 /* O_CLOEXEC */;
        for (int attempt = 0; ; attempt++)
        {
            int fd = Native.open(path, Flags, 0x1A4 /* 0644 */);
            if (fd >= 0)
            {
                Native.close(fd);
                return;
            }
            int errno = Marshal.GetLastPInvokeError();
            if (errno != 17 /* EEXIST */ || attempt > 0)
                throw new IOException($"cannot create the open marker '{Path.GetFileName(path)}' (errno {errno})", errno);
            if (FileKind.Of(path) == FileKindValue.Regular) return;
            File.Delete(path); // unlink: removes a link itself, not its target
        }
    }

    private static partial class Native
    {
        [DllImport("libc", SetLastError = true, EntryPoint = "open")] public static extern int open([MarshalAs(UnmanagedType.LPStr)] string path, int flags, int mode);
        [DllImport("libc", SetLastError = true)] public static extern int open([MarshalAs(UnmanagedType.LPStr)] string path, int flags);
        [DllImport("libc", SetLastError = true)] public static extern int fsync(int fd);
        [DllImport("libc")] public static extern int close(int fd);
    }
}

/// <summary>An fsync of the store directory failed: the change it was to make durable (a create, rename or unlink) may not survive a crash.</summary>
public sealed class DirectorySyncException(string directory, int errno)
    : IOException($"fsync of the store directory '{directory}' failed (errno {errno})", errno);
