namespace QcowActors.Actors.Image;

/// <summary>What a flush asks of the image it flushes; the supervisor does it with actors and tasks and reports back.</summary>
internal interface IFlushHost
{
    /// <summary>Ask the table or block to freeze for this flush; it answers with <see cref="FlushCoordinator.OnFrozen"/>.</summary>
    void Freeze(CacheKey key, long flushId);
    void Thaw(CacheKey key, long flushId, bool written);
    /// <summary>The changed L1 entries as of now: taken before the tables are frozen, so every table an entry points to is written too.</summary>
    FlushMetadata CollectL1();
    /// <summary>The refcount table (frozen) and header as of now: taken with the blocks, so every entry points to a block written too.</summary>
    void CollectRefcountMetadata(FlushMetadata metadata);
    /// <summary>Phase 1's I/O is over: the refcount table thaws; if it failed, what was collected is dirty again.</summary>
    void MetadataWritten(FlushMetadata metadata, bool written);
    /// <summary>Apply decrements to block t (reading it in first if there is room); answers with <see cref="FlushCoordinator.OnDecrementsApplied"/>, or <see cref="FlushCoordinator.DeferDecrements"/>.</summary>
    void ApplyDecrements(long tableIndex, long[] clusters, long flushId);
    /// <summary>The refcount-table index of the block counting a cluster.</summary>
    long BlockIndexOf(long cluster);
    /// <summary>Whether a refcount block covers table index t (a reference outside every block can only come from a corrupt image).</summary>
    bool HasBlock(long tableIndex);
    /// <summary>Phase 1's I/O in dependency order; answers with <see cref="FlushCoordinator.OnWritten"/> or <see cref="FlushCoordinator.OnWriteFailed"/>.</summary>
    void WriteEntries(FlushRun run);
    /// <summary>Phase 2: one block's decremented counts (no fsync); answers like <see cref="WriteEntries"/>.</summary>
    void WriteBlock(FrozenWrite block, long flushId);
    /// <summary>Phase 2's fsync; answers like <see cref="WriteEntries"/>.</summary>
    void Sync(long flushId);
    /// <summary>The run is over: answer its waiters; on success hand the freed clusters to the allocator.</summary>
    void Completed(FlushRun run, Exception? failure, IReadOnlyList<long> freed);
}

/// <summary>
/// Orders a flush, and flushes only what is dirty: tables report when they become dirty, the
/// supervisor when it changes a block or points L1 at a new table. A run takes the changed L1
/// entries, then freezes the dirty L2 tables (their actors hold changes; the buffers are written
/// as they are) — so every table an L1 entry written points to is written too — and once every
/// table answered takes the refcount table and header and the pending decrements and freezes the
/// dirty blocks: a table entry was committed after its clusters' increments were sent to the
/// blocks, so the blocks written cover every entry written. Then phase 1's I/O: data fsync → blocks →
/// refcount table → header → L2 tables → L1, an fsync after each step that wrote. Phase 2 applies
/// the decrements (one block at a time, so it needs only the flush's share of the cache; a block
/// there is no room for keeps its decrements for the next run), writes those blocks and fsyncs;
/// the clusters that reached 0 are then free. Requests that arrive
/// during a run join the next one. A failed run thaws everything dirty again: the next run
/// writes the newer state in the same order, which is all the old one would have.
/// </summary>
internal sealed class FlushCoordinator(IFlushHost host)
{
    private readonly HashSet<long> _dirtyTables = [];
    private readonly HashSet<long> _dirtyBlocks = [];
    private readonly List<long> _pendingDecrements = [];
    /// <summary>Clusters freed by a run whose last fsync failed: free once a later run has made their counts durable.</summary>
    private readonly List<long> _freedAwaitingSync = [];
    private List<object> _waiters = [];
    private long _nextId;

    public FlushRun? Current { get; private set; }
    public bool Running => Current is not null;
    public int DirtyTables => _dirtyTables.Count;
    public int DirtyBlocks => _dirtyBlocks.Count;
    public int PendingDecrements => _pendingDecrements.Count;
    public bool HasWaiters => _waiters.Count > 0;

    public void TableDirtied(long l1Index) => _dirtyTables.Add(l1Index);
    public void BlockDirtied(long tableIndex) => _dirtyBlocks.Add(tableIndex);
    public void AddDecrements(IEnumerable<long> clusters) => _pendingDecrements.AddRange(clusters);
    public bool IsDirty(CacheKey key) => key.Kind == CacheKind.L2Table ? _dirtyTables.Contains(key.Index) : _dirtyBlocks.Contains(key.Index);

    /// <summary>Flushes everything done so far; <paramref name="waiter"/> (null: nobody) is answered when it is durable.</summary>
    public void Request(object? waiter)
    {
        if (waiter is not null) _waiters.Add(waiter);
        if (Current is null) Start();
    }

    private void Start()
    {
        var run = new FlushRun(++_nextId, _waiters);
        _waiters = [];
        Current = run;
        run.Metadata = host.CollectL1();
        if (FreezeAll(run, _dirtyTables, CacheKind.L2Table) == 0) FreezeBlocks(run);
    }

    /// <summary>Asks every dirty table or block of a kind to freeze, taking them out of the dirty set; returns how many answers to wait for.</summary>
    private int FreezeAll(FlushRun run, HashSet<long> dirty, CacheKind kind)
    {
        var keys = dirty.ToList();
        dirty.Clear();
        run.Outstanding = keys.Count;
        foreach (long index in keys) host.Freeze(new CacheKey(kind, index), run.Id);
        return keys.Count;
    }

    private void FreezeBlocks(FlushRun run)
    {
        run.Phase = FlushPhase.FreezingBlocks;
        host.CollectRefcountMetadata(run.Metadata);
        run.Decrements = [.. _pendingDecrements];
        _pendingDecrements.Clear();
        if (FreezeAll(run, _dirtyBlocks, CacheKind.RefcountBlock) == 0) StartWriting(run);
    }

    private void StartWriting(FlushRun run)
    {
        run.Phase = FlushPhase.Writing;
        host.WriteEntries(run);
    }

    /// <summary>A table or block answered a freeze (Buffer null: it was clean).</summary>
    public void OnFrozen(Frozen frozen)
    {
        if (Current is not { } run || frozen.FlushId != run.Id) return;
        if (frozen.Buffer is not null)
        {
            var write = new FrozenWrite(frozen.Key, frozen.HostOffset, frozen.Buffer, frozen.Ranges);
            switch (run.Phase)
            {
                case FlushPhase.FreezingTables: run.L2Tables.Add(write); break;
                case FlushPhase.FreezingBlocks: run.Blocks.Add(write); break;
                case FlushPhase.Decrementing:
                    run.DecrementBlock = write;
                    run.Phase = FlushPhase.WritingDecrements;
                    host.WriteBlock(write, run.Id);
                    return;
            }
        }
        else if (run.Phase == FlushPhase.Decrementing)
        {
            NextDecrementGroup(run); // nothing changed in that block
            return;
        }
        if (--run.Outstanding > 0) return;
        if (run.Phase == FlushPhase.FreezingTables) FreezeBlocks(run);
        else if (run.Phase == FlushPhase.FreezingBlocks) StartWriting(run);
    }

    /// <summary>
    /// The host had no room to read block <paramref name="tableIndex"/> in: its decrements wait for
    /// the next run (the entries are durable already; only the clusters' reuse is delayed), and
    /// this run goes on — a flush never waits for memory.
    /// </summary>
    public void DeferDecrements(long flushId, long[] clusters)
    {
        if (Current is not { } run || flushId != run.Id || run.Phase != FlushPhase.Decrementing) return;
        _pendingDecrements.AddRange(clusters);
        NextDecrementGroup(run);
    }

    public void OnDecrementsApplied(DecrementsApplied applied)
    {
        if (Current is not { } run || applied.FlushId != run.Id || run.Phase != FlushPhase.Decrementing) return;
        run.Freed.AddRange(applied.Freed);
        host.Freeze(new CacheKey(CacheKind.RefcountBlock, applied.TableIndex), run.Id);
    }

    public void OnWritten(long flushId)
    {
        if (Current is not { } run || flushId != run.Id) return;
        switch (run.Phase)
        {
            case FlushPhase.Writing:
                foreach (var w in run.L2Tables.Concat(run.Blocks)) host.Thaw(w.Key, run.Id, written: true);
                host.MetadataWritten(run.Metadata, written: true);
                StartDecrements(run);
                break;
            case FlushPhase.WritingDecrements:
                host.Thaw(run.DecrementBlock!.Key, run.Id, written: true);
                run.DecrementBlock = null;
                NextDecrementGroup(run);
                break;
            case FlushPhase.SyncingDecrements:
                Finish(run, null);
                break;
        }
    }

    public void OnWriteFailed(long flushId, Exception failure)
    {
        if (Current is not { } run || flushId != run.Id) return;
        switch (run.Phase)
        {
            case FlushPhase.Writing:
                // Nothing of this run may be trusted on disk: all of it is dirty again.
                foreach (var w in run.L2Tables) host.Thaw(w.Key, run.Id, written: false);
                foreach (var w in run.Blocks)
                {
                    host.Thaw(w.Key, run.Id, written: false);
                    _dirtyBlocks.Add(w.Key.Index);
                }
                foreach (var w in run.L2Tables) _dirtyTables.Add(w.Key.Index);
                host.MetadataWritten(run.Metadata, written: false);
                _pendingDecrements.AddRange(run.Decrements);
                break;
            case FlushPhase.WritingDecrements or FlushPhase.SyncingDecrements:
                // The entries are durable; the lowered counts are not yet: the blocks go out with the next run.
                if (run.DecrementBlock is { } block)
                {
                    host.Thaw(block.Key, run.Id, written: false);
                    _dirtyBlocks.Add(block.Key.Index);
                }
                foreach (var (t, _) in run.DecrementGroups) _dirtyBlocks.Add(t);
                _freedAwaitingSync.AddRange(run.Freed);
                run.Freed.Clear();
                break;
        }
        Finish(run, failure);
    }

    private void StartDecrements(FlushRun run)
    {
        foreach (var group in run.Decrements.GroupBy(host.BlockIndexOf))
            if (host.HasBlock(group.Key)) run.DecrementGroups.Enqueue((group.Key, group.ToArray()));
        NextDecrementGroup(run);
    }

    private void NextDecrementGroup(FlushRun run)
    {
        if (run.DecrementGroups.TryDequeue(out var group))
        {
            run.Phase = FlushPhase.Decrementing;
            host.ApplyDecrements(group.TableIndex, group.Clusters, run.Id);
            return;
        }
        if (run.Freed.Count > 0 || run.Decrements.Length > 0)
        {
            run.Phase = FlushPhase.SyncingDecrements;
            host.Sync(run.Id);
            return;
        }
        Finish(run, null);
    }

    private void Finish(FlushRun run, Exception? failure)
    {
        Current = null;
        var freed = new List<long>();
        if (failure is null)
        {
            freed.AddRange(run.Freed);
            freed.AddRange(_freedAwaitingSync);
            _freedAwaitingSync.Clear();
        }
        host.Completed(run, failure, freed);
        if (_waiters.Count > 0) Start();
    }
}
