using QcowActors.Format;

namespace QcowActors.Actors.Image;

internal enum ClusterAction
{
    /// <summary>A data cluster this image alone references (COPIED) and, with extended L2, whose written subclusters are allocated: overwrite it; no metadata changes.</summary>
    InPlace,
    /// <summary>
    /// A host cluster this image alone references whose entry changes with the write: a
    /// preallocated zero cluster becomes data, or (extended L2) subclusters not yet allocated
    /// become allocated. The bytes go into it, then the entry is published.
    /// </summary>
    InPlaceAndPublish,
    /// <summary>Unallocated, zero, compressed, or shared (refcount > 1): a new cluster, filled around the write; the old one, if any, is released.</summary>
    Allocate,
}

/// <summary>
/// How one cluster takes a write. Host = where the bytes go (0: a new cluster). When Fill is not
/// None, bytes [FillFrom, FillTo) of the cluster are written: the write's bytes, and around them
/// zeros, the source cluster's bytes (Source = its host offset; only the subclusters in
/// SourceAllocated hold data, the others read as zeros) or a compressed cluster's inflated bytes
/// (Source = its entry). FromBacking = the subclusters of the fill (standard entries: uint.MaxValue,
/// all of it) an overlay copies up from its backing disk instead: they held nothing in this image.
/// ReplacedEntry = the old entry whose references the new one drops (0: none). NewBitmap = the
/// extended entry's bitmap once written (0 for standard entries).
/// </summary>
internal readonly record struct ClusterDecision(ClusterAction Action, long Host, ClusterFill Fill, long Source, ulong ReplacedEntry,
    int FillFrom, int FillTo, uint SourceAllocated, ulong NewBitmap, uint FromBacking = 0)
{
    /// <summary>The request's part of the decision for bytes at <paramref name="virtualOffset"/> (HostCluster 0 until one is allocated).</summary>
    public ClusterWrite ToWrite(long virtualOffset, int length, int offsetInCluster)
        => new(virtualOffset, length, Host, offsetInCluster, Fill, Source, FillFrom, FillTo, SourceAllocated, FromBacking);
}

/// <summary>
/// The one rule for how a write lands in a cluster, used by the table's actor and by the request
/// fast path alike (which takes only <see cref="ClusterAction.InPlace"/>). COPIED means refcount
/// exactly 1, so only then may the bytes go where the entry points; everything else is
/// copy-on-write into a new cluster, whose entry is published once the data is in the file.
/// With extended L2 (subclusters) a write touches only the subclusters it covers, as QEMU does:
/// a partly covered subcluster that held nothing is padded with zeros, and a copy from a shared
/// cluster spans only the write and the subclusters that hold data. In an overlay, what held
/// nothing (neither data nor zeros) is padded with the backing disk's bytes instead.
/// </summary>
internal static class WriteDecision
{
    /// <param name="raw">The cluster's L2 entry.</param>
    /// <param name="bitmap">Its subcluster bitmap (extended L2; ignored otherwise).</param>
    /// <param name="hasBacking">An overlay: what is unallocated reads its backing disk.</param>
    public static ClusterDecision Decide(ulong raw, SubclusterBitmap bitmap, int offsetInCluster, int length, ClusterLayout layout, bool hasBacking = false)
        => layout.ExtendedL2 ? DecideExtended(raw, bitmap, offsetInCluster, length, layout, hasBacking) : DecideStandard(raw, length == layout.ClusterSize, layout.ClusterSize, hasBacking);

    private static ClusterDecision DecideStandard(ulong raw, bool whole, int clusterSize, bool hasBacking)
    {
        var e = L2Entry.From(raw);
        // A compressed cluster is never written in place (QEMU neither): the write gets a normal cluster.
        if (e.IsCompressed) return Filled(ClusterAction.Allocate, 0, whole ? ClusterFill.None : ClusterFill.Inflate, (long)raw, raw, clusterSize);
        if (e.IsData && e.Copied) return InPlace(e.HostOffset);
        if (e.IsZero && e.HostOffset != 0 && e.Copied)
            return Filled(ClusterAction.InPlaceAndPublish, e.HostOffset, whole ? ClusterFill.None : ClusterFill.Zeros, 0, 0, clusterSize);
        var fill = whole ? ClusterFill.None : e.IsData ? ClusterFill.CopyFrom : ClusterFill.Zeros;
        var decision = Filled(ClusterAction.Allocate, 0, fill, e.IsData ? e.HostOffset : 0, e.HostOffset != 0 ? raw : 0, clusterSize);
        return !whole && hasBacking && e.IsUnallocated ? decision with { FromBacking = uint.MaxValue } : decision;
    }

    private static ClusterDecision DecideExtended(ulong raw, SubclusterBitmap bitmap, int from, int length, ClusterLayout layout, bool hasBacking)
    {
        var decision = DecideExtended(raw, bitmap, from, length, layout);
        if (!hasBacking || decision.Fill == ClusterFill.Inflate || decision.FillTo <= decision.FillFrom) return decision;
        // The filled subclusters outside the write that held neither data nor zeros come from the backing disk.
        int sc = layout.SubclusterSize;
        uint filled = SubclusterBitmap.Range(decision.FillFrom / sc, (decision.FillTo - 1) / sc);
        int wholeFirst = (from + sc - 1) / sc, wholeLast = (from + length) / sc - 1;
        uint overwritten = wholeLast >= wholeFirst ? SubclusterBitmap.Range(wholeFirst, wholeLast) : 0;
        uint fromBacking = filled & ~overwritten & ~(bitmap.Allocated | bitmap.Zero);
        return fromBacking == 0 ? decision : decision with { Fill = decision.Fill == ClusterFill.None ? ClusterFill.Zeros : decision.Fill, FromBacking = fromBacking };
    }

    private static ClusterDecision DecideExtended(ulong raw, SubclusterBitmap bitmap, int from, int length, ClusterLayout layout)
    {
        int cs = layout.ClusterSize, sc = layout.SubclusterSize, to = from + length;
        int first = from / sc, last = (to - 1) / sc;
        uint written = SubclusterBitmap.Range(first, last);
        var e = L2Entry.From(raw);
        if (e.IsCompressed)
        {
            // The whole cluster is inflated into the new one, every subcluster allocated (QEMU does the same).
            var fill = length == cs ? ClusterFill.None : ClusterFill.Inflate;
            return new(ClusterAction.Allocate, 0, fill, (long)raw, raw, 0, cs, 0, SubclusterBitmap.AllAllocated);
        }
        long host = e.HostOffset;
        if (host != 0 && e.Copied)
        {
            if ((bitmap.Allocated & written) == written) return InPlace(host);
            // Pad only the partly covered end subclusters that hold nothing yet; allocated ones keep their bytes.
            int fillFrom = from % sc != 0 && !bitmap.IsAllocated(first) ? first * sc : from;
            int fillTo = to % sc != 0 && !bitmap.IsAllocated(last) ? (last + 1) * sc : to;
            var fill = fillFrom < from || fillTo > to ? ClusterFill.Zeros : ClusterFill.None;
            return new(ClusterAction.InPlaceAndPublish, host, fill, 0, 0, fillFrom, fillTo, 0, bitmap.WithAllocated(written).Raw);
        }
        if (host != 0 && bitmap.Allocated != 0)
        {
            // Shared: copy from the first to the last subcluster holding data, or the write's own subclusters if wider.
            int lowest = System.Numerics.BitOperations.TrailingZeroCount(bitmap.Allocated);
            int highest = 31 - System.Numerics.BitOperations.LeadingZeroCount(bitmap.Allocated);
            int fillFrom = Math.Min(first, lowest) * sc, fillTo = (Math.Max(last, highest) + 1) * sc;
            uint copied = SubclusterBitmap.Range(fillFrom / sc, fillTo / sc - 1);
            var fill = fillFrom < from || fillTo > to ? ClusterFill.CopyFrom : ClusterFill.None;
            return new(ClusterAction.Allocate, 0, fill, host, raw, fillFrom, fillTo, bitmap.Allocated, bitmap.WithAllocated(copied).Raw);
        }
        {
            // Nothing allocated (no host, or a shared cluster holding only zero subclusters): a new cluster, padded with zeros.
            int fillFrom = from % sc != 0 ? first * sc : from;
            int fillTo = to % sc != 0 ? (last + 1) * sc : to;
            var fill = fillFrom < from || fillTo > to ? ClusterFill.Zeros : ClusterFill.None;
            return new(ClusterAction.Allocate, 0, fill, 0, host != 0 ? raw : 0, fillFrom, fillTo, 0, bitmap.WithAllocated(written).Raw);
        }
    }

    /// <summary>Bytes straight into a cluster this image holds; its entry stays as it is.</summary>
    private static ClusterDecision InPlace(long host) => new(ClusterAction.InPlace, host, ClusterFill.None, 0, 0, 0, 0, 0, 0);

    /// <summary>A standard entry's decision: a fill covers the whole cluster, all of the source holds data.</summary>
    private static ClusterDecision Filled(ClusterAction action, long host, ClusterFill fill, long source, ulong replaced, int clusterSize)
        => new(action, host, fill, source, replaced, 0, clusterSize, uint.MaxValue, 0);

    /// <summary>
    /// The host clusters an entry holds a reference to, which replacing or discarding it releases:
    /// its cluster, or every host cluster a compressed cluster's data touches (neighbours sharing
    /// a host cluster each hold their own reference to it).
    /// </summary>
    public static void AddReferencedClusters(ulong raw, int clusterBits, List<long> clusters)
    {
        var e = L2Entry.From(raw);
        if (e.IsCompressed)
        {
            var (first, last) = CompressedDescriptor.From(raw, clusterBits).HostClusters(clusterBits);
            for (long h = first; h <= last; h++) clusters.Add(h);
        }
        else if (e.HostOffset != 0)
        {
            clusters.Add(e.HostOffset >> clusterBits);
        }
    }

    /// <summary>
    /// The fence check of a write into a cluster the image already has (in place, or a reused zero
    /// cluster): throws <see cref="FenceViolationException"/> when that cluster holds metadata —
    /// an entry pointing there is corrupt, and the write must not land.
    /// </summary>
    public static void CheckTarget(MetadataClusters fences, long host, long virtualOffset, int clusterBits)
    {
        long cluster = host >> clusterBits;
        if (cluster >= fences.EndCluster)
            throw new FenceViolationException(cluster, MetadataKind.BeyondFile,
                $"the L2 entry of virtual offset {virtualOffset} points at host cluster {cluster}, past the end of the image file");
        if (fences.KindOf(cluster) is { } kind)
            throw new FenceViolationException(cluster, kind,
                $"the L2 entry of virtual offset {virtualOffset} points at host cluster {cluster}, which holds {MetadataClusters.Describe(kind)}");
    }
}
