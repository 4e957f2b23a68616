using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace QcowActors.Actors.Io;

/// <summary>What a store entry is, from lstat (the entry itself, never what a link points to) or fstat (an open descriptor).</summary>
public enum FileKindValue { Missing, Regular, Directory, SymbolicLink, Fifo, Socket, CharacterDevice, BlockDevice, Other }

/// <summary>
/// The file type of store entries. An image must be a regular file: a FIFO blocks whoever opens or
/// reads it, a device or socket is not an image, and a symbolic link can lead out of the store, so
/// the store lists, opens and follows none of them. .NET exposes no file type, so this asks the C
/// library (struct stat's st_mode: offset 24 on x86-64, 16 on the generic layout arm64 uses).
/// </summary>
public static partial class FileKind
{
    private const int StatBufferBytes = 256;
    private const uint TypeMask = 0xF000;

    [LibraryImport("libc", EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LStat(string path, Span<byte> buffer);

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static partial int FStat(int fd, Span<byte> buffer);

    private static int ModeOffset => RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16;

    /// <summary>The entry at path itself (a symbolic link is reported as one, not followed).</summary>
    public static FileKindValue Of(string path)
    {
        if (!OperatingSystem.IsLinux()) return FallbackOf(path);
        Span<byte> buffer = stackalloc byte[StatBufferBytes];
        return LStat(path, buffer) != 0 ? FileKindValue.Missing : FromMode(BitConverter.ToUInt32(buffer[ModeOffset..]));
    }

    /// <summary>What an open descriptor refers to.</summary>
    public static FileKindValue Of(SafeFileHandle handle)
    {
        if (!OperatingSystem.IsLinux()) return FileKindValue.Regular;
        Span<byte> buffer = stackalloc byte[StatBufferBytes];
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return FStat((int)handle.DangerousGetHandle(), buffer) != 0 ? FileKindValue.Missing : FromMode(BitConverter.ToUInt32(buffer[ModeOffset..]));
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>
    /// The names an open descriptor's file still has (st_nlink: a 64-bit word at offset 16 on x86-64,
    /// 32 bits at 20 on the generic layout); 0 once it was unlinked. -1 when unknown.
    /// </summary>
    public static long LinkCount(SafeFileHandle handle)
    {
        if (!OperatingSystem.IsLinux()) return -1;
        Span<byte> buffer = stackalloc byte[StatBufferBytes];
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            if (FStat((int)handle.DangerousGetHandle(), buffer) != 0) return -1;
            return RuntimeInformation.ProcessArchitecture == Architecture.X64
                ? (long)BitConverter.ToUInt64(buffer[16..])
                : BitConverter.ToUInt32(buffer[20..]);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>Why an entry that is not a regular file is not an image, or null for a regular file (or a missing one).</summary>
    public static string? NotAnImage(FileKindValue kind) => kind switch
    {
        FileKindValue.Regular or FileKindValue.Missing => null,
        FileKindValue.Directory => "is a directory, not an image file",
        FileKindValue.SymbolicLink => "is a symbolic link; the store serves regular files only (a link could lead outside the store)",
        FileKindValue.Fifo => "is a FIFO, not an image file",
        FileKindValue.Socket => "is a socket, not an image file",
        FileKindValue.CharacterDevice or FileKindValue.BlockDevice => "is a device, not an image file",
        _ => "is not a regular file",
    };

    private static FileKindValue FromMode(uint mode) => (mode & TypeMask) switch
    {
        0x8000 => FileKindValue.Regular,
        0x4000 => FileKindValue.Directory,
        0xA000 => FileKindValue.SymbolicLink,
        0x1000 => FileKindValue.Fifo,
        0xC000 => FileKindValue.Socket,
        0x2000 => FileKindValue.CharacterDevice,
        0x6000 => FileKindValue.BlockDevice,
        _ => FileKindValue.Other,
    };

    private static FileKindValue FallbackOf(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null) return FileKindValue.SymbolicLink;
        if (Directory.Exists(path)) return FileKindValue.Directory;
        return info.Exists ? FileKindValue.Regular : FileKindValue.Missing;
    }
}
