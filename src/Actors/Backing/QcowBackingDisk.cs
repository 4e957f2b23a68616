using System.Collections.Concurrent;
using QcowActors.Actors.Image;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Backing;

/// <summary>
/// A qcow2 image read as a backing disk: its L1 table in memory, its L2 tables read on demand into
/// a small cache of its own (at most <see cref="CacheBytes"/>; a table leaves it when another must
/// come in), reads mapped with the same rules as an open image's (<see cref="L2Directory.MapEntries"/>).
/// Unallocated clusters and subclusters fall through to its own backing disk; zero ones stop there.
/// </summary>
internal sealed class QcowBackingDisk : BackingDisk
{
    /// <summary>L2 tables one backing image keeps in memory (at least 4): bounded, whatever the disk's size.</summary>
    internal const long CacheBytes = 16L << 20;
    private readonly ClusterLayout _layout;
    private readonly ulong[] _l1;
    private readonly byte _compressionType;
    private readonly CompressedClusterReader _inflater;
    private readonly ConcurrentDictionary<long, Task<PublishedL2Table>> _tables = new();
    private readonly int _capacity;

    public QcowBackingDisk(string fileName, IImageFile file, QcowHeader header, ulong[] l1, CompressedClusterReader inflater, BackingDisk? backing)
        : base(fileName, header.Size, file, backing)
    {
        _layout = header.Layout;
        _l1 = l1;
        _compressionType = header.CompressionType;
        _inflater = inflater;
        _capacity = (int)Math.Max(4, CacheBytes / _layout.ClusterSize);
    }

    public override string Format => "qcow2";

    private bool TableUnallocated(long i) => i >= _l1.Length || L1Entry.From(_l1[i]).IsUnallocated;

    private Task<PublishedL2Table> TableAsync(long i, CancellationToken ct)
    {
        if (_tables.TryGetValue(i, out var cached) && !cached.IsFaulted && !cached.IsCanceled) return cached;
        if (_tables.Count >= _capacity)
        {
            // Any other table makes room: reads of a backing disk are as likely anywhere.
            foreach (var key in _tables.Keys)
                if (key != i && _tables.TryRemove(key, out _)) break;
        }
        // Not the request's token: other requests may wait for the same table.
        var load = LoadAsync(L1Entry.From(_l1[i]).L2Offset, CancellationToken.None);
        _tables[i] = load;
        return load.WaitAsync(ct);
    }

    private async Task<PublishedL2Table> LoadAsync(long offset, CancellationToken ct)
    {
        var bytes = new byte[_layout.ClusterSize];
        await File.ReadAsync(bytes, offset, ct).ConfigureAwait(false);
        return PublishedL2Table.ReadOnly(bytes, _layout);
    }

    private async Task<List<MappedRun>> MapAsync(long offset, long length, CancellationToken ct)
    {
        var runs = new List<MappedRun>();
        long end = offset + length;
        for (long o = offset; o < end;)
        {
            long i = _layout.L1Index(o);
            long part = Math.Min(end, _layout.L2TableStart(i + 1)) - o;
            if (TableUnallocated(i))
            {
                if (runs.Count > 0 && runs[^1].IsUnallocated) runs[^1] = runs[^1] with { Length = runs[^1].Length + part };
                else runs.Add(new MappedRun(o, part, MappedRun.UnallocatedHost));
            }
            else
            {
                L2Directory.MapEntries(await TableAsync(i, ct).ConfigureAwait(false), _layout, o, part, runs);
            }
            o += part;
        }
        return runs;
    }

    private protected override async ValueTask ReadInsideAsync(Memory<byte> destination, long offset, CancellationToken ct)
    {
        List<MappedRun> runs;
        try
        {
            runs = await MapAsync(offset, destination.Length, ct).ConfigureAwait(false);
        }
        catch (ImageException e)
        {
            throw new ImageException(e.Error, $"backing image '{FileName}': {e.Message}", e.Feature, e);
        }
        foreach (var run in runs)
        {
            var slice = destination.Slice((int)(run.VirtualOffset - offset), (int)run.Length);
            if (run.IsCompressed)
            {
                using var cluster = await _inflater.InflateAsync(File, _layout, _compressionType, FileName, run.Compressed,
                    run.VirtualOffset - run.HostOffset, ct).ConfigureAwait(false);
                cluster.Bytes.Slice((int)run.HostOffset, (int)run.Length).CopyTo(slice.Span);
            }
            else if (run.IsZero) slice.Span.Clear();
            else if (run.IsUnallocated)
            {
                if (Backing is null) slice.Span.Clear();
                else await Backing.ReadAsync(slice, run.VirtualOffset, ct).ConfigureAwait(false);
            }
            else await File.ReadAsync(slice, run.HostOffset, ct).ConfigureAwait(false);
        }
    }

    private protected override async Task AddExtentsInsideAsync(long offset, long length, List<ExtentRun> into, CancellationToken ct)
    {
        long end = offset + length;
        for (long o = offset; o < end;)
        {
            long i = _layout.L1Index(o);
            long tableStart = _layout.L2TableStart(i);
            long part = Math.Min(end, tableStart + _layout.L2Coverage) - o;
            IReadOnlyList<ExtentRun> runs = TableUnallocated(i)
                ? [new ExtentRun(tableStart, _layout.L2Coverage, ExtentKind.Unallocated)]
                : L2Directory.ExtentsOf(await TableAsync(i, ct).ConfigureAwait(false), _layout, tableStart);
            foreach (var run in runs)
            {
                long from = Math.Max(run.Start, o), to = Math.Min(run.Start + run.Length, o + part);
                if (from >= to) continue;
                if (run.Kind != ExtentKind.Unallocated) AddExtent(into, from, to - from, run.Kind);
                else if (Backing is null) AddExtent(into, from, to - from, ExtentKind.Zero);
                else await Backing.AddExtentsAsync(from, to - from, into, ct).ConfigureAwait(false);
            }
            o += part;
        }
    }
}
