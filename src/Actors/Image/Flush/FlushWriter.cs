using System.Buffers.Binary;
using QcowActors.Actors.Io;

namespace QcowActors.Actors.Image;

/// <summary>
/// A flush's I/O, in dependency order with an fsync at each edge that has something to write:
/// data → refcount blocks → refcount table → header (when the table moved or a flag changed) →
/// L2 tables → L1. Every metadata write is checked against the fence first: it may land only on
/// clusters holding that same structure, so even a corrupt count cannot make a flush overwrite
/// other metadata (it fails with <see cref="FenceViolationException"/> instead).
/// </summary>
internal static class FlushWriter
{
    public static async Task WriteEntriesAsync(IImageFile file, FlushRun run, MetadataClusters fences, Func<CancellationToken, Task> writeMarker)
    {
        var ct = CancellationToken.None; // a flush, once started, finishes: half of it would be worse
        CheckAll(run, fences);
        if (run.NeedsMarker) await writeMarker(ct).ConfigureAwait(false);
        await file.FsyncAsync(ct).ConfigureAwait(false); // data before anything that points to it

        if (await WriteAllAsync(file, run.Blocks, ct).ConfigureAwait(false))
            await file.FsyncAsync(ct).ConfigureAwait(false);
        if (run.Metadata.RefcountTable is { } rt)
        {
            // A table entry must never point to a block that is not on disk yet.
            await file.WriteAsync(rt.Table.AsMemory(rt.From, rt.To - rt.From), rt.Offset + rt.From, ct).ConfigureAwait(false);
            await file.FsyncAsync(ct).ConfigureAwait(false);
        }
        if (run.Metadata.Header is { } header)
        {
            await file.WriteAsync(header, 0, ct).ConfigureAwait(false);
            await file.FsyncAsync(ct).ConfigureAwait(false);
        }
        if (await WriteAllAsync(file, run.L2Tables, ct).ConfigureAwait(false))
            await file.FsyncAsync(ct).ConfigureAwait(false);
        if (run.Metadata.L1Entries.Count > 0)
        {
            await WriteL1Async(file, run.Metadata, ct).ConfigureAwait(false);
            await file.FsyncAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>Phase 2: one block whose counts dropped (the fsync comes once, after the last).</summary>
    public static async Task WriteBlockAsync(IImageFile file, FrozenWrite block, MetadataClusters fences)
    {
        Check(fences, block, MetadataKind.RefcountBlock);
        await WriteAllAsync(file, [block], CancellationToken.None).ConfigureAwait(false);
    }

    private static void CheckAll(FlushRun run, MetadataClusters fences)
    {
        foreach (var b in run.Blocks) Check(fences, b, MetadataKind.RefcountBlock);
        foreach (var t in run.L2Tables) Check(fences, t, MetadataKind.L2Table);
        if (run.Metadata.RefcountTable is { } rt) Check(fences, rt.Offset + rt.From, rt.To - rt.From, MetadataKind.RefcountTable, "the refcount table");
        if (run.Metadata.Header is { } header) Check(fences, 0, header.Length, MetadataKind.Header, "the header");
        var l1 = run.Metadata.L1Entries;
        if (l1.Count > 0)
        {
            long first = l1.First().Key, last = l1.Last().Key;
            Check(fences, run.Metadata.L1Offset + first * 8, (last - first + 1) * 8, MetadataKind.L1Table, "the L1 table");
        }
    }

    private static void Check(MetadataClusters fences, FrozenWrite w, MetadataKind kind)
    {
        foreach (var (from, to) in w.Ranges)
            Check(fences, w.HostOffset + from, to - from, kind, kind == MetadataKind.L2Table ? $"L2 table {w.Key.Index}" : $"refcount block {w.Key.Index}");
    }

    private static void Check(MetadataClusters fences, long offset, long length, MetadataKind kind, string what)
    {
        if (fences.Overlap(offset, length, kind) is { } hit)
            throw new FenceViolationException(hit.Cluster, hit.Found ?? kind, hit.Found is { } found
                ? $"writing {what} at host offset {offset} would overwrite {MetadataClusters.Describe(found)} in cluster {hit.Cluster}"
                : $"{what} at host offset {offset} lies in cluster {hit.Cluster}, which is not known to hold it");
    }

    private static async Task<bool> WriteAllAsync(IImageFile file, IReadOnlyList<FrozenWrite> writes, CancellationToken ct)
    {
        if (writes.Count == 0) return false;
        var tasks = new List<Task>();
        foreach (var w in writes)
            foreach (var (from, to) in w.Ranges)
                tasks.Add(file.WriteAsync(w.Buffer.AsMemory(from, to - from), w.HostOffset + from, ct).AsTask());
        await Task.WhenAll(tasks).ConfigureAwait(false);
        return true;
    }

    /// <summary>Writes changed L1 entries, contiguous ones in one write.</summary>
    private static async Task WriteL1Async(IImageFile file, FlushMetadata metadata, CancellationToken ct)
    {
        var entries = metadata.L1Entries.ToArray();
        int start = 0;
        while (start < entries.Length)
        {
            int end = start + 1;
            while (end < entries.Length && entries[end].Key == entries[end - 1].Key + 1) end++;
            var bytes = new byte[(end - start) * 8];
            for (int k = start; k < end; k++)
                BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan((k - start) * 8), entries[k].Value);
            await file.WriteAsync(bytes, metadata.L1Offset + entries[start].Key * 8, ct).ConfigureAwait(false);
            start = end;
        }
    }
}
