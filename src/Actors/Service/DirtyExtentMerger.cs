using System.Runtime.CompilerServices;
using QcowActors.Format;

namespace QcowActors.Actors.Service;

/// <summary>An imageio dirty extent: Dirty = a bitmap has the range's bits set; Zero = it reads as zeros.</summary>
public sealed record DirtyExtent(long Start, long Length, bool Dirty, bool Zero);

/// <summary>
/// Lays a bitmap's dirty runs over the zero/data extents of a disk (both in order, the extents
/// covering it whole): imageio's <c>context=dirty</c> answer, adjacent equal extents merged. A disk
/// larger than the bitmap (a snapshot taken before a shrink) is dirty where the bitmap has no bits.
/// </summary>
public static class DirtyExtentMerger
{
    public static async IAsyncEnumerable<DirtyExtent> MergeAsync(IAsyncEnumerable<DiskExtent> extents, DirtyBits bits,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        using var runs = bits.DirtyRuns(0, bits.DiskSize).GetEnumerator();
        (long Start, long End)? run = Next(runs);
        DirtyExtent? pending = null;
        await foreach (var extent in extents.WithCancellation(ct).ConfigureAwait(false))
        {
            long position = extent.Start, end = extent.Start + extent.Length;
            while (position < end)
            {
                while (run is { } r && r.End <= position) run = Next(runs);
                bool dirty;
                long until;
                if (position >= bits.DiskSize)
                {
                    dirty = true;
                    until = end;
                }
                else if (run is { } current && current.Start <= position)
                {
                    dirty = true;
                    until = Math.Min(end, current.End);
                }
                else
                {
                    dirty = false;
                    until = Math.Min(end, Math.Min(run?.Start ?? long.MaxValue, bits.DiskSize));
                }
                if (pending is { } p && p.Dirty == dirty && p.Zero == extent.Zero && p.Start + p.Length == position)
                    pending = p with { Length = p.Length + (until - position) };
                else
                {
                    if (pending is not null) yield return pending;
                    pending = new DirtyExtent(position, until - position, dirty, extent.Zero);
                }
                position = until;
            }
        }
        if (pending is not null) yield return pending;
    }

    private static (long, long)? Next(IEnumerator<(long Offset, long Length)> runs)
        => runs.MoveNext() ? (runs.Current.Offset, runs.Current.Offset + runs.Current.Length) : null;
}
