using System.Buffers.Binary;

namespace QcowActors.Format;

/// <summary>What a resize may do (QEMU's qcow2_co_truncate rules, with a refusal where QEMU would discard data).</summary>
public static class ResizeRules
{
    /// <summary>Null when the size is one an image may have, else why not.</summary>
    public static string? CheckSize(long size, ClusterLayout layout)
    {
        if (size < 0) return $"size {size} is negative";
        if (size % 512 != 0) return $"size {size} is not a multiple of 512 bytes";
        long l1Bytes = layout.L1EntriesFor(size) * 8;
        if (l1Bytes > QcowLimits.MaxL1Bytes)
            return $"size {size} needs an L1 table of {ByteSize.Format(l1Bytes)}, over QEMU's {ByteSize.Format(QcowLimits.MaxL1Bytes)} limit for {layout.ClusterSize}-byte clusters";
        return null;
    }

    /// <summary>
    /// The virtual offset of the first cluster of this L2 table (covering from tableStart) that holds
    /// data (a data or compressed cluster) and starts at or after <paramref name="from"/>; -1 when
    /// none does. A shrink past such a cluster would drop data. Zero clusters do not count: one that
    /// is preallocated keeps its reference (and is released with its table when the table goes).
    /// </summary>
    public static long FirstAllocatedFrom(ReadOnlySpan<byte> table, long tableStart, long from, ClusterLayout layout)
    {
        int clusterBits = layout.ClusterBits, stride = 8 * layout.L2EntryWords;
        int entries = table.Length / stride;
        long first = Math.Max(0, (from - tableStart + (1L << clusterBits) - 1) >> clusterBits);
        for (long k = first; k < entries; k++)
        {
            var e = L2Entry.From(BinaryPrimitives.ReadUInt64BigEndian(table[(int)(k * stride)..]));
            // With extended entries a cluster holds data when a subcluster is allocated (there is no zero flag).
            bool data = layout.ExtendedL2
                ? e.HostOffset != 0 && new SubclusterBitmap(BinaryPrimitives.ReadUInt64BigEndian(table[(int)(k * stride + 8)..])).Allocated != 0
                : e.IsData;
            if (e.IsCompressed || data) return tableStart + (k << clusterBits);
        }
        return -1;
    }
}
