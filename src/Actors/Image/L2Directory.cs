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
    /// <summary>L1 index → the table as its owner holds it: ulong[] (dense, changed in place) or <see cref="SparseL2Table"/>.</summary>
    private readonly ConcurrentDictionary<long, object> _tables = new();

    internal L2Directory(ulong[] l1, ClusterLayout layout)
    {
        L1 = l1;
        Layout = layout;
    }

    internal ulong[] L1 { get; }
    internal ClusterLayout Layout { get; }

    /// <summary>Makes the state's table (dense or sparse) the one readers map with.</summary>
    internal void Publish(L2TableState state) => _tables[state.L1Index] = (object?)state.Entries ?? state.Sparse!;
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
        if (!_tables.TryGetValue(i, out var table)) return null;
        var runs = new List<MappedRun>();
        long? compressedAt = table is ulong[] dense
            ? MapEntries(new DenseL2View(dense), Layout, offset, length, runs)
            : MapEntries(new SparseL2View((SparseL2Table)table), Layout, offset, length, runs);
        if (compressedAt is { } at)
            throw new ImageException(ImageError.Unsupported,
                $"image '{image}': the cluster at virtual offset {at} is compressed; compressed clusters are not supported yet",
                "compressed clusters");
        return runs;
    }

    /// <summary>
    /// A plan for a write inside one table when every cluster it touches is already allocated to this
    /// image alone (data, COPIED): such a write lands in place and changes no metadata, which is the
    /// table actor's rule too, so it needs no message. Null = ask the table's actor.
    /// </summary>
    internal WritePlan? TryPlanInPlace(long offset, long length)
    {
        long i = Layout.L1Index(offset);
        if (!_tables.TryGetValue(i, out var table)) return null;
        return table is ulong[] dense
            ? PlanInPlace(new DenseL2View(dense), i, offset, length)
            : PlanInPlace(new SparseL2View((SparseL2Table)table), i, offset, length);
    }

    private WritePlan? PlanInPlace<TView>(TView entries, long l1Index, long offset, long length) where TView : IL2View
    {
        int cs = Layout.ClusterSize;
        long tableStart = Layout.L2TableStart(l1Index);
        long end = offset + length;
        int first = Layout.L2Index(offset), last = Layout.L2Index(end - 1);
        var clusters = new ClusterWrite[last - first + 1];
        for (int s = first; s <= last; s++)
        {
            var e = L2Entry.From(entries.Get(s));
            if (!e.IsData || !e.Copied || e.IsCompressed) return null;
            long clusterStart = tableStart + (long)s * cs;
            long from = Math.Max(offset, clusterStart);
            int len = (int)(Math.Min(end, clusterStart + cs) - from);
            clusters[s - first] = new ClusterWrite(from, len, e.HostOffset, (int)(from - clusterStart), ClusterFill.None, 0);
        }
        return new WritePlan(0, l1Index, clusters);
    }

    /// <summary>Extents of table i when they can be computed locally (empty L1 slot or published table); null = ask its actor.</summary>
    internal IReadOnlyList<ExtentRun>? TryExtents(long i)
    {
        long start = Layout.L2TableStart(i);
        if (L1Entry.From(Volatile.Read(ref L1[i])).IsUnallocated) return [new ExtentRun(start, Layout.L2Coverage, ExtentKind.Zero)];
        if (!_tables.TryGetValue(i, out var table)) return null;
        return table is ulong[] dense ? ExtentsOf(dense, Layout, start) : ExtentsOf((SparseL2Table)table, Layout, start);
    }

    private static ExtentKind KindOf(ulong raw)
    {
        var e = L2Entry.From(raw);
        return e.IsCompressed || e.IsData ? ExtentKind.Data : ExtentKind.Zero;
    }

    private static void AddRun(List<ExtentRun> runs, long start, long length, ExtentKind kind)
    {
        if (runs.Count > 0 && runs[^1].Kind == kind)
            runs[^1] = runs[^1] with { Length = runs[^1].Length + length };
        else
            runs.Add(new ExtentRun(start, length, kind));
    }

    /// <summary>As for a dense table, walking only the used slots (unused ones read as zeros).</summary>
    internal static List<ExtentRun> ExtentsOf(SparseL2Table table, ClusterLayout layout, long tableStart)
    {
        long cs = layout.ClusterSize;
        var runs = new List<ExtentRun>();
        int next = 0;
        for (int k = 0; k < table.UsedCount; k++)
        {
            int slot = table.SlotAt(k);
            if (slot > next) AddRun(runs, tableStart + next * cs, (slot - next) * cs, ExtentKind.Zero);
            AddRun(runs, tableStart + slot * cs, cs, KindOf(table.ValueAt(k)));
            next = slot + 1;
        }
        if (next < table.Length) AddRun(runs, tableStart + next * cs, (table.Length - next) * cs, ExtentKind.Zero);
        return runs;
    }

    /// <summary>Runs of data and of clusters that read as zeros, adjacent equal kinds merged.</summary>
    internal static List<ExtentRun> ExtentsOf(ulong[] entries, ClusterLayout layout, long tableStart)
    {
        int cs = layout.ClusterSize;
        var runs = new List<ExtentRun>();
        for (int i = 0; i < entries.Length; i++)
            AddRun(runs, tableStart + (long)i * cs, cs, KindOf(Volatile.Read(ref entries[i])));
        return runs;
    }

    /// <summary>Appends merged runs for the range (inside one table); returns the offset of a compressed cluster met, if any.</summary>
    internal static long? MapEntries<TView>(TView entries, ClusterLayout layout, long offset, long length, List<MappedRun> runs)
        where TView : IL2View
    {
        int cs = layout.ClusterSize;
        long tableStart = layout.L2TableStart(layout.L1Index(offset));
        long end = offset + length;
        for (int i = layout.L2Index(offset), last = layout.L2Index(end - 1); i <= last; i++)
        {
            long clusterStart = tableStart + (long)i * cs;
            long from = Math.Max(offset, clusterStart);
            long len = Math.Min(end, clusterStart + cs) - from;
            var e = L2Entry.From(entries.Get(i));
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

/// <summary>Read access to an L2 table's raw entries, dense or sparse; a struct so the mapping code is specialised for each.</summary>
internal interface IL2View
{
    ulong Get(int i);
}

/// <summary>A dense table: its owner changes entries in place, so each is read with Volatile.</summary>
internal readonly struct DenseL2View(ulong[] entries) : IL2View
{
    public ulong Get(int i) => Volatile.Read(ref entries[i]);
}

/// <summary>A sparse table: immutable.</summary>
internal readonly struct SparseL2View(SparseL2Table table) : IL2View
{
    public ulong Get(int i) => table.Get(i);
}
