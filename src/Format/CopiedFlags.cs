using System.Buffers.Binary;

namespace QcowActors.Format;

/// <summary>
/// COPIED (bit 63) in the active tree: set exactly when the cluster's refcount is 1, never on a
/// compressed cluster; qemu-img check counts any other value as an error. After snapshots are made,
/// deleted or reverted, the active L1 and L2 entries are recomputed from the new counts here.
/// </summary>
public static class CopiedFlags
{
    /// <summary>
    /// Recomputes COPIED on every entry of a big-endian L2 table in place (the first word of each
    /// extended entry; bitmaps are left alone); countOf gives the refcount of a host cluster index.
    /// Returns true when any entry changed.
    /// </summary>
    public static bool Recompute(Span<byte> table, ClusterLayout layout, Func<long, ulong> countOf)
    {
        bool changed = false;
        int clusterBits = layout.ClusterBits, stride = 8 * layout.L2EntryWords;
        for (int k = 0; k + 8 <= table.Length; k += stride)
        {
            ulong raw = BinaryPrimitives.ReadUInt64BigEndian(table[k..]);
            var e = L2Entry.From(raw);
            ulong want;
            if (e.IsCompressed) want = raw & ~L2Entry.CopiedFlag;
            else if (e.HostOffset == 0) want = raw & ~L2Entry.CopiedFlag;
            else want = countOf(e.HostOffset >> clusterBits) == 1 ? raw | L2Entry.CopiedFlag : raw & ~L2Entry.CopiedFlag;
            if (want == raw) continue;
            BinaryPrimitives.WriteUInt64BigEndian(table[k..], want);
            changed = true;
        }
        return changed;
    }

    /// <summary>An L1 entry for the table at l2Offset with COPIED from its refcount.</summary>
    public static ulong L1EntryFor(long l2Offset, ulong refcount) => L1Entry.Create(l2Offset, refcount == 1).ToRaw();
}
