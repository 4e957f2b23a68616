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

    private ExtentRuns Extents()
    {
        var entries = _state.Entries!;
        int cs = _layout.ClusterSize;
        var runs = new List<ExtentRun>();
        for (int i = 0; i < entries.Length; i++)
        {
            var e = L2Entry.From(entries[i]);
            var kind = e.IsCompressed || e.IsData ? ExtentKind.Data : ExtentKind.Zero;
            long start = TableStart + (long)i * cs;
            if (runs.Count > 0 && runs[^1].Kind == kind)
                runs[^1] = runs[^1] with { Length = runs[^1].Length + cs };
            else
                runs.Add(new ExtentRun(start, cs, kind));
        }
        return new ExtentRuns(runs);
    }
}
