using Akka.Actor;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// What a flush must write of a table or block and whether its actor holds changes meanwhile.
/// Kept in the state object, not the actor, so a restarted actor still knows it is frozen while
/// a flush writes its buffer.
/// </summary>
internal abstract class WritableState(int clusterSize)
{
    /// <summary>Changes are tracked, and written back, in pages of this size (or the whole cluster when smaller).</summary>
    public const int WriteGranule = 4096;
    private readonly int _granule = Math.Min(WriteGranule, clusterSize);
    private readonly ulong[] _dirty = new ulong[Math.Max(1, clusterSize / Math.Min(WriteGranule, clusterSize) / 64)];
    private int _dirtyCount;

    public int ClusterSize { get; } = clusterSize;
    /// <summary>In memory differs from the file.</summary>
    public bool Dirty => _dirtyCount > 0;
    /// <summary>A flush is writing the buffer: changes wait.</summary>
    public bool IsFrozen { get; set; }

    /// <summary>Bytes [from, to) changed.</summary>
    public void MarkDirty(int from, int to)
    {
        for (int g = from / _granule; g <= (to - 1) / _granule; g++)
        {
            ref ulong word = ref _dirty[g >> 6];
            ulong bit = 1UL << (g & 63);
            if ((word & bit) != 0) continue;
            word |= bit;
            _dirtyCount++;
        }
    }

    public void MarkAllDirty() => MarkDirty(0, ClusterSize);

    /// <summary>
    /// A buffer that replaces a cluster never written (past the end of the file as opened): the
    /// file reads as zeros there already, so only changed pages need writing, plus the last one,
    /// which makes the file reach the end of the cluster.
    /// </summary>
    public void MarkFresh() => MarkDirty(ClusterSize - 1, ClusterSize);

    /// <summary>The changed byte ranges (whole pages, merged), oldest first; the state is clean from here.</summary>
    public IReadOnlyList<(int From, int To)> TakeDirty()
    {
        var ranges = new List<(int From, int To)>();
        int granules = ClusterSize / _granule;
        for (int g = 0; g < granules; g++)
        {
            if ((_dirty[g >> 6] & (1UL << (g & 63))) == 0) continue;
            int from = g * _granule, to = from + _granule;
            if (ranges.Count > 0 && ranges[^1].To == from) ranges[^1] = (ranges[^1].From, to);
            else ranges.Add((from, to));
        }
        Array.Clear(_dirty);
        _dirtyCount = 0;
        return ranges;
    }

    /// <summary>A write of these ranges failed: they are dirty again.</summary>
    public void Redirty(IReadOnlyList<(int From, int To)> ranges)
    {
        foreach (var (from, to) in ranges) MarkDirty(from, to);
    }
}

/// <summary>
/// One L2 table and the writes in flight on it. Kept by the supervisor and handed to each
/// incarnation of its <see cref="L2TableActor"/>, so a restarted actor resumes the same table:
/// committed (acknowledged) entries and dirty state are never lost with the actor.
/// </summary>
internal sealed class L2TableState(long l1Index, long hostOffset, int clusterSize, ClockBit clock, bool extended) : WritableState(clusterSize)
{
    /// <summary>Extended L2 entries (entry + bitmap); such a table is always dense.</summary>
    public bool Extended { get; } = extended;
    /// <summary>The sequence lock readers of extended entries check; null for standard entries.</summary>
    public TableVersion? Version { get; } = extended ? new TableVersion() : null;
    public long L1Index { get; } = l1Index;
    /// <summary>Where the table lives in the file (changes when a shared table is copied).</summary>
    public long HostOffset { get; set; } = hostOffset;
    /// <summary>The table as on disk (big-endian entries); null until loaded, or while held <see cref="Sparse"/>.</summary>
    public byte[]? Dense { get; set; }
    /// <summary>The clean table in compact form (few slots in use); set instead of Dense.</summary>
    public SparseL2Table? Sparse { get; set; }
    public bool IsLoaded => Dense is not null || Sparse is not null;
    /// <summary>What readers map from (<see cref="L2Directory"/>); replaced (the old one retired) when the form changes.</summary>
    public PublishedL2Table? Published { get; set; }
    public ClockBit Clock { get; } = clock;

    /// <summary>L2 index → plan that is allocating or filling that cluster.</summary>
    public Dictionary<int, long> InFlight { get; } = [];
    public Dictionary<long, PendingPlan> Plans { get; } = [];
    /// <summary>Requests touching clusters in flight, retried when a plan completes.</summary>
    public List<(object Message, IActorRef Sender)> Waiting { get; } = [];
    public long NextPlanId { get; set; } = 1;

    /// <summary>Nothing in flight or waiting: the table may be dropped once clean.</summary>
    public bool Idle => Plans.Count == 0 && Waiting.Count == 0 && InFlight.Count == 0;

    public ulong Get(int index) => Dense is { } dense ? L2Buffer.Get(dense, Extended ? 2 * index : index) : Sparse!.Get(index);

    /// <summary>The subcluster bitmap of an extended entry.</summary>
    public SubclusterBitmap GetBitmap(int index) => new(L2Buffer.Get(Dense!, 2 * index + 1));

    /// <summary>Changes one standard entry (the table is dense) and marks its bytes dirty.</summary>
    public void Set(int index, ulong entry)
    {
        if (Extended) throw new InvalidOperationException("an extended entry is set with its bitmap");
        L2Buffer.Set(Dense!, index, entry);
        MarkDirty(index * 8, index * 8 + 8);
    }

    /// <summary>Changes one extended entry and its bitmap as one (readers check <see cref="Version"/>).</summary>
    public void Set(int index, ulong entry, SubclusterBitmap bitmap)
    {
        Version!.BeginWrite();
        L2Buffer.Set(Dense!, 2 * index, entry);
        L2Buffer.Set(Dense!, 2 * index + 1, bitmap.Raw);
        Version.EndWrite();
        MarkDirty(index * 16, index * 16 + 16);
    }
}

/// <summary>A write whose clusters are being allocated or filled; its entries are published on commit.</summary>
internal sealed class PendingPlan(IActorRef replyTo, ClusterWrite[] clusters)
{
    public IActorRef ReplyTo { get; } = replyTo;
    public ClusterWrite[] Clusters { get; } = clusters;
    /// <summary>(index into Clusters, L2 index) of clusters that need a new host cluster.</summary>
    public List<(int Slot, int L2Index)> NeedHost { get; } = [];
    /// <summary>(L2 index, slot, extended bitmap) of every cluster this plan publishes.</summary>
    public List<(int L2Index, int Slot, ulong Bitmap)> Publish { get; } = [];
    /// <summary>Host clusters whose reference the published entries replace.</summary>
    public List<long> Replaced { get; } = [];
    public bool HostsAssigned { get; set; }
}

/// <summary>One refcount block's bytes (its on-disk form), kept by the supervisor so a restarted actor resumes them.</summary>
internal sealed class RefcountBlockState(long tableIndex, long hostOffset, int clusterSize, byte[]? bytes) : WritableState(clusterSize)
{
    public long TableIndex { get; } = tableIndex;
    public long HostOffset { get; } = hostOffset;
    /// <summary>Null until read from the file (a block dropped from the cache and needed again).</summary>
    public byte[]? Bytes { get; set; } = bytes;
}
