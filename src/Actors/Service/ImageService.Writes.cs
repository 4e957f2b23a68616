using System.Buffers;
using QcowActors.Actors.Image;
using QcowActors.Actors.Io;

namespace QcowActors.Actors.Service;

public sealed partial class ImageService
{
    /// <summary>Zeros for partial-cluster zeroing (largest cluster size); never written to.</summary>
    private static readonly ReadOnlyMemory<byte> Zeros = new byte[2 * 1024 * 1024];

    public async Task WriteAsync(string name, long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token) await WriteAsync(handle, offset, data, ct).ConfigureAwait(false);
    }

    /// <summary>Writes under the caller's gate token, table by table.</summary>
    internal async Task WriteAsync(ImageHandle handle, long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        ThrowIfRefused(handle, write: true);
        CheckRange(handle, offset, data.Length);
        long end = offset + data.Length;
        try
        {
            for (long o = offset; o < end;)
            {
                long n = InTable(handle.Layout, o, end);
                await WriteInTableAsync(handle, o, data.Slice((int)(o - offset), (int)n), ct).ConfigureAwait(false);
                o += n;
            }
        }
        finally
        {
            // After the data (a clear meanwhile cannot lose this write), and even when it failed part way (some bytes may have landed).
            handle.Tracking.Mark(offset, data.Length);
        }
    }

    /// <summary>Plan (the table's actor decides), move the bytes, then publish: data is in the file before any entry points to it.</summary>
    private async Task WriteInTableAsync(ImageHandle handle, long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        // Every cluster already ours and allocated: the bytes go straight in, no actor involved.
        // Otherwise the table's actor plans it (not cancellable: a plan it made must reach commit
        // or abort, or its clusters stay in flight); the caller's gate token keeps this
        // incarnation (and so that actor) alive until the commit.
        var plan = handle.TryPlanInPlace(offset, data.Length)
            ?? await handle.AskAsync<WritePlan>(new PrepareWrite(handle.Image, offset, data.Length), AskTimeout, CancellationToken.None).ConfigureAwait(false);
        try
        {
            ct.ThrowIfCancellationRequested();
            await ExecuteAsync(handle, plan, offset, data, ct).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            if (!plan.InPlaceOnly) handle.Tell(new AbortWrite(handle.Image, plan.L1Index, plan.PlanId));
            if (e is OperationCanceledException) throw;
            throw IoErrors.Map(e, handle.Image);
        }
        if (!plan.InPlaceOnly)
            await handle.AskAsync<WriteCommitted>(new CommitWrite(handle.Image, plan.L1Index, plan.PlanId), AskTimeout, CancellationToken.None).ConfigureAwait(false);
    }

    private async Task ExecuteAsync(ImageHandle handle, WritePlan plan, long baseOffset, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        var file = handle.File;
        var clusters = plan.Clusters;
        if (clusters.Length == 1 && clusters[0].Fill == ClusterFill.None)
        {
            // One cluster, nothing around it to fill: the common small write, without a task list.
            var only = clusters[0];
            await file.WriteAsync(data, only.HostCluster + only.OffsetInCluster, ct).ConfigureAwait(false);
            return;
        }
        var writes = new List<Task>();
        int i = 0;
        while (i < clusters.Length)
        {
            var c = clusters[i];
            if (c.Fill != ClusterFill.None)
            {
                writes.Add(FillClusterAsync(handle, c, data.Slice((int)(c.VirtualOffset - baseOffset), c.Length), ct));
                i++;
                continue;
            }
            // Coalesce clusters that are contiguous in the file (typical for fresh allocations) into one write.
            long hostStart = c.HostCluster + c.OffsetInCluster;
            long length = c.Length;
            int j = i + 1;
            while (j < clusters.Length && clusters[j].Fill == ClusterFill.None
                   && clusters[j].HostCluster + clusters[j].OffsetInCluster == hostStart + length)
            {
                length += clusters[j].Length;
                j++;
            }
            writes.Add(file.WriteAsync(data.Slice((int)(c.VirtualOffset - baseOffset), (int)length), hostStart, ct).AsTask());
            i = j;
        }
        await Task.WhenAll(writes).ConfigureAwait(false);
    }

    /// <summary>
    /// A cluster under a partial write: bytes [FillFrom, FillTo) are written, the data and around it
    /// zeros, the old cluster's bytes (its subclusters that hold none read as zeros), or a
    /// compressed cluster's inflated bytes.
    /// </summary>
    private async Task FillClusterAsync(ImageHandle handle, ClusterWrite c, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        int span = c.FillTo - c.FillFrom;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(span);
        try
        {
            var filled = buffer.AsMemory(0, span);
            switch (c.Fill)
            {
                case ClusterFill.CopyFrom:
                    await handle.File.ReadAsync(filled, c.SourceHost + c.FillFrom, ct).ConfigureAwait(false);
                    if (c.SourceAllocated != uint.MaxValue) ClearUnallocated(filled.Span, c.FillFrom, handle.Layout.SubclusterSize, c.SourceAllocated);
                    break;
                case ClusterFill.Inflate:
                    using (var old = await _inflater.InflateAsync(handle, (ulong)c.SourceHost, handle.Layout.ClusterStart(c.VirtualOffset), ct).ConfigureAwait(false))
                        old.Bytes.Slice(c.FillFrom, span).CopyTo(filled.Span);
                    break;
                default:
                    filled.Span.Clear();
                    break;
            }
            if (c.FromBacking != 0) await CopyUpAsync(handle, c, filled, ct).ConfigureAwait(false);
            data.Span.CopyTo(filled.Span[(c.OffsetInCluster - c.FillFrom)..]);
            await handle.File.WriteAsync(filled, c.HostCluster + c.FillFrom, ct).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// An overlay's copy-up: the parts of the fill that held nothing in this image get the backing
    /// disk's bytes (the whole fill for a standard entry; the subclusters in FromBacking, in runs, for extended ones).
    /// </summary>
    private static async Task CopyUpAsync(ImageHandle handle, ClusterWrite c, Memory<byte> filled, CancellationToken ct)
    {
        var backing = handle.BackingDisk;
        long clusterStart = handle.Layout.ClusterStart(c.VirtualOffset);
        if (backing is null) return; // an image without one reads zeros there, as filled
        if (!handle.Layout.ExtendedL2)
        {
            await backing.ReadAsync(filled, clusterStart + c.FillFrom, ct).ConfigureAwait(false);
            return;
        }
        int sc = handle.Layout.SubclusterSize;
        for (int k = c.FillFrom / sc; k * sc < c.FillTo;)
        {
            if ((c.FromBacking & (1u << k)) == 0)
            {
                k++;
                continue;
            }
            int first = k;
            while (k * sc < c.FillTo && (c.FromBacking & (1u << k)) != 0) k++;
            int from = Math.Max(first * sc, c.FillFrom), to = Math.Min(k * sc, c.FillTo);
            await backing.ReadAsync(filled.Slice(from - c.FillFrom, to - from), clusterStart + from, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Zeros the subclusters of a copy (starting at byte <paramref name="from"/> of the cluster) that the source does not hold.</summary>
    private static void ClearUnallocated(Span<byte> copy, int from, int subclusterSize, uint allocated)
    {
        for (int o = 0; o < copy.Length; o += subclusterSize)
            if ((allocated & (1u << ((from + o) / subclusterSize))) == 0) copy.Slice(o, subclusterSize).Clear();
    }

    public async Task ZeroAsync(string name, long offset, long length, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token) await ZeroAsync(handle, offset, length, ct).ConfigureAwait(false);
    }

    internal async Task ZeroAsync(ImageHandle handle, long offset, long length, CancellationToken ct)
    {
        ThrowIfRefused(handle, write: true);
        CheckRange(handle, offset, length);
        if (length == 0) return;
        try
        {
            await ZeroRangeAsync(handle, offset, length, ct).ConfigureAwait(false);
        }
        finally
        {
            handle.Tracking.Mark(offset, length); // the whole request, as QEMU marks a write-zeroes (even where it already read as zeros)
        }
    }

    private async Task ZeroRangeAsync(ImageHandle handle, long offset, long length, CancellationToken ct)
    {
        if (handle.BackingDisk is not null && handle.Version < 3)
        {
            // A v2 overlay has no zero flag: only written zeros mask its backing disk (QEMU writes them too).
            for (long o = offset; o < offset + length;)
            {
                int n = (int)Math.Min(Zeros.Length, offset + length - o);
                await WriteAsync(handle, o, Zeros[..n], ct).ConfigureAwait(false);
                o += n;
            }
            return;
        }
        var layout = handle.Layout;
        long end = offset + length;
        long wholeStart = layout.RoundUpToCluster(offset);
        long wholeEnd = layout.ClusterStart(end);
        if (wholeStart >= wholeEnd)
        {
            await ZeroPartialAsync(handle, offset, length, ct).ConfigureAwait(false);
            return;
        }
        if (offset < wholeStart) await ZeroPartialAsync(handle, offset, wholeStart - offset, ct).ConfigureAwait(false);
        for (long o = wholeStart; o < wholeEnd;)
        {
            long n = InTable(layout, o, wholeEnd);
            await handle.AskAsync<ZeroDone>(new ZeroClusters(handle.Image, o, n), AskTimeout, ct).ConfigureAwait(false);
            o += n;
        }
        if (wholeEnd < end) await ZeroPartialAsync(handle, wholeEnd, end - wholeEnd, ct).ConfigureAwait(false);
    }

    /// <summary>Part of one cluster: written with zeros unless it already reads as zeros (an overlay's unallocated part reads its backing disk).</summary>
    private async Task ZeroPartialAsync(ImageHandle handle, long offset, long length, CancellationToken ct)
    {
        var runs = handle.TryMap(offset, length)
            ?? [.. (await handle.AskAsync<RangeMapping>(new MapRange(handle.Image, offset, length), AskTimeout, ct).ConfigureAwait(false)).Runs];
        if (runs.TrueForAll(r => r.IsZero || r.IsUnallocated && handle.BackingDisk is null)) return;
        await WriteInTableAsync(handle, offset, Zeros[..(int)length], ct).ConfigureAwait(false);
    }
}
