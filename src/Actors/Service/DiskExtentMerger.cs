using QcowActors.Actors.Image;

namespace QcowActors.Actors.Service;

/// <summary>
/// Turns the runs of consecutive L2 tables into a disk's extents: cut at the disk's end, adjacent
/// runs of the same kind merged (a zero run is also a hole, as imageio reports it).
/// </summary>
internal sealed class DiskExtentMerger(long size)
{
    private DiskExtent? _open;

    /// <summary>Adds a table's runs in order; returns the extents they completed.</summary>
    public List<DiskExtent> Add(IReadOnlyList<ExtentRun> runs)
    {
        var done = new List<DiskExtent>();
        foreach (var run in runs)
        {
            if (run.Start >= size) break;
            long length = Math.Min(run.Length, size - run.Start);
            bool zero = run.Kind != ExtentKind.Data; // unallocated with no backing disk beneath reads as zeros
            if (_open is not null && _open.Zero == zero)
            {
                _open = _open with { Length = _open.Length + length };
                continue;
            }
            if (_open is not null) done.Add(_open);
            _open = new DiskExtent(run.Start, length, zero, zero);
        }
        return done;
    }

    /// <summary>The last extent, once every table was added.</summary>
    public DiskExtent? Finish() => _open;
}
