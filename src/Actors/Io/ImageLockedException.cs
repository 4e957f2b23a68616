namespace QcowActors.Actors.Io;

/// <summary>The image file's lock is held by another process (another node's writer, or qemu-img with -U off): nothing was read or written.</summary>
public sealed class ImageLockedException(string path, Exception inner)
    : IOException($"'{Path.GetFileName(path)}' is locked by another process", inner);
