namespace QcowActors.Actors.Image;

/// <summary>A frozen table or block: each range [From, To) of Buffer goes to HostOffset + From.</summary>
internal sealed record FrozenWrite(CacheKey Key, long HostOffset, byte[] Buffer, IReadOnlyList<(int From, int To)> Ranges);

/// <summary>What the supervisor itself holds of a flush: L1 entries before the tables are frozen, the rest with the blocks.</summary>
internal sealed class FlushMetadata
{
    /// <summary>Changed L1 entries (index → raw), copied: the live L1 may move on meanwhile.</summary>
    public SortedDictionary<long, ulong> L1Entries { get; } = [];
    public long L1Offset { get; init; }
    /// <summary>The refcount table's changed bytes, frozen until the flush thaws it.</summary>
    public RefcountTableWrite? RefcountTable { get; set; }
    /// <summary>
    /// The header's fixed fields when they changed (the refcount table moved, the image was marked
    /// corrupt), or its whole cluster when an extension changed (<see cref="HeaderArea"/>: the bitmap directory moved).
    /// </summary>
    public byte[]? Header { get; set; }
    public bool HeaderArea { get; set; }

    public bool IsEmpty => L1Entries.Count == 0 && RefcountTable is null && Header is null;
}

/// <summary>
/// One flush: the requests it answers, the tables and blocks it froze, the metadata it collected.
/// Collected in this order — L1 entries, L2 tables, then (with the refcount table, header and
/// pending decrements) refcount blocks — so every entry written points to a table written and is
/// covered by refcount increments written before it (see <see cref="FlushCoordinator"/>).
/// </summary>
internal sealed class FlushRun(long id, List<object> waiters)
{
    public long Id { get; } = id;
    public List<object> Waiters { get; } = waiters;
    public FlushPhase Phase { get; set; } = FlushPhase.FreezingTables;
    public int Outstanding { get; set; }
    public List<FrozenWrite> L2Tables { get; } = [];
    public List<FrozenWrite> Blocks { get; } = [];
    public FlushMetadata Metadata { get; set; } = new();
    public long[] Decrements { get; set; } = [];
    /// <summary>Phase 2: refcount blocks still to take their decrements, one at a time.</summary>
    public Queue<(long TableIndex, long[] Clusters)> DecrementGroups { get; } = new();
    /// <summary>The block of the decrement group in progress, frozen and written before the next one.</summary>
    public FrozenWrite? DecrementBlock { get; set; }
    public List<long> Freed { get; } = [];
    public bool NeedsMarker { get; set; }

    public bool HasMetadata => L2Tables.Count > 0 || Blocks.Count > 0 || !Metadata.IsEmpty;
}

internal enum FlushPhase
{
    FreezingTables,
    FreezingBlocks,
    Writing,
    Decrementing,
    WritingDecrements,
    SyncingDecrements,
}
