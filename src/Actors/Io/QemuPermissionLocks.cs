using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace QcowActors.Actors.Io;

/// <summary>
/// QEMU's image locking (block/file-posix.c), so the server and QEMU's tools see each other: for
/// each permission a user holds it takes a shared OFD read lock on byte 100 + the permission's bit,
/// and for each permission it does not let others have, one on byte 200 + bit; then it tests the
/// opposite bytes — someone else holding a permission this user does not share, or not sharing one
/// it holds — with F_OFD_GETLK. Lock first, then test: testing first races a QEMU that does the same.
/// OFD locks belong to the open file description, so they go with the flock taken on the same one
/// and are released when it is closed.
/// </summary>
internal static class QemuPermissionLocks
{
    private const int ConsistentRead = 0, Write = 1, Resize = 3;
    private const int HeldBase = 100, UnsharedBase = 200;
    private const int FOfdGetLk = 36, FOfdSetLk = 37;
    private const short FRdLck = 0, FWrLck = 1, FUnLck = 2;
    private static readonly string[] Names = ["consistent read", "write", "write unchanged", "resize"];

    [StructLayout(LayoutKind.Sequential)]
    private struct Flock
    {
        public short Type;
        public short Whence;
        public long Start;
        public long Length;
        public int Pid;
    }

    [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static extern int Fcntl(int fd, int cmd, ref Flock flock);

    /// <summary>
    /// Takes the locks of a user that reads consistently and, when <paramref name="writable"/>,
    /// writes and resizes; in both cases nobody else may write or resize meanwhile. Throws
    /// <see cref="ImageInUseException"/> naming the permission another program holds or will not share.
    /// </summary>
    public static void Acquire(SafeFileHandle handle, string path, bool writable)
    {
        int fd = (int)handle.DangerousGetHandle();
        int[] held = writable ? [ConsistentRead, Write, Resize] : [ConsistentRead];
        int[] unshared = [Write, Resize];
        foreach (int bit in held) Lock(fd, HeldBase + bit, path);
        foreach (int bit in unshared) Lock(fd, UnsharedBase + bit, path);
        foreach (int bit in held)
            if (TakenByOthers(fd, UnsharedBase + bit, path))
                throw new ImageInUseException(path, $"another program (such as QEMU) has it open and does not share the {Names[bit]} permission");
        foreach (int bit in unshared)
            if (TakenByOthers(fd, HeldBase + bit, path))
                throw new ImageInUseException(path, $"another program (such as QEMU) has it open with the {Names[bit]} permission");
    }

    /// <summary>
    /// Drops every lock this open file description holds, before it is closed. A close alone is not
    /// enough: a child process forked meanwhile (by anything in this process) shares the description
    /// until it execs, and its locks would outlive our close by that long. .NET drops its flock the
    /// same way before closing.
    /// </summary>
    public static void Release(SafeFileHandle handle)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            var l = new Flock { Type = FUnLck, Whence = 0, Start = HeldBase, Length = UnsharedBase + 100 - HeldBase };
            _ = Fcntl((int)handle.DangerousGetHandle(), FOfdSetLk, ref l); // best effort: the close releases them anyway
        }
        catch (ObjectDisposedException)
        {
            // Already closed: nothing left to release.
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    private static void Lock(int fd, long at, string path)
    {
        var l = new Flock { Type = FRdLck, Whence = 0, Start = at, Length = 1 };
        if (Fcntl(fd, FOfdSetLk, ref l) != 0)
            throw new ImageInUseException(path, $"its lock byte {at} cannot be taken (errno {Marshal.GetLastPInvokeError()})");
    }

    /// <summary>Would a write lock on the byte conflict? Only another open file description's read lock makes it so.</summary>
    private static bool TakenByOthers(int fd, long at, string path)
    {
        var l = new Flock { Type = FWrLck, Whence = 0, Start = at, Length = 1 };
        if (Fcntl(fd, FOfdGetLk, ref l) != 0)
            throw new ImageInUseException(path, $"its lock byte {at} cannot be tested (errno {Marshal.GetLastPInvokeError()})");
        return l.Type != FUnLck;
    }
}

/// <summary>Another program (QEMU's tools, a VM) holds the image with permissions that exclude the server's: nothing was read or written.</summary>
public sealed class ImageInUseException(string path, string why)
    : IOException($"'{Path.GetFileName(path)}' is in use: {why}");
