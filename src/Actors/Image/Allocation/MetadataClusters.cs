using System.Collections.Concurrent;

namespace QcowActors.Actors.Image;

/// <summary>What a host cluster holds, for QEMU's overlap checks (<c>overlap-check=cached</c>).</summary>
internal enum MetadataKind : byte
{
    Header = 1,
    L1Table,
    RefcountTable,
    RefcountBlock,
    L2Table,
    SnapshotTable,
    SnapshotL1Table,
    BitmapDirectory,
    BitmapTable,
    /// <summary>The bits of a persistent dirty bitmap (a cluster of its data).</summary>
    BitmapData,
    /// <summary>Not metadata: a cluster past every cluster the image has (an entry pointing there is corrupt). Never fenced.</summary>
    BeyondFile,
}

/// <summary>
/// The fence: every host cluster holding metadata of QEMU's <c>cached</c> overlap-check set —
/// header, active L1, active L2 tables, refcount table and blocks, snapshot table, snapshot L1
/// tables, and the persistent bitmaps (directory, tables, data) — kept up to date as they are allocated and freed. Before any write the engine looks
/// the target up here (a hash lookup, no scan); allocation never hands a fenced cluster out,
/// whatever its refcount says. Written only by the image supervisor; read from any thread
/// (ConcurrentDictionary's lock-free reads). A cluster replaced by another (a copied L2 table,
/// a moved refcount table) stays fenced, marked retiring, until its refcount drops to 0.
/// </summary>
internal sealed class MetadataClusters
{
    /// <summary>Approximate bytes one entry costs (the dictionary's node and bucket).</summary>
    public const int BytesPerEntry = 64;

    private readonly ConcurrentDictionary<long, Fence> _clusters = new();
    private readonly int _clusterBits;

    private readonly record struct Fence(MetadataKind Kind, bool Retiring);

    public MetadataClusters(int clusterBits) => _clusterBits = clusterBits;

    public int Count => _clusters.Count;

    /// <summary>Fences a cluster; returns what already held it when it is taken (two structures in one cluster: corrupt).</summary>
    public MetadataKind? Add(long cluster, MetadataKind kind)
    {
        if (_clusters.TryAdd(cluster, new Fence(kind, false))) return null;
        var existing = _clusters[cluster];
        if (existing.Retiring && existing.Kind == kind)
        {
            // Reused for the same kind after a flush freed it: fenced again, live.
            _clusters[cluster] = new Fence(kind, false);
            return null;
        }
        return existing.Kind;
    }

    /// <summary>Fences every cluster of [offset, offset+bytes); returns the first conflict.</summary>
    public (long Cluster, MetadataKind Kind)? AddRange(long offset, long bytes, MetadataKind kind)
    {
        (long, MetadataKind)? conflict = null;
        if (bytes <= 0) return null;
        for (long c = offset >> _clusterBits; c <= (offset + bytes - 1) >> _clusterBits; c++)
            if (Add(c, kind) is { } held && conflict is null) conflict = (c, held);
        return conflict;
    }

    /// <summary>No longer in use as metadata, but still referenced until a flush drops its count: stays fenced.</summary>
    public void Retire(long cluster)
    {
        if (_clusters.TryGetValue(cluster, out var f)) _clusters[cluster] = f with { Retiring = true };
    }

    /// <summary>
    /// A flush dropped the cluster's count to 0. A retiring cluster leaves the fence; a live one
    /// means its count was wrong: the caller gets its kind back (a violation) and it stays fenced.
    /// </summary>
    public MetadataKind? Freed(long cluster)
    {
        if (!_clusters.TryGetValue(cluster, out var f)) return null;
        if (!f.Retiring) return f.Kind;
        _clusters.TryRemove(cluster, out _);
        return null;
    }

    /// <summary>What the cluster holds, or null. Safe from any thread.</summary>
    public MetadataKind? KindOf(long cluster) => _clusters.TryGetValue(cluster, out var f) ? f.Kind : null;

    /// <summary>
    /// The first fenced cluster of a host range about to be written that is not <paramref name="own"/>
    /// (null for data), or null when the write is safe. A write of metadata of one kind may only
    /// land on clusters fenced as that kind (Found is null when such a cluster is not fenced at all).
    /// </summary>
    public (long Cluster, MetadataKind? Found)? Overlap(long hostOffset, long length, MetadataKind? own)
    {
        if (length <= 0) return null;
        for (long c = hostOffset >> _clusterBits; c <= (hostOffset + length - 1) >> _clusterBits; c++)
        {
            var kind = KindOf(c);
            if (own is null ? kind is not null : kind != own) return (c, kind);
        }
        return null;
    }

    private long _endCluster = long.MaxValue;

    /// <summary>
    /// The first cluster the image does not have (the file's end as opened, grown by allocation):
    /// an entry pointing at or past it is corrupt. Published by the allocator, read by requests.
    /// </summary>
    public long EndCluster => Volatile.Read(ref _endCluster);

    public void SetEnd(long endCluster)
    {
        if (_endCluster == long.MaxValue || endCluster > _endCluster) Volatile.Write(ref _endCluster, endCluster);
    }

    public static string Describe(MetadataKind kind) => kind switch
    {
        MetadataKind.Header => "the image header",
        MetadataKind.L1Table => "the L1 table",
        MetadataKind.RefcountTable => "the refcount table",
        MetadataKind.RefcountBlock => "a refcount block",
        MetadataKind.L2Table => "an L2 table",
        MetadataKind.SnapshotTable => "the snapshot table",
        MetadataKind.SnapshotL1Table => "a snapshot's L1 table",
        MetadataKind.BitmapDirectory => "the bitmap directory",
        MetadataKind.BitmapTable => "a bitmap table",
        MetadataKind.BitmapData => "a dirty bitmap's data",
        MetadataKind.BeyondFile => "nothing: it lies past the end of the image file",
        _ => kind.ToString(),
    };
}
