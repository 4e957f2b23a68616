using System.IO.Pipelines;
using QcowActors.Actors.Backing;

namespace QcowActors.Actors.Service;

/// <summary>A disk a request reads by ranges and lets go of when done: an image's session, or a raw image's view.</summary>
public interface IDiskReader : IDiskReadSource, IAsyncDisposable;

/// <summary>
/// One request's read of a raw image of the store, shared with the overlays reading it as their
/// backing (one read-only open, shared lock); released when the request ends.
/// </summary>
internal sealed class BackingDiskView(BackingChains chains, BackingDisk disk) : IDiskReader
{
    private int _released;

    public long VirtualSize => disk.VirtualSize;
    internal BackingDisk Disk => disk;

    public Task<DiskReadPlan> PlanReadAsync(long offset, long length, CancellationToken ct)
    {
        if (offset < 0 || length < 0 || offset > VirtualSize || length > VirtualSize - offset)
            throw new ImageException(ImageError.OutOfRange, $"range {offset}+{length} is outside the disk of {VirtualSize} bytes");
        return Task.FromResult<DiskReadPlan>(new BackingReadPlan(disk, offset, length));
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) await chains.ReleaseAsync(disk).ConfigureAwait(false);
    }

    /// <summary>Reads the disk straight into the writer's memory, a chunk at a time.</summary>
    private sealed class BackingReadPlan(BackingDisk disk, long offset, long length) : DiskReadPlan
    {
        private const int ChunkSize = 256 * 1024;

        public override long Offset => offset;
        public override long Length => length;

        public override async Task CopyToAsync(PipeWriter destination, CancellationToken ct)
        {
            for (long done = 0; done < length;)
            {
                var memory = destination.GetMemory((int)Math.Min(ChunkSize, length - done));
                int n = (int)Math.Min(memory.Length, length - done);
                await disk.ReadAsync(memory[..n], offset + done, ct).ConfigureAwait(false);
                destination.Advance(n);
                done += n;
                var flush = await destination.FlushAsync(ct).ConfigureAwait(false);
                if (flush.IsCanceled || flush.IsCompleted) throw new OperationCanceledException("the client stopped reading");
            }
        }

        public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
