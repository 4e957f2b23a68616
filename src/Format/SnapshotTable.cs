namespace QcowActors.Format;

/// <summary>One internal snapshot's table entry (only what the engine needs for refcounts).</summary>
public sealed record SnapshotEntry(string Id, string Name, long L1TableOffset, uint L1Size, long DiskSize);

/// <summary>Parses the snapshot table (variable-length entries padded to 8 bytes).</summary>
public static class SnapshotTable
{
    /// <summary>Returns the entries and the table's total length in bytes. Throws QcowFormatException when malformed.</summary>
    public static (IReadOnlyList<SnapshotEntry> Entries, long ByteLength) Parse(ReadOnlySpan<byte> table, uint count, int version)
        => throw new NotImplementedException();
}
