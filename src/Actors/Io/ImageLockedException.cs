namespace QcowActors.Actors.Io;

/// <summary>The image file's flock is held by another process (another node's writer, or any tool that flocks it; QEMU's own OFD locks do not conflict): nothing was read or written.</summary>
public sealed class ImageLockedException(string path, Exception inner)
    : IOException($"'{Path.GetFileName(path)}' is locked by another process", inner);

/// <summary>The store entry is not a regular file (a FIFO, socket, device, directory or symbolic link): nothing was opened.</summary>
public sealed class NotAnImageFileException(string path, string why)
    : IOException($"'{Path.GetFileName(path)}' {why}")
{
    public string Why { get; } = why;
}
