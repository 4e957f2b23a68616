using System.Buffers.Binary;
using System.Text;

namespace QcowActors.Format;

/// <summary>One internal snapshot's table entry (only what the engine needs for refcounts).</summary>
public sealed record SnapshotEntry(string Id, string Name, long L1TableOffset, uint L1Size, long DiskSize);

/// <summary>Parses the snapshot table (variable-length entries padded to 8 bytes).</summary>
public static class SnapshotTable
{
    // Fixed part of an entry (qcow2.txt "Snapshots"); offsets relative to the entry.
    private const int L1TableOffsetOffset = 0;
    private const int L1SizeOffset = 8;
    private const int IdStrSizeOffset = 12;
    private const int NameSizeOffset = 14;
    private const int ExtraDataSizeOffset = 36;
    private const int FixedBytes = 40;
    // Extra data: u64 vm_state_size_large, then u64 disk_size; v3 requires both.
    private const int ExtraDiskSizeOffset = 8;
    private const int V3MinExtraBytes = 16;
    private const int L1EntryBytes = 8;
    private const string Field = "snapshots_offset";

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Returns the entries and the table's total length in bytes: every entry starts 8-aligned, and
    /// the length ends with the last entry, without padding after it (qemu-img writes and counts
    /// the table that way). DiskSize is -1 when a v2 entry does not record it. Throws
    /// QcowFormatException when malformed.
    /// </summary>
    public static (IReadOnlyList<SnapshotEntry> Entries, long ByteLength) Parse(ReadOnlySpan<byte> table, uint count, int version)
    {
        var entries = new List<SnapshotEntry>((int)Math.Min(count, (uint)(table.Length / FixedBytes)));
        int end = 0;
        for (uint i = 0; i < count; i++)
        {
            int offset = HeaderFields.AlignUp(end);
            if (offset > table.Length)
                throw Invalid($"snapshot {i} starts at byte {offset}, past the {table.Length}-byte table");
            var (entry, length) = ParseEntry(table[offset..], i, version);
            entries.Add(entry);
            end = offset + length;
        }
        return (entries, end);
    }

    /// <summary>Parses one entry; returns it and its unpadded length.</summary>
    private static (SnapshotEntry Entry, int Length) ParseEntry(ReadOnlySpan<byte> bytes, uint index, int version)
    {
        if (bytes.Length < FixedBytes)
            throw Invalid($"snapshot {index} is cut off: {bytes.Length} bytes left, its fixed part needs {FixedBytes}");
        ulong l1Offset = BinaryPrimitives.ReadUInt64BigEndian(bytes[L1TableOffsetOffset..]);
        uint l1Size = BinaryPrimitives.ReadUInt32BigEndian(bytes[L1SizeOffset..]);
        int idSize = BinaryPrimitives.ReadUInt16BigEndian(bytes[IdStrSizeOffset..]);
        int nameSize = BinaryPrimitives.ReadUInt16BigEndian(bytes[NameSizeOffset..]);
        uint extraSize = BinaryPrimitives.ReadUInt32BigEndian(bytes[ExtraDataSizeOffset..]);

        if (version >= 3 && extraSize < V3MinExtraBytes)
            throw Invalid($"snapshot {index} has {extraSize} bytes of extra data; version 3 requires at least {V3MinExtraBytes}");
        if ((ulong)extraSize + (ulong)idSize + (ulong)nameSize > (ulong)(bytes.Length - FixedBytes))
            throw Invalid($"snapshot {index} (extra data {extraSize}, id {idSize}, name {nameSize} bytes) runs past the end of the table");
        if (l1Offset > QcowLimits.MaxHostOffset)
            throw Invalid($"snapshot {index} has l1_table_offset 0x{l1Offset:x}, beyond a host offset");
        if ((ulong)l1Size * L1EntryBytes > QcowLimits.MaxL1Bytes)
            throw new QcowFormatException(QcowProblem.LimitExceeded, Field,
                $"snapshot {index} has l1_size {l1Size}, over the {ByteSize.Format(QcowLimits.MaxL1Bytes)} L1 table limit");

        var extra = bytes.Slice(FixedBytes, (int)extraSize);
        long diskSize = -1;
        if (extraSize >= V3MinExtraBytes)
        {
            ulong size = BinaryPrimitives.ReadUInt64BigEndian(extra[ExtraDiskSizeOffset..]);
            if (size > long.MaxValue)
                throw Invalid($"snapshot {index} has disk size {size}, above 2^63-1");
            diskSize = (long)size;
        }
        int idStart = FixedBytes + (int)extraSize;
        string id = Decode(bytes.Slice(idStart, idSize), index, "id");
        string name = Decode(bytes.Slice(idStart + idSize, nameSize), index, "name");
        return (new SnapshotEntry(id, name, (long)l1Offset, l1Size, diskSize), idStart + idSize + nameSize);
    }

    private static string Decode(ReadOnlySpan<byte> bytes, uint index, string what)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Invalid($"the {what} of snapshot {index} is not UTF-8");
        }
    }

    private static QcowFormatException Invalid(string message) => new(QcowProblem.Invalid, Field, message);
}
