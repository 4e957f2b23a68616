using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace QcowActors.Actors.Io;

/// <summary>
/// Reads that succeed only from the page cache: preadv2 with RWF_NOWAIT (Linux 4.14+) returns
/// EAGAIN instead of waiting for the disk. A hit is a few microseconds, cheaper done on the
/// caller's thread than queued to the thread pool (which is what .NET's async file read on Unix
/// does); a miss goes the queued way, so no request thread ever waits for a disk.
/// </summary>
internal static partial class PageCacheRead
{
    private const int RwfNowait = 0x08;
    private const int Eagain = 11, Einval = 22;
    private static bool s_unavailable = !OperatingSystem.IsLinux();

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public nint Base;
        public nuint Length;
    }

    [LibraryImport("libc", EntryPoint = "preadv2", SetLastError = true)]
    private static unsafe partial nint PReadV2(int fd, IoVec* iov, int iovcnt, long offset, int flags);

    /// <summary>
    /// Bytes read from the cache at offset into buffer (0 at end of file), or -1 when the data is
    /// not (all) cached or the kernel cannot tell; then nothing was read and the caller reads the slow way.
    /// </summary>
    public static unsafe int TryRead(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        // A negative offset (a corrupt entry) is EINVAL for this call only: never let it switch the fast path off for every image.
        if (Volatile.Read(ref s_unavailable) || buffer.IsEmpty || offset < 0) return -1;
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            fixed (byte* p = buffer)
            {
                var iov = new IoVec { Base = (nint)p, Length = (nuint)buffer.Length };
                nint n = PReadV2((int)handle.DangerousGetHandle(), &iov, 1, offset, RwfNowait);
                if (n >= 0) return (int)n;
                // EAGAIN: not cached; EINVAL: this request's arguments. Anything else (EOPNOTSUPP on file
                // systems without NOWAIT, old kernels) turns the fast path off for good rather than
                // paying a failed call per read.
                int errno = Marshal.GetLastPInvokeError();
                if (errno != Eagain && errno != Einval) Volatile.Write(ref s_unavailable, true);
                return -1;
            }
        }
        catch (EntryPointNotFoundException)
        {
            Volatile.Write(ref s_unavailable, true);
            return -1;
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }
}
