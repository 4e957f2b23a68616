using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// Hands out host clusters already counted: takes them from the <see cref="ClusterAllocator"/>,
/// sends their increments to the refcount blocks (creating blocks, moving the refcount table as
/// needed) and fences new metadata. What that costs in memory — blocks to read or create, a
/// larger table — is reserved first, in the counting tier (<see cref="ReserveFor"/>): without room
/// it takes nothing and says so, and the request waits for a flush to make blocks clean. The increments reach the block actors before any flush can freeze them, so a block is
/// always written before the L2/L1 entries that rely on it. Used on the supervisor's thread.
/// </summary>
internal sealed class CountedAllocation(
    ClusterLayout layout,
    ClusterAllocator allocator,
    RefcountTable refcountTable,
    ImageTables tables,
    MetadataCache cache,
    MetadataClusters fences,
    FlushCoordinator flush,
    QcowHeader header)
{
    private long _prepaid;

    /// <summary>The header changed (the refcount table moved): the next flush writes it.</summary>
    public bool HeaderDirty { get; set; }

    /// <summary>
    /// n clusters, counted; null when the metadata cache has no room for what counting them needs
    /// (nothing was taken). Throws <see cref="FenceViolationException"/> when a free cluster turns
    /// out to be metadata, and ImageException when the file cannot grow.
    /// </summary>
    public Allocation? TryTake(int n, out long bytesNeeded) => TryCount(allocator.Take(n), out bytesNeeded);

    /// <summary>As <see cref="TryTake"/>, n clusters in one run at the end of the file (structures that must be contiguous).</summary>
    public Allocation? TryTakeContiguous(int n, out long bytesNeeded)
    {
        long first = allocator.TakeContiguousAtEnd(n);
        var clusters = new long[n];
        var fresh = new bool[n];
        for (int k = 0; k < n; k++)
        {
            clusters[k] = first + k;
            fresh[k] = first + k >= allocator.FreshFrom;
        }
        return TryCount(new Allocation(clusters, fresh), out bytesNeeded);
    }

    private Allocation? TryCount(Allocation taken, out long bytesNeeded)
    {
        bytesNeeded = Estimate(taken.Clusters);
        if (!cache.TryReserve(bytesNeeded, ReserveFor.Counting))
        {
            allocator.Untake(taken);
            return null;
        }
        _prepaid = bytesNeeded;
        try
        {
            Count(taken.Clusters);
        }
        finally
        {
            cache.Release(_prepaid);
            _prepaid = 0;
        }
        return taken;
    }

    /// <summary>
    /// Blocks to read or create for these clusters; a larger refcount table if they pass its end;
    /// and, when a block or table is new, one more block for the new clusters' own counts.
    /// </summary>
    private long Estimate(long[] clusters)
    {
        int cs = layout.ClusterSize;
        long need = 0;
        bool creates = false;
        long maxIndex = -1;
        foreach (long t in clusters.Select(layout.RefcountTableIndex).Distinct())
        {
            if (!tables.HasBlock(t)) need += cs;
            creates |= refcountTable.BlockOffset(t) == 0;
            maxIndex = Math.Max(maxIndex, t);
        }
        if (maxIndex >= refcountTable.EntryCount)
        {
            need += (long)refcountTable.ClustersToCover(maxIndex) * cs;
            creates = true;
        }
        return creates ? need + cs : need;
    }

    /// <summary>Takes bytes out of what was reserved ahead; the estimate covers what counting can need, the flush share is the last resort.</summary>
    private void Spend(long bytes)
    {
        _prepaid -= bytes;
        if (_prepaid >= 0) return;
        if (!cache.TryReserve(-_prepaid, ReserveFor.Flush))
            throw new InvalidOperationException($"counting new clusters needed {-_prepaid} bytes more than reserved");
        _prepaid = 0;
    }

    private void Count(long[] clusters)
    {
        var pending = new Queue<long>(clusters);
        var byBlock = new Dictionary<long, List<long>>();
        while (pending.TryDequeue(out long c))
        {
            long t = layout.RefcountTableIndex(c);
            if (t >= refcountTable.EntryCount) Grow(t, pending);
            if (refcountTable.BlockOffset(t) == 0) pending.Enqueue(NewBlock(t));
            else if (!tables.HasBlock(t))
            {
                Spend(layout.ClusterSize);
                tables.AddBlock(new RefcountBlockState(t, refcountTable.BlockOffset(t), layout.ClusterSize, null));
            }
            if (!byBlock.TryGetValue(t, out var list)) byBlock[t] = list = [];
            list.Add(c);
        }
        foreach (var (t, list) in byBlock)
        {
            tables.ChangeBlock(t, new IncrementRefcounts([.. list], allocator.FreshFrom));
            flush.BlockDirtied(t);
        }
    }

    /// <summary>A new block for table index t, at the end of the file (so it reads as zeros there); returns its cluster, which it counts too.</summary>
    private long NewBlock(long t)
    {
        long b = allocator.TakeContiguousAtEnd(1);
        long offset = b << layout.ClusterBits;
        fences.Add(b, MetadataKind.RefcountBlock);
        var state = new RefcountBlockState(t, offset, layout.ClusterSize, cache.Budget.Pool.Rent(layout.ClusterSize, zeroed: true));
        state.MarkFresh();
        Spend(layout.ClusterSize);
        tables.AddBlock(state);
        flush.BlockDirtied(t);
        refcountTable.SetBlock(t, offset);
        return b;
    }

    /// <summary>The table moves to a larger run at the end; its old clusters are released once the header pointing elsewhere is durable.</summary>
    private void Grow(long t, Queue<long> pending)
    {
        int newClusters = refcountTable.ClustersToCover(t);
        long first = allocator.TakeContiguousAtEnd(newClusters);
        long oldFirst = refcountTable.Offset >> layout.ClusterBits;
        int oldClusters = refcountTable.Clusters;
        long before = refcountTable.MemoryBytes;
        refcountTable.MoveTo(first << layout.ClusterBits, newClusters);
        Spend(refcountTable.MemoryBytes - before);
        for (long k = 0; k < oldClusters; k++) fences.Retire(oldFirst + k);
        flush.AddDecrements(Enumerable.Range(0, oldClusters).Select(k => oldFirst + k));
        fences.AddRange(first << layout.ClusterBits, (long)newClusters * layout.ClusterSize, MetadataKind.RefcountTable);
        header.RefcountTableOffset = first << layout.ClusterBits;
        header.RefcountTableClusters = (uint)newClusters;
        HeaderDirty = true;
        for (long k = 0; k < newClusters; k++) pending.Enqueue(first + k);
    }
}
