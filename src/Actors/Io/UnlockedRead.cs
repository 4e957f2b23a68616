using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace QcowActors.Actors.Io;

/// <summary>
/// Opens a file for reading without .NET's advisory lock. Every .NET open takes a flock (LOCK_SH
/// for reads), which fails while a writer holds the image's LOCK_EX, even in this very process;
/// listing the store only peeks at headers and must see open images too.
/// </summary>
internal static partial class UnlockedRead
{
    private const int O_RDONLY = 0;
    private const int O_NONBLOCK = 0x800;
    private const int O_CLOEXEC = 0x80000;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    /// <summary>A read-only handle to path that takes no lock (off Linux: an ordinary shared open).</summary>
    public static SafeFileHandle Open(string path)
    {
        if (!OperatingSystem.IsLinux())
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        // O_NONBLOCK: a FIFO named like an image must not block the open (its read then fails: skipped).
        int fd = Open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw errno == 2 ? new FileNotFoundException($"'{path}' does not exist", path) : new IOException($"cannot open '{path}' (errno {errno})", errno);
        }
        return new SafeFileHandle(fd, ownsHandle: true);
    }
}
