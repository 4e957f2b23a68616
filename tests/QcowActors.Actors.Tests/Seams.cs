using QcowActors.Actors.Io;

namespace QcowActors.Actors.Tests;

/// <summary>A file system whose image writes can be held at the I/O seam until released.</summary>
public sealed class HoldingFileSystem : IImageFileSystem
{
    private readonly DiskFileSystem _inner = new();
    private volatile TaskCompletionSource? _hold;
    private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>From now on every data or metadata write waits until <see cref="Release"/>.</summary>
    public void HoldWrites() => _hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    public void Release() => _hold?.TrySetResult();
    /// <summary>Completes when a write reached the seam and is being held.</summary>
    public Task WriteHeld => _reached.Task;

    public IImageFile Open(string path, bool writable) => new HoldingFile(_inner.Open(path, writable), this);
    public Task CreateAtomicAsync(string finalPath, IReadOnlyList<(long Offset, byte[] Bytes)> writes, long length, CancellationToken ct)
        => _inner.CreateAtomicAsync(finalPath, writes, length, ct);
    public void SyncDirectory(string directory) => _inner.SyncDirectory(directory);

    private sealed class HoldingFile(IImageFile inner, HoldingFileSystem fs) : IImageFile
    {
        public string Path => inner.Path;
        public long Length => inner.Length;
        public ValueTask ReadAsync(Memory<byte> buffer, long offset, CancellationToken ct) => inner.ReadAsync(buffer, offset, ct);
        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct)
        {
            var hold = fs._hold;
            if (hold is not null)
            {
                fs._reached.TrySetResult();
                await hold.Task.WaitAsync(ct);
            }
            await inner.WriteAsync(data, offset, ct);
        }
        public ValueTask FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}

/// <summary>Records every write and fsync on image files, in the order they completed.</summary>
public sealed class RecordingFileSystem : IImageFileSystem
{
    private readonly DiskFileSystem _inner = new();
    private readonly object _sync = new();
    private readonly List<Op> _ops = [];

    public abstract record Op;
    public sealed record WriteOp(long Offset, byte[] Bytes) : Op;
    public sealed record FsyncOp : Op;

    public IReadOnlyList<Op> Ops
    {
        get { lock (_sync) return _ops.ToArray(); }
    }

    public void Clear()
    {
        lock (_sync) _ops.Clear();
    }

    public IImageFile Open(string path, bool writable) => new RecordingFile(_inner.Open(path, writable), this);
    public Task CreateAtomicAsync(string finalPath, IReadOnlyList<(long Offset, byte[] Bytes)> writes, long length, CancellationToken ct)
        => _inner.CreateAtomicAsync(finalPath, writes, length, ct);
    public void SyncDirectory(string directory) => _inner.SyncDirectory(directory);

    private void Add(Op op)
    {
        lock (_sync) _ops.Add(op);
    }

    private sealed class RecordingFile(IImageFile inner, RecordingFileSystem fs) : IImageFile
    {
        public string Path => inner.Path;
        public long Length => inner.Length;
        public ValueTask ReadAsync(Memory<byte> buffer, long offset, CancellationToken ct) => inner.ReadAsync(buffer, offset, ct);
        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct)
        {
            await inner.WriteAsync(data, offset, ct);
            fs.Add(new WriteOp(offset, data.ToArray()));
        }
        public async ValueTask FlushAsync(CancellationToken ct)
        {
            // Recorded when it starts: only writes that completed before then are surely covered by it.
            fs.Add(new FsyncOp());
            await inner.FlushAsync(ct);
        }
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}

/// <summary>A file system whose image writes fail with ENOSPC while armed.</summary>
public sealed class FullDiskFileSystem : IImageFileSystem
{
    private readonly DiskFileSystem _inner = new();
    public volatile bool Full;

    public IImageFile Open(string path, bool writable) => new FullFile(_inner.Open(path, writable), this);
    public Task CreateAtomicAsync(string finalPath, IReadOnlyList<(long Offset, byte[] Bytes)> writes, long length, CancellationToken ct)
        => _inner.CreateAtomicAsync(finalPath, writes, length, ct);
    public void SyncDirectory(string directory) => _inner.SyncDirectory(directory);

    private sealed class FullFile(IImageFile inner, FullDiskFileSystem fs) : IImageFile
    {
        public string Path => inner.Path;
        public long Length => inner.Length;
        public ValueTask ReadAsync(Memory<byte> buffer, long offset, CancellationToken ct) => inner.ReadAsync(buffer, offset, ct);
        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct)
            => fs.Full ? ValueTask.FromException(new IOException("No space left on device", 28)) : inner.WriteAsync(data, offset, ct);
        public ValueTask FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}

/// <summary>A file system whose reads at one offset fail while armed (e.g. an L2 table's cluster).</summary>
public sealed class ReadFaultFileSystem : IImageFileSystem
{
    private readonly DiskFileSystem _inner = new();
    public long FailReadsAt = -1;

    public IImageFile Open(string path, bool writable) => new FaultyFile(_inner.Open(path, writable), this);
    public Task CreateAtomicAsync(string finalPath, IReadOnlyList<(long Offset, byte[] Bytes)> writes, long length, CancellationToken ct)
        => _inner.CreateAtomicAsync(finalPath, writes, length, ct);
    public void SyncDirectory(string directory) => _inner.SyncDirectory(directory);

    private sealed class FaultyFile(IImageFile inner, ReadFaultFileSystem fs) : IImageFile
    {
        public string Path => inner.Path;
        public long Length => inner.Length;
        public ValueTask ReadAsync(Memory<byte> buffer, long offset, CancellationToken ct)
            => offset == Volatile.Read(ref fs.FailReadsAt)
                ? ValueTask.FromException(new IOException("Input/output error", 5))
                : inner.ReadAsync(buffer, offset, ct);
        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct) => inner.WriteAsync(data, offset, ct);
        public ValueTask FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
