namespace QcowActors.Actors.Image;

/// <summary>
/// Free host clusters below the end of the file, held as runs (start → end, exclusive), so a
/// file with long free stretches costs a few entries, not one per cluster. Lowest first.
/// </summary>
internal sealed class FreeClusters
{
    private readonly SortedDictionary<long, long> _runs = [];
    private readonly Dictionary<long, long> _startOfEnd = [];

    public long Count { get; private set; }
    public int Runs => _runs.Count;

    /// <summary>Adds [start, end); clusters already free are a bug of the caller.</summary>
    public void Add(long start, long end)
    {
        if (end <= start) return;
        Count += end - start;
        if (_startOfEnd.Remove(start, out long before))
        {
            // A run ends where this one starts: extend it.
            _runs.Remove(before);
            start = before;
        }
        if (_runs.Remove(end, out long after))
        {
            _startOfEnd.Remove(after);
            end = after;
        }
        _runs[start] = end;
        _startOfEnd[end] = start;
    }

    public void Add(long cluster) => Add(cluster, cluster + 1);

    /// <summary>The lowest free cluster, taken out; false when none is left.</summary>
    public bool TryTakeLowest(out long cluster)
    {
        if (_runs.Count == 0)
        {
            cluster = -1;
            return false;
        }
        var (start, end) = _runs.First();
        _runs.Remove(start);
        _startOfEnd.Remove(end);
        if (start + 1 < end)
        {
            _runs[start + 1] = end;
            _startOfEnd[end] = start + 1;
        }
        Count--;
        cluster = start;
        return true;
    }

    /// <summary>Takes one given cluster out if it is free (a walk over the runs: rare paths only).</summary>
    public bool Remove(long cluster)
    {
        foreach (var (start, end) in _runs)
        {
            if (start > cluster) return false;
            if (cluster >= end) continue;
            _runs.Remove(start);
            _startOfEnd.Remove(end);
            if (start < cluster)
            {
                _runs[start] = cluster;
                _startOfEnd[cluster] = start;
            }
            if (cluster + 1 < end)
            {
                _runs[cluster + 1] = end;
                _startOfEnd[end] = cluster + 1;
            }
            Count--;
            return true;
        }
        return false;
    }

    /// <summary>A walk over the runs: rare paths and tests only.</summary>
    public bool Contains(long cluster)
    {
        foreach (var (start, end) in _runs)
        {
            if (start > cluster) return false;
            if (cluster < end) return true;
        }
        return false;
    }
}
