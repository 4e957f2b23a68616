using QcowActors.Format;

namespace QcowActors.Actors.Image;

internal enum ClusterAction
{
    /// <summary>A data cluster this image alone references (COPIED): overwrite it; no metadata changes.</summary>
    InPlace,
    /// <summary>A preallocated zero cluster this image alone references: write into it and publish it as data.</summary>
    ReuseZeroCluster,
    /// <summary>Unallocated, zero, or shared (refcount > 1): a new cluster, filled around the write; the old one, if any, is released.</summary>
    Allocate,
}

/// <summary>
/// How one cluster takes a write: Host = where the bytes go (0: a new cluster), Source = where a
/// partial write's rest comes from (a host cluster, or for <see cref="ClusterFill.Inflate"/> the
/// compressed entry), ReplacedEntry = the old entry whose references the new one drops (0: none).
/// </summary>
internal readonly record struct ClusterDecision(ClusterAction Action, long Host, ClusterFill Fill, long Source, ulong ReplacedEntry);

/// <summary>
/// The one rule for how a write lands in a cluster, used by the table's actor and by the request
/// fast path alike (which takes only <see cref="ClusterAction.InPlace"/>). COPIED means refcount
/// exactly 1, so only then may the bytes go where the entry points; everything else is
/// copy-on-write into a new cluster, whose entry is published once the data is in the file.
/// </summary>
internal static class WriteDecision
{
    /// <param name="whole">The write covers the whole cluster (nothing around it to fill).</param>
    public static ClusterDecision Decide(ulong raw, bool whole)
    {
        var e = L2Entry.From(raw);
        // A compressed cluster is never written in place (QEMU neither): the write gets a normal cluster.
        if (e.IsCompressed) return new(ClusterAction.Allocate, 0, whole ? ClusterFill.None : ClusterFill.Inflate, (long)raw, raw);
        if (e.IsData && e.Copied) return new(ClusterAction.InPlace, e.HostOffset, ClusterFill.None, 0, 0);
        if (e.IsZero && e.HostOffset != 0 && e.Copied)
            return new(ClusterAction.ReuseZeroCluster, e.HostOffset, whole ? ClusterFill.None : ClusterFill.Zeros, 0, 0);
        var fill = whole ? ClusterFill.None : e.IsData ? ClusterFill.CopyFrom : ClusterFill.Zeros;
        return new(ClusterAction.Allocate, 0, fill, e.IsData ? e.HostOffset : 0, e.HostOffset != 0 ? raw : 0);
    }

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
        if (fences.KindOf(cluster) is { } kind)
            throw new FenceViolationException(cluster, kind,
                $"the L2 entry of virtual offset {virtualOffset} points at host cluster {cluster}, which holds {MetadataClusters.Describe(kind)}");
    }
}
