namespace QcowActors.Actors.Image;

/// <summary>
/// Hands out host clusters: first clusters whose refcount dropped to 0 (once no I/O that may still
/// touch them is in flight), then the end of the file. Owned by the image supervisor alone.
/// A cluster only reaches the free set after the removal of every entry that pointed to it is
/// durable (the flush that applied the decrement), so a crash can never see it referenced twice.
/// </summary>
internal sealed class ClusterAllocator(long endCluster, IEnumerable<long> freeClusters, IoEpochGate gate)
{
    private readonly SortedSet<long> _free = new(freeClusters);
    private readonly Queue<(long Tag, long[] Clusters)> _quarantine = new();

    /// <summary>First cluster index never handed out (everything from here on is free).</summary>
    public long EndCluster { get; private set; } = endCluster;
    public int FreeCount => _free.Count;

    /// <summary>Takes n clusters, preferring a contiguous run at the end of the file when no freed ones are reusable.</summary>
    public long[] Take(int n)
    {
        ReleaseQuarantine();
        var result = new long[n];
        int i = 0;
        while (i < n && _free.Count > 0)
        {
            long c = _free.Min;
            _free.Remove(c);
            result[i++] = c;
        }
        for (; i < n; i++) result[i] = EndCluster++;
        return result;
    }

    /// <summary>n contiguous clusters at the end of the file (tables that must be contiguous).</summary>
    public long TakeContiguousAtEnd(int n)
    {
        long first = EndCluster;
        EndCluster += n;
        return first;
    }

    /// <summary>Clusters whose refcount reached 0 in a flush; reusable once older I/O has drained.</summary>
    public void Freed(IReadOnlyCollection<long> clusters)
    {
        if (clusters.Count == 0) return;
        _quarantine.Enqueue((gate.Advance(), clusters.ToArray()));
    }

    private void ReleaseQuarantine()
    {
        if (_quarantine.Count == 0) return;
        long oldest = gate.OldestActive();
        while (_quarantine.Count > 0 && _quarantine.Peek().Tag <= oldest)
        {
            foreach (long c in _quarantine.Dequeue().Clusters) _free.Add(c);
        }
    }
}
