using QcowActors.Actors.Io;

namespace QcowActors.Actors.Tests;

/// <summary>
/// The real file system with hooks at the I/O seam: before each write, before each read, after
/// each write and at each fsync. The test seams below are configurations of it.
/// </summary>
public class InterceptingFileSystem : IImageFileSystem
{
    private readonly DiskFileSystem _inner = new();

    /// <summary>Awaited before a write reaches the file; may throw to fail it.</summary>
    protected virtual ValueTask BeforeWriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct) => ValueTask.CompletedTask;
    /// <summary>Returns an exception to fail a read at that offset, or null.</summary>
    protected virtual Exception? ReadFault(long offset) => null;
    protected virtual void AfterWrite(long offset, ReadOnlyMemory<byte> data) { }
    /// <summary>Called when an fsync starts: only writes completed before then are surely covered.</summary>
    protected virtual void FsyncStarting() { }
    /// <summary>Awaited before an fsync runs.</summary>
    protected virtual ValueTask BeforeFsyncAsync(CancellationToken ct) => ValueTask.CompletedTask;

    public IImageFile Open(string path, bool writable) => new File(_inner.Open(path, writable), this);
    public Task CreateAtomicAsync(string finalPath, IEnumerable<(long Offset, ReadOnlyMemory<byte> Bytes)> writes, long length, CancellationToken ct)
        => _inner.CreateAtomicAsync(finalPath, writes, length, ct);
    public void SyncDirectory(string directory) => _inner.SyncDirectory(directory);

    private sealed class File(IImageFile inner, InterceptingFileSystem fs) : IImageFile
    {
        public string Path => inner.Path;
        public long Length => inner.Length;

        public ValueTask ReadAsync(Memory<byte> buffer, long offset, CancellationToken ct)
            => fs.ReadFault(offset) is { } fault ? ValueTask.FromException(fault) : inner.ReadAsync(buffer, offset, ct);

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct)
        {
            await fs.BeforeWriteAsync(offset, data, ct);
            await inner.WriteAsync(data, offset, ct);
            fs.AfterWrite(offset, data);
        }

        public async ValueTask FlushAsync(CancellationToken ct)
        {
            await fs.BeforeFsyncAsync(ct);
            fs.FsyncStarting();
            await inner.FlushAsync(ct);
        }

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}

/// <summary>Image writes, or fsyncs, can be held at the seam until released.</summary>
public sealed class HoldingFileSystem : InterceptingFileSystem
{
    private volatile TaskCompletionSource? _hold;
    private volatile TaskCompletionSource? _holdFsyncs;
    private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>From now on every data or metadata write waits until <see cref="Release"/>.</summary>
    public void HoldWrites() => _hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>From now on every fsync (so every flush, which starts with one) waits until <see cref="Release"/>; writes go on.</summary>
    public void HoldFsyncs() => _holdFsyncs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    public void Release()
    {
        _hold?.TrySetResult();
        _holdFsyncs?.TrySetResult();
    }
    /// <summary>Completes when a write (or fsync) reached the seam and is being held.</summary>
    public Task WriteHeld => _reached.Task;

    protected override async ValueTask BeforeFsyncAsync(CancellationToken ct)
    {
        if (_holdFsyncs is { } hold)
        {
            _reached.TrySetResult();
            await hold.Task.WaitAsync(ct);
        }
    }

    protected override async ValueTask BeforeWriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        if (_hold is { } hold)
        {
            _reached.TrySetResult();
            await hold.Task.WaitAsync(ct);
        }
    }
}

/// <summary>Records every write and fsync on image files, in the order they completed (fsyncs as they started).</summary>
public sealed class RecordingFileSystem : InterceptingFileSystem
{
    private readonly object _sync = new();
    private readonly List<Op> _ops = [];

    public abstract record Op;
    public sealed record WriteOp(long Offset, byte[] Bytes) : Op;
    public sealed record FsyncOp : Op;

    public IReadOnlyList<Op> Ops
    {
        get { lock (_sync) return _ops.ToArray(); }
    }

    protected override void AfterWrite(long offset, ReadOnlyMemory<byte> data)
    {
        lock (_sync) _ops.Add(new WriteOp(offset, data.ToArray()));
    }

    protected override void FsyncStarting()
    {
        lock (_sync) _ops.Add(new FsyncOp());
    }
}

/// <summary>Image writes fail with ENOSPC while <see cref="Full"/> is set.</summary>
public sealed class FullDiskFileSystem : InterceptingFileSystem
{
    public volatile bool Full;

    protected override ValueTask BeforeWriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
        => Full ? ValueTask.FromException(new IOException("No space left on device", 28)) : ValueTask.CompletedTask;
}

/// <summary>Reads at one offset (e.g. an L2 table's cluster) fail with EIO while armed.</summary>
public sealed class ReadFaultFileSystem : InterceptingFileSystem
{
    public long FailReadsAt = -1;

    protected override Exception? ReadFault(long offset)
        => offset == Volatile.Read(ref FailReadsAt) ? new IOException("Input/output error", 5) : null;
}
