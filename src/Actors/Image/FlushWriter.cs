using System.Buffers.Binary;
using QcowActors.Actors.Io;

namespace QcowActors.Actors.Image;

/// <summary>
/// Writes a flush's snapshots in dependency order with an fsync at each edge that has something
/// to write: data → refcount blocks → refcount table → header (when the table moved) → L2 tables → L1.
/// Phase 2 writes the blocks that took decrements, after the entries that dropped them are durable.
/// </summary>
internal static class FlushWriter
{
    public static async Task WriteAsync(IImageFile file, FlushRun run, string markerPath, Action<string> syncDirectory)
    {
        var ct = CancellationToken.None; // a flush, once started, finishes: half of it would be worse
        if (run.NeedsMarker)
        {
            await File.WriteAllBytesAsync(markerPath, [], ct).ConfigureAwait(false);
            syncDirectory(Path.GetDirectoryName(markerPath)!);
        }
        if (run.Phase == 2)
        {
            if (await WriteBlocksAsync(file, run, ct).ConfigureAwait(false)) await file.FlushAsync(ct).ConfigureAwait(false);
            return;
        }
        await file.FlushAsync(ct).ConfigureAwait(false); // data before anything that points to it

        if (await WriteBlocksAsync(file, run, ct).ConfigureAwait(false)) await file.FlushAsync(ct).ConfigureAwait(false);
        if (run.RefcountTable is not null)
        {
            // A table entry must never point to a block that is not on disk yet.
            await file.WriteAsync(run.RefcountTable, run.RefcountTableOffset, ct).ConfigureAwait(false);
            await file.FlushAsync(ct).ConfigureAwait(false);
        }

        if (run.Header is not null)
        {
            await file.WriteAsync(run.Header, 0, ct).ConfigureAwait(false);
            await file.FlushAsync(ct).ConfigureAwait(false);
        }

        if (run.L2Tables.Count > 0)
        {
            await Task.WhenAll(run.L2Tables.Select(t => file.WriteAsync(t.Bytes!, t.HostOffset, ct).AsTask())).ConfigureAwait(false);
            await file.FlushAsync(ct).ConfigureAwait(false);
        }

        if (run.L1Entries.Count > 0)
        {
            await WriteL1Async(file, run, ct).ConfigureAwait(false);
            await file.FlushAsync(ct).ConfigureAwait(false);
        }
    }

    private static async Task<bool> WriteBlocksAsync(IImageFile file, FlushRun run, CancellationToken ct)
    {
        if (run.RefcountBlocks.Count == 0) return false;
        await Task.WhenAll(run.RefcountBlocks.Select(b => file.WriteAsync(b.Bytes!, b.HostOffset, ct).AsTask())).ConfigureAwait(false);
        return true;
    }

    /// <summary>Writes changed L1 entries, contiguous ones in one write.</summary>
    private static async Task WriteL1Async(IImageFile file, FlushRun run, CancellationToken ct)
    {
        var entries = run.L1Entries.ToArray();
        int start = 0;
        while (start < entries.Length)
        {
            int end = start + 1;
            while (end < entries.Length && entries[end].Key == entries[end - 1].Key + 1) end++;
            var bytes = new byte[(end - start) * 8];
            for (int k = start; k < end; k++)
                BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan((k - start) * 8), entries[k].Value);
            await file.WriteAsync(bytes, run.L1Offset + entries[start].Key * 8, ct).ConfigureAwait(false);
            start = end;
        }
    }
}
