using System.IO.Pipelines;
using QcowActors.Actors.Image;

namespace QcowActors.Actors.Service;

/// <summary>
/// A read whose whole range is mapped. Data runs are read with RandomAccess straight into the
/// response writer's memory; zero runs are cleared there; an overlay's unallocated runs are read
/// from its backing disk there; compressed clusters are inflated a few
/// ahead of the one being sent (<see cref="CompressedClusterReader"/>) and copied out. The gate
/// token keeps every host cluster of the mapping from being reused until the plan is disposed.
/// </summary>
internal sealed class MappedReadPlan(ImageHandle handle, CompressedClusterReader inflater, IoEpochGate.Token token,
    List<MappedRun> runs, long offset, long length, TimeSpan closeReadLimit) : DiskReadPlan
{
    /// <summary>Bytes asked of the writer at a time: large enough for few syscalls, small enough to stay pooled-ish.</summary>
    private const int ChunkSize = 256 * 1024;
    /// <summary>Plans this long may outlast a slow client; shorter ones finish within a few writes.</summary>
    private const long BoundedFrom = 4 * ChunkSize;

    public override long Offset => offset;
    public override long Length => length;

    public override async Task CopyToAsync(PipeWriter destination, CancellationToken ct)
    {
        if (length < BoundedFrom)
        {
            await CopyRunsAsync(destination, ct).ConfigureAwait(false);
            return;
        }
        // Once the image starts closing, this read gets closeReadLimit more, then it is cut: a
        // client that stopped reading must not keep a DELETE or close waiting without bound.
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var onClose = handle.Gate.Closing.Register(() => bounded.CancelAfter(closeReadLimit));
        try
        {
            await CopyRunsAsync(destination, bounded.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new ImageException(ImageError.Unavailable,
                $"image '{handle.Image}' closed while this read was still sending after {closeReadLimit.TotalSeconds:0.#} s (Storage:CloseReadLimit)");
        }
    }

    private async Task CopyRunsAsync(PipeWriter destination, CancellationToken ct)
    {
        for (int r = 0; r < runs.Count;)
        {
            if (runs[r].IsCompressed)
            {
                r = await CopyCompressedAsync(destination, r, ct).ConfigureAwait(false);
                continue;
            }
            var run = runs[r++];
            long done = 0;
            while (done < run.Length)
            {
                int want = (int)Math.Min(ChunkSize, run.Length - done);
                var memory = destination.GetMemory(want);
                int n = Math.Min(want, memory.Length);
                if (run.IsUnallocated && handle.BackingDisk is { } backing) await backing.ReadAsync(memory[..n], run.VirtualOffset + done, ct).ConfigureAwait(false);
                else if (run.IsHostless) memory.Span[..n].Clear();
                else await handle.File.ReadAsync(memory[..n], run.HostOffset + done, ct).ConfigureAwait(false);
                destination.Advance(n);
                done += n;
                var flush = await destination.FlushAsync(ct).ConfigureAwait(false);
                if (flush.IsCanceled || flush.IsCompleted) throw ClientStopped();
            }
        }
    }

    /// <summary>Sends the compressed runs from <paramref name="first"/> on, in order, inflating ahead; returns the index of the next other run.</summary>
    private async Task<int> CopyCompressedAsync(PipeWriter destination, int first, CancellationToken ct)
    {
        int ahead = CompressedClusterReader.ReadAhead(handle.Layout.ClusterSize);
        var inflating = new Queue<(MappedRun Run, Task<InflatedCluster> Cluster)>(ahead);
        int next = first;
        try
        {
            while (true)
            {
                for (; next < runs.Count && runs[next].IsCompressed && inflating.Count < ahead; next++)
                {
                    var run = runs[next];
                    inflating.Enqueue((run, inflater.InflateAsync(handle, run.Compressed, run.VirtualOffset - run.HostOffset, ct)));
                }
                if (inflating.Count == 0) return next;
                var (sent, task) = inflating.Dequeue();
                using var cluster = await task.ConfigureAwait(false);
                var bytes = cluster.Bytes.Slice((int)sent.HostOffset, (int)sent.Length);
                while (!bytes.IsEmpty)
                {
                    var memory = destination.GetMemory(Math.Min(bytes.Length, ChunkSize));
                    int n = Math.Min(bytes.Length, memory.Length);
                    bytes[..n].CopyTo(memory.Span);
                    destination.Advance(n);
                    bytes = bytes[n..];
                }
                var flush = await destination.FlushAsync(ct).ConfigureAwait(false);
                if (flush.IsCanceled || flush.IsCompleted) throw ClientStopped();
            }
        }
        finally
        {
            // A failed or cut read still returns the buffers of the clusters inflated ahead.
            while (inflating.Count > 0)
            {
                var (_, task) = inflating.Dequeue();
                try { (await task.ConfigureAwait(false)).Dispose(); }
                catch { /* the read already failed; this cluster's own error adds nothing */ }
            }
        }
    }

    private static OperationCanceledException ClientStopped() => new("the client stopped reading");

    public override ValueTask DisposeAsync()
    {
        token.Dispose();
        return ValueTask.CompletedTask;
    }
}
