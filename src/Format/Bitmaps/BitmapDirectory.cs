using System.Buffers.Binary;
using System.Text;

namespace QcowActors.Format;

/// <summary>
/// The bitmap directory (qcow2.txt "Bitmap directory"): nb_bitmaps variable-length entries, each
/// padded to 8 bytes, filling bitmap_directory_size exactly.
/// </summary>
public static class BitmapDirectory
{
    // Offsets within an entry.
    private const int TableOffsetOffset = 0;
    private const int TableSizeOffset = 8;
    private const int FlagsFieldOffset = 12;
    private const int TypeOffset = 16;
    private const int GranularityBitsOffset = 17;
    private const int NameSizeOffset = 18;
    private const int ExtraDataSizeOffset = 20;
    private const int FixedSize = BitmapDirectoryEntry.FixedSize;
    private const BitmapFlags KnownFlags = BitmapFlags.InUse | BitmapFlags.Auto | BitmapFlags.ExtraDataCompatible;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Parses <paramref name="directory"/> (exactly bitmap_directory_size bytes) with the checks QEMU
    /// makes when it loads the directory, plus the spec's rules QEMU leaves out (unique, non-empty,
    /// UTF-8 names). An in-use bitmap may have a table of the wrong size: QEMU accepts that (the
    /// bitmap was not saved after a resize) and never reads its data. Throws QcowFormatException.
    /// </summary>
    public static IReadOnlyList<BitmapDirectoryEntry> Parse(ReadOnlySpan<byte> directory, uint count, long diskSize, int clusterBits, long fileLength)
    {
        if (count == 0 || count > BitmapLimits.MaxBitmaps)
            throw new QcowFormatException(count == 0 ? QcowProblem.Invalid : QcowProblem.LimitExceeded, "nb_bitmaps",
                $"nb_bitmaps {count} is outside 1..{BitmapLimits.MaxBitmaps}");
        if (directory.Length > BitmapLimits.MaxDirectorySize)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "bitmap_directory_size",
                $"bitmap_directory_size {directory.Length} exceeds QEMU's limit of {BitmapLimits.MaxDirectorySize} bytes");

        var entries = new List<BitmapDirectoryEntry>((int)Math.Min(count, (uint)(directory.Length / FixedSize)));
        var names = new HashSet<string>(StringComparer.Ordinal);
        int position = 0;
        for (uint i = 0; i < count; i++)
        {
            var (entry, size) = ParseEntry(directory[position..], i, count, diskSize, clusterBits, fileLength);
            if (!names.Add(entry.Name))
                throw new QcowFormatException(QcowProblem.Invalid, "name", $"bitmap {i}: the name '{entry.Name}' is used by an earlier bitmap");
            entries.Add(entry);
            position += size;
        }
        if (position != directory.Length)
            throw new QcowFormatException(QcowProblem.Invalid, "bitmap_directory_size",
                $"the {count} entries of nb_bitmaps end at byte {position}, but bitmap_directory_size is {directory.Length}");
        return entries;
    }

    private static (BitmapDirectoryEntry Entry, int Size) ParseEntry(ReadOnlySpan<byte> bytes, uint index, uint count, long diskSize, int clusterBits, long fileLength)
    {
        if (bytes.Length < FixedSize)
            throw new QcowFormatException(QcowProblem.Invalid, "bitmap_directory_size",
                $"bitmap {index} of {count} is cut off: {bytes.Length} bytes of the directory left, its fixed part needs {FixedSize}");
        ulong tableOffset = BinaryPrimitives.ReadUInt64BigEndian(bytes[TableOffsetOffset..]);
        uint tableSize = BinaryPrimitives.ReadUInt32BigEndian(bytes[TableSizeOffset..]);
        uint flags = BinaryPrimitives.ReadUInt32BigEndian(bytes[FlagsFieldOffset..]);
        byte type = bytes[TypeOffset];
        int granularityBits = bytes[GranularityBitsOffset];
        int nameSize = BinaryPrimitives.ReadUInt16BigEndian(bytes[NameSizeOffset..]);
        uint extraSize = BinaryPrimitives.ReadUInt32BigEndian(bytes[ExtraDataSizeOffset..]);

        long size = ((long)FixedSize + extraSize + nameSize + 7) & ~7L;
        if (size > bytes.Length)
            throw new QcowFormatException(QcowProblem.Invalid, "bitmap_directory_size",
                $"bitmap {index} (extra data {extraSize}, name {nameSize} bytes) runs past the end of the directory");

        string name = DecodeName(bytes.Slice(FixedSize + (int)extraSize, nameSize), index);
        string what = $"bitmap {index} ('{name}')";
        CheckFlagsAndType(what, flags, type, extraSize);
        if (granularityBits is < BitmapLimits.MinGranularityBits or > BitmapLimits.MaxGranularityBits)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "granularity_bits",
                $"{what} has granularity_bits {granularityBits}; QEMU supports {BitmapLimits.MinGranularityBits}..{BitmapLimits.MaxGranularityBits}");
        var flagSet = (BitmapFlags)flags;
        CheckTable(what, tableOffset, tableSize, (flagSet & BitmapFlags.InUse) != 0, diskSize, granularityBits, clusterBits, fileLength);

        byte[] extra = bytes.Slice(FixedSize, (int)extraSize).ToArray();
        return (new BitmapDirectoryEntry((long)tableOffset, (int)tableSize, flagSet, granularityBits, name, extra), (int)size);
    }

    private static string DecodeName(ReadOnlySpan<byte> bytes, uint index)
    {
        if (bytes.Length == 0)
            throw new QcowFormatException(QcowProblem.Invalid, "name_size", $"bitmap {index} has name_size 0; a bitmap needs a name");
        if (bytes.Length > BitmapLimits.MaxNameSize)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "name_size",
                $"bitmap {index} has name_size {bytes.Length}, over QEMU's limit of {BitmapLimits.MaxNameSize} bytes");
        // QEMU reads names as C strings: a NUL would cut the name short there.
        if (bytes.Contains((byte)0))
            throw new QcowFormatException(QcowProblem.Invalid, "name", $"the name of bitmap {index} contains a NUL byte");
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new QcowFormatException(QcowProblem.Invalid, "name", $"the name of bitmap {index} is not UTF-8");
        }
    }

    private static void CheckFlagsAndType(string what, uint flags, byte type, uint extraSize)
    {
        uint reserved = flags & ~(uint)KnownFlags;
        if (reserved != 0)
            throw new QcowFormatException(QcowProblem.Invalid, "flags", $"{what} has reserved flag bits set (flags 0x{flags:x})");
        if (type != BitmapDirectoryEntry.DirtyTrackingType)
            throw new QcowFormatException(QcowProblem.Invalid, "type", $"{what} has type {type}; only 1 (dirty tracking) is defined");
        // Without extra_data_compatible the spec forbids using the bitmap; QEMU refuses any extra data at all.
        if (extraSize != 0 && (flags & (uint)BitmapFlags.ExtraDataCompatible) == 0)
            throw new QcowFormatException(QcowProblem.Unsupported, "extra_data_size",
                $"{what} has {extraSize} bytes of extra data without the extra_data_compatible flag", "bitmap extra data");
    }

    private static void CheckTable(string what, ulong offset, uint size, bool inUse, long diskSize, int granularityBits, int clusterBits, long fileLength)
    {
        if (offset == 0 || (offset & ((1UL << clusterBits) - 1)) != 0 || offset > QcowLimits.MaxHostOffset)
            throw new QcowFormatException(QcowProblem.Invalid, "bitmap_table_offset",
                $"{what} has bitmap_table_offset 0x{offset:x}, not a non-zero host offset aligned to {ByteSize.Format(1L << clusterBits)} clusters");
        if (size == 0)
            throw new QcowFormatException(QcowProblem.Invalid, "bitmap_table_size", $"{what} has bitmap_table_size 0");
        if (size > BitmapLimits.MaxTableSize || (long)size << clusterBits > BitmapLimits.MaxPhysicalSize)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "bitmap_table_size",
                $"{what} has bitmap_table_size {size}: {ByteSize.Format((long)size << clusterBits)} of bitmap data, over QEMU's " +
                $"{ByteSize.Format(BitmapLimits.MaxPhysicalSize)}");
        long needed = BitmapTable.LongEntriesFor(diskSize, granularityBits, clusterBits);
        if (!inUse && size != needed)
            throw new QcowFormatException(QcowProblem.Invalid, "bitmap_table_size",
                $"{what} has bitmap_table_size {size}, but a {diskSize}-byte disk at {ByteSize.Format(1L << granularityBits)} granularity " +
                $"needs {needed} with {ByteSize.Format(1L << clusterBits)} clusters");
        ulong bytes = (ulong)size * BitmapTable.EntryBytes;
        ulong length = fileLength < 0 ? 0 : (ulong)fileLength;
        if (offset > length || bytes > length - offset)
            throw new QcowFormatException(QcowProblem.Invalid, "bitmap_table_offset",
                $"{what}: its bitmap table at 0x{offset:x} ({bytes} bytes) lies outside the {length}-byte file");
    }

    /// <summary>Bytes the directory of these entries takes (each padded to 8): the new bitmap_directory_size.</summary>
    public static int SizeOf(IReadOnlyList<BitmapDirectoryEntry> entries)
    {
        long size = 0;
        foreach (var e in entries) size += e.EncodedSize;
        return size > BitmapLimits.MaxDirectorySize
            ? throw new QcowFormatException(QcowProblem.LimitExceeded, "bitmap_directory_size",
                $"{entries.Count} bitmaps need a {size}-byte directory, over QEMU's limit of {BitmapLimits.MaxDirectorySize} bytes")
            : (int)size;
    }

    /// <summary>
    /// Byte offset of entry <paramref name="index"/>'s flags within the directory, so in_use can be
    /// flipped in place. QEMU clears autoclear bit 0 (and syncs the header) before it rewrites the
    /// directory in place, and sets it again after: do the same, or a crash can leave a torn directory marked consistent.
    /// </summary>
    public static int FlagsOffset(IReadOnlyList<BitmapDirectoryEntry> entries, int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, entries.Count);
        int offset = 0;
        for (int i = 0; i < index; i++) offset += entries[i].EncodedSize;
        return offset + FlagsFieldOffset;
    }

    /// <summary>Writes the directory into <paramref name="destination"/>, which the caller zero-filled (the padding stays zero).</summary>
    public static void Write(IReadOnlyList<BitmapDirectoryEntry> entries, Span<byte> destination)
    {
        int size = SizeOf(entries);
        if (destination.Length < size)
            throw new ArgumentException($"the directory needs {size} bytes, got {destination.Length}", nameof(destination));
        int position = 0;
        foreach (var e in entries)
            position += WriteEntry(e, destination[position..]);
    }

    private static int WriteEntry(BitmapDirectoryEntry e, Span<byte> b)
    {
        byte[] name = Encoding.UTF8.GetBytes(e.Name);
        if (name.Length is 0 or > BitmapLimits.MaxNameSize)
            throw new ArgumentException($"bitmap name '{e.Name}' is {name.Length} bytes of UTF-8; it must be 1..{BitmapLimits.MaxNameSize}", nameof(e));
        if ((e.Flags & ~KnownFlags) != 0 || e.GranularityBits is < BitmapLimits.MinGranularityBits or > BitmapLimits.MaxGranularityBits || e.TableSize < 0)
            throw new ArgumentException($"bitmap '{e.Name}' has flags {e.Flags}, granularity_bits {e.GranularityBits}, table size {e.TableSize}", nameof(e));
        BinaryPrimitives.WriteUInt64BigEndian(b[TableOffsetOffset..], (ulong)e.TableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b[TableSizeOffset..], (uint)e.TableSize);
        BinaryPrimitives.WriteUInt32BigEndian(b[FlagsFieldOffset..], (uint)e.Flags);
        b[TypeOffset] = BitmapDirectoryEntry.DirtyTrackingType;
        b[GranularityBitsOffset] = (byte)e.GranularityBits;
        BinaryPrimitives.WriteUInt16BigEndian(b[NameSizeOffset..], (ushort)name.Length);
        BinaryPrimitives.WriteUInt32BigEndian(b[ExtraDataSizeOffset..], (uint)e.ExtraData.Length);
        e.ExtraData.CopyTo(b[FixedSize..]);
        name.CopyTo(b[(FixedSize + e.ExtraData.Length)..]);
        return e.EncodedSize;
    }
}
