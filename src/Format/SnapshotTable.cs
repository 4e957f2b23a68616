using System.Buffers.Binary;
using System.Text;

namespace QcowActors.Format;

/// <summary>
/// One internal snapshot's table entry. The positional part is what the engine needs for refcounts;
/// the rest is kept so a rewritten table says what the old one said (QEMU keeps unknown extra data too).
/// </summary>
public sealed record SnapshotEntry(string Id, string Name, long L1TableOffset, uint L1Size, long DiskSize)
{
    public uint DateSeconds { get; init; }
    public uint DateNanoseconds { get; init; }
    public ulong VmClockNanoseconds { get; init; }
    /// <summary>vm_state_size_large when the extra data has it, else the 32-bit field.</summary>
    public ulong VmStateSize { get; init; }
    /// <summary>Instruction count (extra data bytes 16..23); ulong.MaxValue = none, as QEMU writes it without record/replay.</summary>
    public ulong Icount { get; init; } = ulong.MaxValue;
    /// <summary>Extra data past the 24 bytes this build knows, byte for byte.</summary>
    public byte[] UnknownExtra { get; init; } = Array.Empty<byte>();
}

/// <summary>Parses the snapshot table (variable-length entries padded to 8 bytes).</summary>
public static class SnapshotTable
{
    // Fixed part of an entry (qcow2.txt "Snapshots"); offsets relative to the entry.
    private const int L1TableOffsetOffset = 0;
    private const int L1SizeOffset = 8;
    private const int IdStrSizeOffset = 12;
    private const int NameSizeOffset = 14;
    private const int DateSecondsOffset = 16;
    private const int DateNanosecondsOffset = 20;
    private const int VmClockOffset = 24;
    private const int VmStateSizeOffset = 32;
    private const int ExtraDataSizeOffset = 36;
    private const int FixedBytes = 40;
    // Extra data: u64 vm_state_size_large, then u64 disk_size (v3 requires both), then u64 icount.
    private const int ExtraDiskSizeOffset = 8;
    private const int ExtraIcountOffset = 16;
    /// <summary>What QEMU (5.0 and later) writes for every snapshot: the three known fields.</summary>
    public const int KnownExtraBytes = 24;
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
        ulong vmState = BinaryPrimitives.ReadUInt32BigEndian(bytes[VmStateSizeOffset..]);
        if (extraSize >= 8) vmState = BinaryPrimitives.ReadUInt64BigEndian(extra);
        ulong icount = extraSize >= KnownExtraBytes ? BinaryPrimitives.ReadUInt64BigEndian(extra[ExtraIcountOffset..]) : ulong.MaxValue;
        byte[] unknown = extraSize > KnownExtraBytes ? extra[KnownExtraBytes..].ToArray() : Array.Empty<byte>();
        int idStart = FixedBytes + (int)extraSize;
        string id = Decode(bytes.Slice(idStart, idSize), index, "id");
        string name = Decode(bytes.Slice(idStart + idSize, nameSize), index, "name");
        var entry = new SnapshotEntry(id, name, (long)l1Offset, l1Size, diskSize)
        {
            DateSeconds = BinaryPrimitives.ReadUInt32BigEndian(bytes[DateSecondsOffset..]),
            DateNanoseconds = BinaryPrimitives.ReadUInt32BigEndian(bytes[DateNanosecondsOffset..]),
            VmClockNanoseconds = BinaryPrimitives.ReadUInt64BigEndian(bytes[VmClockOffset..]),
            VmStateSize = vmState,
            Icount = icount,
            UnknownExtra = unknown,
        };
        return (entry, idStart + idSize + nameSize);
    }

    /// <summary>
    /// The table as QEMU (5.0 and later) writes it: every entry 8-aligned, 24 bytes of known extra
    /// data (vm_state_size_large, disk_size, icount) followed by any unknown extra data kept from the
    /// old table, the 32-bit vm_state_size capped; no padding after the last entry. An entry that did
    /// not record its disk size (old v2) gets <paramref name="defaultDiskSize"/>, as QEMU fills it in on read.
    /// </summary>
    public static byte[] Serialize(IReadOnlyList<SnapshotEntry> entries, long defaultDiskSize)
    {
        int length = 0;
        foreach (var e in entries) length = HeaderFields.AlignUp(length) + EntryLength(e);
        var table = new byte[length];
        int offset = 0;
        foreach (var e in entries)
        {
            offset = HeaderFields.AlignUp(offset);
            offset += WriteEntry(table.AsSpan(offset), e, defaultDiskSize);
        }
        return table;
    }

    private static int EntryLength(SnapshotEntry e)
        => FixedBytes + KnownExtraBytes + e.UnknownExtra.Length + Encoding.UTF8.GetByteCount(e.Id) + Encoding.UTF8.GetByteCount(e.Name);

    private static int WriteEntry(Span<byte> b, SnapshotEntry e, long defaultDiskSize)
    {
        byte[] id = Encoding.UTF8.GetBytes(e.Id), name = Encoding.UTF8.GetBytes(e.Name);
        if (id.Length > ushort.MaxValue || name.Length > ushort.MaxValue)
            throw new ArgumentException("a snapshot id or name is longer than 65535 bytes");
        int extraSize = KnownExtraBytes + e.UnknownExtra.Length;
        BinaryPrimitives.WriteUInt64BigEndian(b[L1TableOffsetOffset..], (ulong)e.L1TableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b[L1SizeOffset..], e.L1Size);
        BinaryPrimitives.WriteUInt16BigEndian(b[IdStrSizeOffset..], (ushort)id.Length);
        BinaryPrimitives.WriteUInt16BigEndian(b[NameSizeOffset..], (ushort)name.Length);
        BinaryPrimitives.WriteUInt32BigEndian(b[DateSecondsOffset..], e.DateSeconds);
        BinaryPrimitives.WriteUInt32BigEndian(b[DateNanosecondsOffset..], e.DateNanoseconds);
        BinaryPrimitives.WriteUInt64BigEndian(b[VmClockOffset..], e.VmClockNanoseconds);
        BinaryPrimitives.WriteUInt32BigEndian(b[VmStateSizeOffset..], (uint)Math.Min(e.VmStateSize, uint.MaxValue));
        BinaryPrimitives.WriteUInt32BigEndian(b[ExtraDataSizeOffset..], (uint)extraSize);
        var extra = b.Slice(FixedBytes, extraSize);
        BinaryPrimitives.WriteUInt64BigEndian(extra, e.VmStateSize);
        BinaryPrimitives.WriteUInt64BigEndian(extra[ExtraDiskSizeOffset..], (ulong)(e.DiskSize >= 0 ? e.DiskSize : defaultDiskSize));
        BinaryPrimitives.WriteUInt64BigEndian(extra[ExtraIcountOffset..], e.Icount);
        e.UnknownExtra.CopyTo(extra[KnownExtraBytes..]);
        id.CopyTo(b[(FixedBytes + extraSize)..]);
        name.CopyTo(b[(FixedBytes + extraSize + id.Length)..]);
        return FixedBytes + extraSize + id.Length + name.Length;
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
