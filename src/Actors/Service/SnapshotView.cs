using System.Buffers;
using System.Buffers.Binary;
using QcowActors.Actors.Image;
using QcowActors.Format;

namespace QcowActors.Actors.Service;

/// <summary>
/// One request's read-only view of an internal snapshot. Its mapping is read from the file: the
/// snapshot's L1 entries and L2 tables one at a time into a pooled buffer, so memory does not grow
/// with the disk. Why the mapped clusters stay valid: a snapshot's clusters are referenced by its
/// tables, so their counts cannot drop while the image is open; only a maintenance operation (delete,
/// revert) drops them, and it runs after the image closed, which waits for every gate entry. Each
/// mapping is made under its own entry (as the disk path does, so a long download does not hold one
/// entry for hours); an entry into a new incarnation checks the snapshot is still the same one.
/// </summary>
public sealed class SnapshotView : IDiskReadSource, IAsyncDisposable
{
    private readonly ImageService _service;
    private ImageHandle _handle;
    private IoEpochGate.Token? _token;
    private readonly SnapshotEntry _entry;

    internal SnapshotView(ImageService service, ImageHandle handle, IoEpochGate.Token token, SnapshotEntry entry)
    {
        _service = service;
        _handle = handle;
        _token = token;
        _entry = entry;
        VirtualSize = entry.DiskSize >= 0 ? entry.DiskSize : handle.VirtualSize;
        Info = SnapshotInfo.From(entry, handle.VirtualSize);
    }

    public SnapshotInfo Info { get; }
    public long VirtualSize { get; }

    private async ValueTask<(ImageHandle Handle, IoEpochGate.Token Token)> EnterAsync(CancellationToken ct)
    {
        if (Interlocked.Exchange(ref _token, null) is { } first) return (_handle, first);
        if (_handle.Gate.TryEnter() is { } token) return (_handle, token);
        var entered = await _service.EnterAsync(_handle.Image, ct).ConfigureAwait(false);
        try
        {
            var entries = await ImageService.ReadSnapshotsAsync(entered.Handle, ct).ConfigureAwait(false);
            if (!entries.Any(e => e.Id == _entry.Id && e.L1TableOffset == _entry.L1TableOffset && e.DateSeconds == _entry.DateSeconds
                    && e.DateNanoseconds == _entry.DateNanoseconds))
                throw new ImageException(ImageError.NotFound, $"snapshot '{_entry.Id}' of image '{_handle.Image}' was deleted or changed meanwhile");
        }
        catch
        {
            entered.Token.Dispose();
            throw;
        }
        _handle = entered.Handle;
        return entered;
    }

    /// <summary>Maps [offset, offset+length) of the snapshot; the plan holds a gate entry until disposed.</summary>
    public async Task<DiskReadPlan> PlanReadAsync(long offset, long length, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(ct).ConfigureAwait(false);
        try
        {
            if (offset < 0 || length < 0 || offset > VirtualSize || length > VirtualSize - offset)
                throw new ImageException(ImageError.OutOfRange, $"range {offset}+{length} is outside the snapshot's disk of {VirtualSize} bytes");
            var runs = await MapAsync(handle, offset, length, ct).ConfigureAwait(false);
            ImageService.CheckInsideFile(handle, runs);
            return new MappedReadPlan(handle, _service.Inflater, token, runs, offset, length, _service.Options.CloseReadLimit);
        }
        catch
        {
            token.Dispose();
            throw;
        }
    }

    private async Task<List<MappedRun>> MapAsync(ImageHandle handle, long offset, long length, CancellationToken ct)
    {
        var layout = handle.Layout;
        var runs = new List<MappedRun>();
        var table = ArrayPool<byte>.Shared.Rent(layout.ClusterSize);
        try
        {
            long end = offset + length;
            for (long o = offset; o < end;)
            {
                long i = layout.L1Index(o);
                long part = Math.Min(end, layout.L2TableStart(i + 1)) - o;
                if (await ReadTableAsync(handle, i, table, ct).ConfigureAwait(false))
                {
                    L2Directory.MapEntries(PublishedL2Table.ReadOnly(table, layout), layout, o, part, runs);
                }
                else if (runs.Count > 0 && runs[^1].IsUnallocated)
                {
                    runs[^1] = runs[^1] with { Length = runs[^1].Length + part };
                }
                else
                {
                    runs.Add(new MappedRun(o, part, MappedRun.UnallocatedHost));
                }
                o += part;
            }
            return runs;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(table);
        }
    }

    /// <summary>Reads L2 table i of the snapshot into buffer; false when its L1 slot is empty (reads as zeros).</summary>
    private async Task<bool> ReadTableAsync(ImageHandle handle, long i, byte[] buffer, CancellationToken ct)
    {
        if (i >= _entry.L1Size) return false;
        await handle.File.ReadAsync(buffer.AsMemory(0, 8), _entry.L1TableOffset + i * 8, ct).ConfigureAwait(false);
        var e = L1Entry.From(BinaryPrimitives.ReadUInt64BigEndian(buffer));
        if (e.IsUnallocated) return false;
        await handle.File.ReadAsync(buffer.AsMemory(0, handle.Layout.ClusterSize), e.L2Offset, ct).ConfigureAwait(false);
        return true;
    }

    /// <summary>Extents of the whole snapshot disk in order, adjacent equal ones merged (the same shape as the disk's).</summary>
    public async IAsyncEnumerable<DiskExtent> GetExtentsAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(ct).ConfigureAwait(false);
        var layout = handle.Layout;
        var table = ArrayPool<byte>.Shared.Rent(layout.ClusterSize);
        try
        {
            long tables = layout.L1EntriesFor(VirtualSize);
            var merger = new DiskExtentMerger(VirtualSize);
            for (long i = 0; i < tables; i++)
            {
                long start = layout.L2TableStart(i);
                IReadOnlyList<ExtentRun> runs = await ReadTableAsync(handle, i, table, ct).ConfigureAwait(false)
                    ? L2Directory.ExtentsOf(PublishedL2Table.ReadOnly(table, layout), layout, start)
                    : [new ExtentRun(start, layout.L2Coverage, ExtentKind.Unallocated)];
                if (handle.BackingDisk is { } backing) runs = await backing.ResolveAsync(runs, ct).ConfigureAwait(false);
                foreach (var extent in merger.Add(runs)) yield return extent;
            }
            if (merger.Finish() is { } last) yield return last;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(table);
            token.Dispose();
        }
    }

    public ValueTask DisposeAsync()
    {
        Interlocked.Exchange(ref _token, null)?.Dispose();
        return ValueTask.CompletedTask;
    }
}
