using Akka.Actor;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

internal sealed partial class L2TableActor
{
    /// <summary>One reply for the whole range: runs merged where zeros follow zeros or hosts are contiguous.</summary>
    private object Map(MapRange m)
    {
        var runs = new List<MappedRun>();
        long? compressedAt = _state.Entries is { } dense
            ? L2Directory.MapEntries(new DenseL2View(dense), _layout, m.Offset, m.Length, runs)
            : L2Directory.MapEntries(new SparseL2View(_state.Sparse!), _layout, m.Offset, m.Length, runs);
        return compressedAt is { } at ? new Status.Failure(Compressed(at)) : new RangeMapping(runs);
    }

    private ExtentRuns Extents() => new(_state.Entries is { } dense
        ? L2Directory.ExtentsOf(dense, _layout, TableStart)
        : L2Directory.ExtentsOf(_state.Sparse!, _layout, TableStart));
}
