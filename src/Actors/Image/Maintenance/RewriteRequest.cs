using QcowActors.Format;

namespace QcowActors.Actors.Image.Maintenance;

/// <summary>
/// What a metadata rewrite changes, in terms of references: which tree becomes the active one, which
/// trees stop being referenced, and the new snapshot table. <see cref="MetadataRewrite"/> turns it into
/// refcount deltas and new structures.
/// </summary>
internal sealed record RewriteRequest
{
    /// <summary>The virtual size the new header records.</summary>
    public required long NewSize { get; init; }
    /// <summary>The new active L1 (its length is the new l1_size); only the L2 offsets matter, COPIED is recomputed.</summary>
    public required ulong[] NewActiveL1 { get; init; }
    /// <summary>True when the new active tree is a new reference to its L2 tables (a snapshot was taken of it, or it is a snapshot's); false when it is the old active tree itself.</summary>
    public required bool ActiveTreeAdded { get; init; }
    /// <summary>True when the old active tree stops being referenced (revert).</summary>
    public bool OldActiveTreeDropped { get; init; }
    /// <summary>True when the old active L1 clusters become a snapshot's L1 table (create): they are not freed.</summary>
    public bool OldActiveL1Kept { get; init; }
    /// <summary>Old active L2 tables past the new end (shrink): each loses its reference.</summary>
    public long[] DroppedTables { get; init; } = [];
    /// <summary>The snapshot table after the operation, in order.</summary>
    public required IReadOnlyList<SnapshotEntry> Snapshots { get; init; }
    /// <summary>The snapshot removed (delete): its L1 table and its tree lose their references.</summary>
    public SnapshotEntry? Deleted { get; init; }
}
