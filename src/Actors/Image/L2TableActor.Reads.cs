using Akka.Actor;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

internal sealed partial class L2TableActor
{
    /// <summary>One reply for the whole range: runs merged where zeros follow zeros or hosts are contiguous.</summary>
    private object Map(MapRange m)
    {
        var (first, last) = Slots(m.Offset, m.Length);
        var entries = _state.Entries!;
        int cs = _layout.ClusterSize;
        long end = m.Offset + m.Length;
        var runs = new List<MappedRun>();
        for (int i = first; i <= last; i++)
        {
            long clusterStart = TableStart + (long)i * cs;
            long from = Math.Max(m.Offset, clusterStart);
            long len = Math.Min(end, clusterStart + cs) - from;
            var e = L2Entry.From(entries[i]);
            if (e.IsCompressed) return new Status.Failure(Compressed(clusterStart));
            long host = e.IsData ? e.HostOffset + (from - clusterStart) : -1;
            if (runs.Count > 0)
            {
                var prev = runs[^1];
                bool joins = host < 0 ? prev.IsZero : !prev.IsZero && prev.HostOffset + prev.Length == host;
                if (joins)
                {
                    runs[^1] = prev with { Length = prev.Length + len };
                    continue;
                }
            }
            runs.Add(new MappedRun(from, len, host));
        }
        return new RangeMapping(runs);
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
