using System.Globalization;
using System.Text.RegularExpressions;

namespace QcowActors.Cluster.Tests;

/// <summary>One qcow-writer line: a process took (open) or is about to drop (close) an image's lock.</summary>
internal sealed record WriterEvent(bool IsOpen, string Image, string Node, int Pid, long Mono);

/// <summary>
/// The time a process held an image: from its open line to its close line, or, with no close,
/// to the end of the process (its kill or exit), or to now while it still runs.
/// </summary>
internal sealed record WriterInterval(string Image, int Pid, string Node, long Open, long End, string EndedBy)
{
    public bool Overlaps(WriterInterval other) => Open < other.End && other.Open < End;
}

/// <summary>
/// The qcow-writer lines of every server process of every scenario, merged on the monotonic
/// clock they share, to check that no two processes ever held one image at the same time.
/// </summary>
internal sealed partial class WriterLedger
{
    private readonly List<WriterEvent> _events = [];
    private readonly Dictionary<int, Func<long?>> _endOf = [];

    [GeneratedRegex(@"qcow-writer (open|close) image=(\S+) node=(\S+) pid=(\d+) mono=(\d+)")]
    private static partial Regex Line();

    /// <summary>Records the line if it is a qcow-writer line.</summary>
    public void Observe(string line)
    {
        if (!line.Contains("qcow-writer", StringComparison.Ordinal))
        {
            return;
        }
        var m = Line().Match(line);
        if (!m.Success)
        {
            return;
        }
        var e = new WriterEvent(
            m.Groups[1].Value == "open",
            m.Groups[2].Value,
            m.Groups[3].Value,
            int.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture),
            long.Parse(m.Groups[5].Value, CultureInfo.InvariantCulture));
        lock (_events)
        {
            _events.Add(e);
        }
    }

    /// <summary>Tells the ledger how to find when process <paramref name="pid"/> ended (null while it runs).</summary>
    public void Track(int pid, Func<long?> endNs)
    {
        lock (_events)
        {
            _endOf[pid] = endNs;
        }
    }

    public IReadOnlyList<WriterEvent> Events
    {
        get
        {
            lock (_events)
            {
                return _events.ToList();
            }
        }
    }

    /// <summary>Opens of <paramref name="image"/> by processes other than <paramref name="exceptPid"/> logged in [fromNs, toNs].</summary>
    public IReadOnlyList<WriterEvent> OpensBetween(string image, long fromNs, long toNs, int exceptPid)
        => Events.Where(e => e.IsOpen && e.Image == image && e.Pid != exceptPid && e.Mono >= fromNs && e.Mono <= toNs).ToList();

    /// <summary>The first open of <paramref name="image"/> at or after <paramref name="fromNs"/> by a process other than <paramref name="exceptPid"/>.</summary>
    public WriterEvent? FirstOpenAfter(string image, long fromNs, int exceptPid)
        => Events.Where(e => e.IsOpen && e.Image == image && e.Pid != exceptPid && e.Mono >= fromNs).MinBy(e => e.Mono);

    /// <summary>Every hold of every image; <paramref name="anomalies"/> gets opens of an image already open in that process and closes without an open.</summary>
    public IReadOnlyList<WriterInterval> Intervals(long nowNs, List<string> anomalies)
    {
        List<WriterEvent> events;
        Dictionary<int, Func<long?>> endOf;
        lock (_events)
        {
            events = _events.ToList();
            endOf = new Dictionary<int, Func<long?>>(_endOf);
        }
        var intervals = new List<WriterInterval>();
        foreach (var process in events.GroupBy(e => e.Pid))
        {
            long? ended = endOf.TryGetValue(process.Key, out var f) ? f() : null;
            if (!endOf.ContainsKey(process.Key))
            {
                anomalies.Add($"pid {process.Key} printed qcow-writer lines but is not a process the tests started");
            }
            var open = new Dictionary<string, WriterEvent>();
            foreach (var e in process.OrderBy(e => e.Mono))
            {
                if (e.IsOpen)
                {
                    if (open.TryGetValue(e.Image, out var previous))
                    {
                        anomalies.Add($"pid {e.Pid} opened {e.Image} at {e.Mono} while its open at {previous.Mono} had no close");
                        continue;
                    }
                    open[e.Image] = e;
                }
                else if (open.Remove(e.Image, out var opened))
                {
                    intervals.Add(new WriterInterval(e.Image, e.Pid, e.Node, opened.Mono, e.Mono, "close"));
                }
                else
                {
                    anomalies.Add($"pid {e.Pid} closed {e.Image} at {e.Mono} without an open");
                }
            }
            foreach (var (image, opened) in open)
            {
                intervals.Add(new WriterInterval(image, opened.Pid, opened.Node, opened.Mono, ended ?? nowNs, ended is null ? "still running" : "process end (no close line)"));
            }
        }
        return intervals;
    }

    /// <summary>Pairs of holds of one image by different processes that overlap in time.</summary>
    public static IReadOnlyList<(WriterInterval A, WriterInterval B)> Overlaps(IReadOnlyList<WriterInterval> intervals)
    {
        var overlaps = new List<(WriterInterval, WriterInterval)>();
        foreach (var image in intervals.GroupBy(i => i.Image))
        {
            var list = image.OrderBy(i => i.Open).ToList();
            for (var i = 0; i < list.Count; i++)
            {
                for (var j = i + 1; j < list.Count; j++)
                {
                    if (list[i].Pid != list[j].Pid && list[i].Overlaps(list[j]))
                    {
                        overlaps.Add((list[i], list[j]));
                    }
                }
            }
        }
        return overlaps;
    }
}
