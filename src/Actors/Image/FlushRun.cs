using Akka.Actor;

namespace QcowActors.Actors.Image;

/// <summary>
/// One flush: the snapshots it collected and the requests it answers. Collected in this order —
/// L1 entries and pending decrements, then L2 tables, then refcount blocks — so that every entry
/// written is covered by the refcount increments written before it (see ImageSupervisor.Flush).
/// </summary>
internal sealed class FlushRun(long id, List<IActorRef> waiters)
{
    public long Id { get; } = id;
    public List<IActorRef> Waiters { get; } = waiters;
    public SortedDictionary<long, ulong> L1Entries { get; } = [];
    public long L1Offset { get; set; }
    public long[] Decrements { get; set; } = [];
    public byte[]? Header { get; set; }
    public byte[]? RefcountTable { get; set; }
    public long RefcountTableOffset { get; set; }
    public List<L2Snapshot> L2Tables { get; } = [];
    public List<RefcountSnapshot> RefcountBlocks { get; } = [];
    public List<long> Freed { get; } = [];
    public int Outstanding { get; set; }
    public bool NeedsMarker { get; set; }
    /// <summary>1: increments and entries; 2: decrements after the entries are durable.</summary>
    public int Phase { get; set; } = 1;

    public bool HasMetadata => L1Entries.Count > 0 || Header is not null || RefcountTable is not null
        || L2Tables.Count > 0 || RefcountBlocks.Count > 0;
}

internal sealed record FlushIoDone(long FlushId);
internal sealed record FlushIoFailed(long FlushId, Exception Cause);
