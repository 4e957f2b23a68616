using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>Allocation met a cluster the fence holds although its refcount says it is free: the counts are corrupt.</summary>
internal sealed class FenceViolationException(long cluster, MetadataKind kind, string detail) : Exception(detail)
{
    public long Cluster { get; } = cluster;
    public MetadataKind Kind { get; } = kind;
}

/// <summary>Clusters handed out at once; Fresh[k]: past the end of the file as it was opened, so it reads as zeros.</summary>
internal readonly record struct Allocation(long[] Clusters, bool[] Fresh);

/// <summary>
/// Hands out host clusters: first the lowest ones whose refcount dropped to 0 (once no I/O that
/// may still touch them is in flight), then the end of the file. Owned by the image supervisor
/// alone. A cluster reaches the free set only after the removal of every entry that pointed to
/// it is durable (the flush that applied the decrement), so a crash can never see it referenced
/// twice. Whatever the counts say, a cluster the fence holds is never handed out, and no offset
/// reaches 2^56 (the width of an entry's offset field). The file grows only by what is handed
/// out: a count past its end is a leak, not a reason to skip ahead.
/// </summary>
internal sealed class ClusterAllocator
{
    private readonly ClusterLayout _layout;
    private readonly FreeClusters _free;
    private readonly MetadataClusters _fences;
    private readonly IoEpochGate _gate;
    private readonly Queue<(long Tag, long[] Clusters)> _quarantine = new();
    private readonly long _limit;

    /// <param name="endCluster">The file's length in clusters (rounded up): everything from here on is free and reads as zeros.</param>
    public ClusterAllocator(ClusterLayout layout, long endCluster, FreeClusters free, MetadataClusters fences, IoEpochGate gate)
    {
        _layout = layout;
        _free = free;
        _fences = fences;
        _gate = gate;
        EndCluster = endCluster;
        FreshFrom = endCluster;
        fences.SetEnd(endCluster);
        _limit = (long)((QcowLimits.MaxHostOffset + 1) >> layout.ClusterBits);
    }

    /// <summary>First cluster never handed out.</summary>
    public long EndCluster { get; private set; }
    /// <summary>Clusters from here on were past the end of the file at open: never written since unless handed out.</summary>
    public long FreshFrom { get; }
    public long FreeCount => _free.Count;
    public int QuarantinedBatches => _quarantine.Count;

    /// <summary>Takes n clusters, freed ones first. Throws <see cref="FenceViolationException"/> (having put back what it took) when a free cluster is metadata.</summary>
    public Allocation Take(int n)
    {
        ReleaseQuarantine();
        var clusters = new long[n];
        var fresh = new bool[n];
        int i = 0;
        try
        {
            while (i < n && _free.TryTakeLowest(out long c))
            {
                if (_fences.KindOf(c) is { } kind)
                    throw new FenceViolationException(c, kind,
                        $"cluster {c} holds {MetadataClusters.Describe(kind)} but its refcount is 0");
                clusters[i++] = c;
            }
            for (; i < n; i++)
            {
                long c = TakeAtEnd(1);
                if (_fences.KindOf(c) is { } kind)
                    throw new FenceViolationException(c, kind,
                        $"cluster {c}, past the end of the file, is referenced as {MetadataClusters.Describe(kind)}");
                clusters[i] = c;
                fresh[i] = c >= FreshFrom;
            }
        }
        catch
        {
            Untake(new Allocation(clusters[..i], fresh[..i]));
            throw;
        }
        return new Allocation(clusters, fresh);
    }

    /// <summary>n contiguous clusters at the end of the file (tables that must be contiguous).</summary>
    public long TakeContiguousAtEnd(int n) => TakeAtEnd(n);

    private long TakeAtEnd(int n)
    {
        if (EndCluster + n > _limit)
            throw new ImageException(ImageError.DiskFull,
                $"the image cannot grow past 2^56 bytes of file (the widest host offset an L2 entry holds)");
        long first = EndCluster;
        EndCluster += n;
        _fences.SetEnd(EndCluster);
        return first;
    }

    /// <summary>Gives back clusters taken but never counted or used (a request that could not proceed).</summary>
    public void Untake(Allocation taken)
    {
        for (int k = taken.Clusters.Length - 1; k >= 0; k--)
        {
            long c = taken.Clusters[k];
            if (c == EndCluster - 1) EndCluster--;
            else _free.Add(c);
        }
    }

    /// <summary>Clusters whose refcount reached 0 in a flush; reusable once older I/O has drained.</summary>
    public void Freed(IReadOnlyCollection<long> clusters)
    {
        if (clusters.Count == 0) return;
        _quarantine.Enqueue((_gate.Advance(), clusters.ToArray()));
    }

    private void ReleaseQuarantine()
    {
        if (_quarantine.Count == 0) return;
        long oldest = _gate.OldestActive();
        while (_quarantine.Count > 0 && _quarantine.Peek().Tag <= oldest)
        {
            foreach (long c in _quarantine.Dequeue().Clusters) _free.Add(c);
        }
    }
}
