using System.Collections.Concurrent;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// The image's mapping as readers see it without a round trip: the L1 table and the L2 tables in
/// memory, published by their owners. Owners change single 64-bit entries with Volatile.Write;
/// a reader sees, per cluster, either the old or the new mapping — both held bytes the disk had,
/// and the I/O gate keeps the old cluster from reuse while the read is in flight. Only the
/// supervisor changes L1, only a table's actor its L2 entries; tables not here are asked for.
/// </summary>
public sealed class L2Directory
{
    private readonly ConcurrentDictionary<long, ulong[]> _tables = new();

    internal L2Directory(ulong[] l1, ClusterLayout layout)
    {
        L1 = l1;
        Layout = layout;
    }

    internal ulong[] L1 { get; }
    internal ClusterLayout Layout { get; }

    internal void Publish(long l1Index, ulong[] entries) => _tables[l1Index] = entries;
    internal void Withdraw(long l1Index) => _tables.TryRemove(l1Index, out _);
    /// <summary>At close: a handle that outlives the incarnation keeps no tables alive.</summary>
    internal void Clear() => _tables.Clear();

    /// <summary>
    /// Maps [offset, offset+length) inside one L2 table's range when it can be done locally:
    /// an unallocated L1 slot (zeros) or a published table. Null = ask the table's actor.
    /// </summary>
    internal IReadOnlyList<MappedRun>? TryMap(string image, long offset, long length)
    {
        long i = Layout.L1Index(offset);
        if (L1Entry.From(Volatile.Read(ref L1[i])).IsUnallocated) return [new MappedRun(offset, length, -1)];
        if (!_tables.TryGetValue(i, out var entries)) return null;
        var runs = new List<MappedRun>();
        long? compressedAt = MapEntries(entries, Layout, offset, length, runs);
        if (compressedAt is { } at)
            throw new ImageException(ImageError.Unsupported,
                $"image '{image}': the cluster at virtual offset {at} is compressed; compressed clusters are not supported yet",
                "compressed clusters");
        return runs;
    }

    /// <summary>Extents of table i when they can be computed locally (empty L1 slot or published table); null = ask its actor.</summary>
    internal IReadOnlyList<ExtentRun>? TryExtents(long i)
    {
        long start = Layout.L2TableStart(i);
        if (L1Entry.From(Volatile.Read(ref L1[i])).IsUnallocated) return [new ExtentRun(start, Layout.L2Coverage, ExtentKind.Zero)];
        return _tables.TryGetValue(i, out var entries) ? ExtentsOf(entries, Layout, start) : null;
    }

    /// <summary>Runs of data and of clusters that read as zeros, adjacent equal kinds merged.</summary>
    internal static List<ExtentRun> ExtentsOf(ulong[] entries, ClusterLayout layout, long tableStart)
    {
        int cs = layout.ClusterSize;
        var runs = new List<ExtentRun>();
        for (int i = 0; i < entries.Length; i++)
        {
            var e = L2Entry.From(Volatile.Read(ref entries[i]));
            var kind = e.IsCompressed || e.IsData ? ExtentKind.Data : ExtentKind.Zero;
            if (runs.Count > 0 && runs[^1].Kind == kind)
                runs[^1] = runs[^1] with { Length = runs[^1].Length + cs };
            else
                runs.Add(new ExtentRun(tableStart + (long)i * cs, cs, kind));
        }
        return runs;
    }

    /// <summary>Appends merged runs for the range (inside one table); returns the offset of a compressed cluster met, if any.</summary>
    internal static long? MapEntries(ulong[] entries, ClusterLayout layout, long offset, long length, List<MappedRun> runs)
    {
        int cs = layout.ClusterSize;
        long tableStart = layout.L2TableStart(layout.L1Index(offset));
        long end = offset + length;
        for (int i = layout.L2Index(offset), last = layout.L2Index(end - 1); i <= last; i++)
        {
            long clusterStart = tableStart + (long)i * cs;
            long from = Math.Max(offset, clusterStart);
            long len = Math.Min(end, clusterStart + cs) - from;
            var e = L2Entry.From(Volatile.Read(ref entries[i]));
            if (e.IsCompressed) return clusterStart;
            long host = e.IsData ? e.HostOffset + (from - clusterStart) : -1;
            if (runs.Count > 0)
            {
                var prev = runs[^1];
                bool joins = host < 0 ? prev.IsZero : !prev.IsZero && prev.HostOffset + prev.Length == host;
                if (joins)
                {
                    runs[^1] = prev with { Length = prev.Length + len };
                    continue;
                }
            }
            runs.Add(new MappedRun(from, len, host));
        }
        return null;
    }
}
