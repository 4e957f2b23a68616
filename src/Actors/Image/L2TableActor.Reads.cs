using Akka.Actor;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

internal sealed partial class L2TableActor
{
    /// <summary>One reply for the whole range: runs merged where zeros follow zeros or hosts are contiguous.</summary>
    private object Map(MapRange m)
    {
        var runs = new List<MappedRun>();
        long? compressedAt = L2Directory.MapEntries(_state.Entries!, _layout, m.Offset, m.Length, runs);
        return compressedAt is { } at ? new Status.Failure(Compressed(at)) : new RangeMapping(runs);
    }

    private ExtentRuns Extents() => new(L2Directory.ExtentsOf(_state.Entries!, _layout, TableStart));
}
