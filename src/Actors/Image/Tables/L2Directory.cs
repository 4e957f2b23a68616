using System.Collections.Concurrent;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// The image's mapping as requests see it without a round trip: the L1 table and the L2 tables
/// in memory, published by their owners (only the supervisor changes L1, only a table's actor its
/// entries). An entry changes as one machine word, so a reader sees each cluster's old or new
/// mapping — both held bytes the disk had, and the I/O gate keeps the old cluster from reuse
/// while the request is in flight. A table dropped from memory is retired before its buffer is
/// reused; a reader that mapped from it sees that afterwards and asks the table's actor instead.
/// A use here counts for the cache's clock like a message to the table's actor.
/// </summary>
internal sealed class L2Directory
{
    private readonly ConcurrentDictionary<long, PublishedL2Table> _tables = new();

    internal L2Directory(ulong[] l1, ClusterLayout layout, bool hasBacking = false)
    {
        L1 = l1;
        Layout = layout;
        HasBacking = hasBacking;
    }

    /// <summary>An overlay: its unallocated clusters read the backing disk, so a partial write copies from it.</summary>
    internal bool HasBacking { get; }

    internal ulong[] L1 { get; }
    internal ClusterLayout Layout { get; }

    /// <summary>Makes the state's current table the one readers map with; the one it replaces is retired.</summary>
    internal void Publish(L2TableState state)
    {
        var published = new PublishedL2Table(state.Dense, state.Dense is null ? state.Sparse : null, state.Clock, state.Version);
        state.Published?.Retire();
        state.Published = published;
        _tables[state.L1Index] = published;
    }

    /// <summary>The table leaves memory: retired first, so readers that found it fall back to its (next) actor.</summary>
    internal void Withdraw(L2TableState state)
    {
        state.Published?.Retire();
        _tables.TryRemove(new KeyValuePair<long, PublishedL2Table>(state.L1Index, state.Published!));
        state.Published = null;
    }

    /// <summary>At close: a handle that outlives the incarnation keeps no tables alive.</summary>
    internal void Clear()
    {
        foreach (var t in _tables.Values) t.Retire();
        _tables.Clear();
    }

    private bool IsUnallocated(long i) => L1Entry.From(Volatile.Read(ref L1[i])).IsUnallocated;

    /// <summary>
    /// Maps [offset, offset+length) inside one L2 table's range when it can be done here: an
    /// unallocated L1 slot (zeros) or a published table. Null = ask the table's actor.
    /// </summary>
    internal List<MappedRun>? TryMap(long offset, long length)
    {
        long i = Layout.L1Index(offset);
        if (IsUnallocated(i)) return [new MappedRun(offset, length, MappedRun.UnallocatedHost)];
        if (!_tables.TryGetValue(i, out var table)) return null;
        table.Clock.Touch();
        var runs = new List<MappedRun>();
        int version = table.Version?.BeginRead() ?? 0;
        try
        {
            MapEntries(table, Layout, offset, length, runs);
        }
        catch (ImageException) when (table.Version?.Unchanged(version) == false || table.Retired)
        {
            return null; // a torn read of an entry and its bitmap: the actor maps it again
        }
        return table.Retired || table.Version?.Unchanged(version) == false ? null : runs;
    }

    /// <summary>
    /// A plan for a write inside one table when every cluster it touches is already this image's
    /// alone (<see cref="WriteDecision"/>: in place): such a write changes no metadata, so it
    /// needs no message. Null = ask the table's actor. Throws <see cref="FenceViolationException"/>
    /// when a target holds metadata.
    /// </summary>
    internal WritePlan? TryPlanInPlace(long offset, long length, MetadataClusters fences)
    {
        long i = Layout.L1Index(offset);
        if (!_tables.TryGetValue(i, out var table)) return null;
        table.Clock.Touch();
        int cs = Layout.ClusterSize;
        long tableStart = Layout.L2TableStart(i);
        long end = offset + length;
        int first = Layout.L2Index(offset), last = Layout.L2Index(end - 1);
        var clusters = new ClusterWrite[last - first + 1];
        int version = table.Version?.BeginRead() ?? 0;
        for (int s = first; s <= last; s++)
        {
            long clusterStart = tableStart + (long)s * cs;
            long from = Math.Max(offset, clusterStart);
            int len = (int)(Math.Min(end, clusterStart + cs) - from);
            var bitmap = table.Version is null ? default : table.GetBitmap(s);
            var d = WriteDecision.Decide(table.Get(s), bitmap, (int)(from - clusterStart), len, Layout, HasBacking);
            if (d.Action != ClusterAction.InPlace) return null;
            clusters[s - first] = d.ToWrite(from, len, (int)(from - clusterStart));
        }
        if (table.Retired || table.Version?.Unchanged(version) == false) return null;
        foreach (var c in clusters) WriteDecision.CheckTarget(fences, c.HostCluster, c.VirtualOffset, Layout.ClusterBits);
        return new WritePlan(0, i, clusters);
    }

    /// <summary>Extents of table i when they can be computed here (empty L1 slot or published table); null = ask its actor.</summary>
    internal List<ExtentRun>? TryExtents(long i)
    {
        long start = Layout.L2TableStart(i);
        if (IsUnallocated(i)) return [new ExtentRun(start, Layout.L2Coverage, ExtentKind.Unallocated)];
        if (!_tables.TryGetValue(i, out var table)) return null;
        table.Clock.Touch();
        int version = table.Version?.BeginRead() ?? 0;
        var runs = ExtentsOf(table, Layout, start);
        return table.Retired || table.Version?.Unchanged(version) == false ? null : runs;
    }

    private static ExtentKind KindOf(ulong raw)
    {
        var e = L2Entry.From(raw);
        return e.IsCompressed || e.IsData ? ExtentKind.Data : e.IsZero ? ExtentKind.Zero : ExtentKind.Unallocated;
    }

    private static void AddRun(List<ExtentRun> runs, long start, long length, ExtentKind kind)
    {
        if (runs.Count > 0 && runs[^1].Kind == kind)
            runs[^1] = runs[^1] with { Length = runs[^1].Length + length };
        else
            runs.Add(new ExtentRun(start, length, kind));
    }

    /// <summary>Runs of data, of clusters that read as zeros and of unallocated ones, adjacent equal kinds merged; a compact table walks its used slots only.</summary>
    internal static List<ExtentRun> ExtentsOf(PublishedL2Table table, ClusterLayout layout, long tableStart)
    {
        long cs = layout.ClusterSize;
        var runs = new List<ExtentRun>();
        if (table.Sparse is { } sparse)
        {
            int next = 0;
            for (int k = 0; k < sparse.UsedCount; k++)
            {
                int slot = sparse.SlotAt(k);
                if (slot > next) AddRun(runs, tableStart + next * cs, (slot - next) * cs, ExtentKind.Unallocated);
                AddRun(runs, tableStart + slot * cs, cs, KindOf(sparse.ValueAt(k)));
                next = slot + 1;
            }
            if (next < sparse.Length) AddRun(runs, tableStart + next * cs, (sparse.Length - next) * cs, ExtentKind.Unallocated);
            return runs;
        }
        for (int i = 0; i < layout.L2Entries; i++)
        {
            ulong raw = table.Get(i);
            if (table.Version is null || L2Entry.From(raw).IsCompressed)
            {
                AddRun(runs, tableStart + i * cs, cs, KindOf(raw));
                continue;
            }
            // Extended L2: allocated subclusters are data, zero ones zeros, the others unallocated.
            var bitmap = table.GetBitmap(i);
            if (bitmap.Allocated == uint.MaxValue || bitmap.Zero == uint.MaxValue || (bitmap.Allocated | bitmap.Zero) == 0)
            {
                AddRun(runs, tableStart + i * cs, cs, SubclusterKind(bitmap, 0));
                continue;
            }
            int sc = layout.SubclusterSize;
            for (int k = 0; k < ClusterLayout.Subclusters; k++)
                AddRun(runs, tableStart + i * cs + k * sc, sc, SubclusterKind(bitmap, k));
        }
        return runs;
    }

    private static ExtentKind SubclusterKind(SubclusterBitmap bitmap, int k)
        => bitmap.IsAllocated(k) ? ExtentKind.Data : (bitmap.Zero & (1u << k)) != 0 ? ExtentKind.Zero : ExtentKind.Unallocated;

    private const ulong StandardReserved = 0x3F00_0000_0000_01FEUL;
    private const ulong ExtendedReserved = StandardReserved | 1UL;

    /// <summary>Appends the runs of the range (inside one table): data runs contiguous in the file and zero runs merged, a compressed cluster a run of its own.</summary>
    internal static void MapEntries(PublishedL2Table entries, ClusterLayout layout, long offset, long length, List<MappedRun> runs)
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
            if (e.IsCompressed)
            {
                runs.Add(new MappedRun(from, len, from - clusterStart, e.Raw));
                continue;
            }
            // Bits 1-8 and 56-61 of a standard entry are reserved (bit 0 too with extended entries): set, the entry is corrupt.
            if ((e.Raw & (entries.Version is null ? StandardReserved : ExtendedReserved)) != 0)
                throw new ImageException(ImageError.Unsupported,
                    $"the L2 entry of virtual offset {clusterStart} (0x{e.Raw:x16}) has reserved bits set; repair the image with qemu-img check -r all", "corrupt");
            if (entries.Version is not null)
            {
                MapSubclusters(e, entries.GetBitmap(i), layout, clusterStart, from, len, runs);
                continue;
            }
            AddMapped(runs, from, len, e.IsData ? e.HostOffset + (from - clusterStart) : e.IsZero ? MappedRun.ZeroHost : MappedRun.UnallocatedHost);
        }
    }

    /// <summary>One extended entry's part of the range, subcluster by subcluster (runs of equal kind merged).</summary>
    private static void MapSubclusters(L2Entry e, SubclusterBitmap bitmap, ClusterLayout layout, long clusterStart, long from, long len, List<MappedRun> runs)
    {
        if (bitmap.Problem(e.HostOffset) is { } problem)
            throw new ImageException(ImageError.Unsupported,
                $"the extended L2 entry of virtual offset {clusterStart} is invalid: {problem}; repair the image with qemu-img check -r all", "corrupt");
        int sc = layout.SubclusterSize;
        long end = from + len;
        for (long o = from; o < end;)
        {
            int k = (int)((o - clusterStart) / sc);
            long n = Math.Min(end, clusterStart + (long)(k + 1) * sc) - o;
            AddMapped(runs, o, n, bitmap.IsAllocated(k) ? e.HostOffset + (o - clusterStart)
                : (bitmap.Zero & (1u << k)) != 0 ? MappedRun.ZeroHost : MappedRun.UnallocatedHost);
            o += n;
        }
    }

    /// <summary>Appends a data (host ≥ 0), zero or unallocated run, merged with the previous one when it continues it.</summary>
    private static void AddMapped(List<MappedRun> runs, long from, long len, long host)
    {
        if (runs.Count > 0)
        {
            var prev = runs[^1];
            bool joins = !prev.IsCompressed && (host < 0 ? prev.HostOffset == host : prev.HostOffset >= 0 && prev.HostOffset + prev.Length == host);
            if (joins)
            {
                runs[^1] = prev with { Length = prev.Length + len };
                return;
            }
        }
        runs.Add(new MappedRun(from, len, host));
    }
}
