using Microsoft.Win32.SafeHandles;

namespace QcowActors.Actors.Io;

/// <summary>An image file on disk, read and written with RandomAccess at explicit offsets.</summary>
public sealed class RandomAccessImageFile : IImageFile
{
    private readonly SafeFileHandle _handle;

    public RandomAccessImageFile(string path, bool writable)
    {
        Path = path;
        _handle = File.OpenHandle(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read,
            FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
    }

    public string Path { get; }
    public long Length => RandomAccess.GetLength(_handle);

    public async ValueTask ReadAsync(Memory<byte> buffer, long offset, CancellationToken ct)
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

    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct)
        => RandomAccess.WriteAsync(_handle, data, offset, ct);

    public ValueTask FlushAsync(CancellationToken ct)
    {
        // fsync is synchronous in .NET; run it off the caller's thread so no actor or request thread blocks.
        return new ValueTask(Task.Run(() => RandomAccess.FlushToDisk(_handle), ct));
    }

    public ValueTask DisposeAsync()
    {
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }
}
