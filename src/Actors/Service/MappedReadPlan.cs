using System.IO.Pipelines;
using QcowActors.Actors.Image;
using QcowActors.Actors.Io;

namespace QcowActors.Actors.Service;

/// <summary>
/// A read whose whole range is mapped. Data runs are read with RandomAccess straight into the
/// response writer's memory; zero runs are cleared there. The gate token keeps every host cluster
/// of the mapping from being reused until the plan is disposed.
/// </summary>
internal sealed class MappedReadPlan(IImageFile file, IoEpochGate.Token token, List<MappedRun> runs, long offset, long length) : DiskReadPlan
{
    /// <summary>Bytes asked of the writer at a time: large enough for few syscalls, small enough to stay pooled-ish.</summary>
    private const int ChunkSize = 256 * 1024;

    public override long Offset => offset;
    public override long Length => length;

    public override async Task CopyToAsync(PipeWriter destination, CancellationToken ct)
    {
        foreach (var run in runs)
        {
            long done = 0;
            while (done < run.Length)
            {
                int want = (int)Math.Min(ChunkSize, run.Length - done);
                var memory = destination.GetMemory(want);
                int n = Math.Min(want, memory.Length);
                if (run.IsZero) memory.Span[..n].Clear();
                else await file.ReadAsync(memory[..n], run.HostOffset + done, ct).ConfigureAwait(false);
                destination.Advance(n);
                done += n;
                var flush = await destination.FlushAsync(ct).ConfigureAwait(false);
                if (flush.IsCanceled || flush.IsCompleted) throw new OperationCanceledException("the client stopped reading");
            }
        }
    }

    public override ValueTask DisposeAsync()
    {
        token.Dispose();
        return ValueTask.CompletedTask;
    }
}
