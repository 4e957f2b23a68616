using System.Buffers.Binary;

namespace QcowActors.Format;

/// <summary>
/// The bitmap table (qcow2.txt "Bitmap table" and "Bitmap data"): one big-endian u64 per cluster of
/// bitmap data, contiguous in the file. Bit k of the data is granule k, least significant bit first.
/// </summary>
public static class BitmapTable
{
    /// <summary>Bits 9..55: the host offset of the data cluster.</summary>
    public const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00;
    /// <summary>Bit 0: with offset 0, the cluster reads as all ones (with an offset it is reserved).</summary>
    public const ulong AllOnes = 1;
    /// <summary>Bits 1..8 and 56..63.</summary>
    public const ulong ReservedMask = 0xFF00_0000_0000_01FE;
    public const int EntryBytes = 8;
    private const string Field = "bitmap_table";

    /// <summary>Bits of a bitmap over a disk of <paramref name="diskSize"/> bytes: one per granule, the last one possibly partial.</summary>
    public static long BitsFor(long diskSize, int granularityBits)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(diskSize);
        CheckGranularityArgument(granularityBits);
        return (diskSize >> granularityBits) + ((diskSize & ((1L << granularityBits) - 1)) != 0 ? 1 : 0);
    }

    /// <summary>
    /// bitmap_table_size for the disk: clusters of ceil(bits / 8) bytes. QEMU serialises whole 64-bit
    /// words, which rounds to the same cluster count because a cluster holds a whole number of words.
    /// A 0-byte disk needs 0 entries, which QEMU cannot store (it refuses table size 0). Throws
    /// QcowFormatException (LimitExceeded) when the count does not fit an int.
    /// </summary>
    public static int EntriesFor(long diskSize, int granularityBits, int clusterBits)
    {
        long entries = LongEntriesFor(diskSize, granularityBits, clusterBits);
        if (entries > int.MaxValue)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "granularity_bits",
                $"a {ByteSize.Format(diskSize)} disk at {ByteSize.Format(1L << granularityBits)} granularity needs {entries} bitmap table entries");
        return (int)entries;
    }

    /// <summary>
    /// QEMU's check before it creates a bitmap (check_constraints_on_bitmap): granularity 9..31 bits,
    /// and the data no larger than 512 MiB nor than <see cref="BitmapLimits.MaxTableSize"/> clusters.
    /// </summary>
    public static void CheckFits(long diskSize, int granularityBits, int clusterBits)
    {
        if (granularityBits is < BitmapLimits.MinGranularityBits or > BitmapLimits.MaxGranularityBits)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "granularity_bits",
                $"granularity_bits {granularityBits} is outside the {BitmapLimits.MinGranularityBits}..{BitmapLimits.MaxGranularityBits} QEMU supports");
        long bytes = BytesFor(diskSize, granularityBits);
        if (bytes > BitmapLimits.MaxPhysicalSize || bytes > (long)BitmapLimits.MaxTableSize << clusterBits)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "granularity_bits",
                $"a {ByteSize.Format(diskSize)} disk at {ByteSize.Format(1L << granularityBits)} granularity needs " +
                $"{ByteSize.Format(bytes)} of bitmap, over QEMU's {ByteSize.Format(BitmapLimits.MaxPhysicalSize)}: use a larger granularity");
    }

    internal static long LongEntriesFor(long diskSize, int granularityBits, int clusterBits)
    {
        long bytes = BytesFor(diskSize, granularityBits);
        return (bytes >> clusterBits) + ((bytes & ((1L << clusterBits) - 1)) != 0 ? 1 : 0);
    }

    private static long BytesFor(long diskSize, int granularityBits)
    {
        long bits = BitsFor(diskSize, granularityBits);
        return (bits >> 3) + ((bits & 7) != 0 ? 1 : 0);
    }

    /// <summary>Checks an entry as QEMU does when it loads a table (check_table_entry), and that its cluster starts inside the file.</summary>
    public static BitmapTableEntry Decode(ulong raw, int clusterBits, long fileLength)
    {
        if ((raw & ReservedMask) != 0)
            throw new QcowFormatException(QcowProblem.Invalid, Field,
                $"bitmap table entry 0x{raw:x16} has reserved bits set (0x{raw & ReservedMask:x16})");
        ulong offset = raw & OffsetMask;
        if (offset == 0)
            return (raw & AllOnes) != 0 ? BitmapTableEntry.Ones : BitmapTableEntry.Zeros;
        if ((raw & AllOnes) != 0)
            throw new QcowFormatException(QcowProblem.Invalid, Field,
                $"bitmap table entry 0x{raw:x16} has both a data offset and the all-ones bit");
        if ((offset & ((1UL << clusterBits) - 1)) != 0)
            throw new QcowFormatException(QcowProblem.Invalid, Field,
                $"bitmap table entry 0x{raw:x16}: offset 0x{offset:x} is not aligned to {ByteSize.Format(1L << clusterBits)} clusters");
        // Only the start must exist: QEMU reads a cluster that runs past the end of the file as zeros there.
        if (fileLength < 0 || offset >= (ulong)fileLength)
            throw new QcowFormatException(QcowProblem.Invalid, Field,
                $"bitmap table entry 0x{raw:x16}: offset 0x{offset:x} is past the end of the {fileLength}-byte file");
        return BitmapTableEntry.Data((long)offset);
    }

    public static ulong Encode(BitmapTableEntry entry) => entry.Kind switch
    {
        BitmapTableEntryKind.Zeros => 0,
        BitmapTableEntryKind.Ones => AllOnes,
        BitmapTableEntryKind.Data when entry.Offset > 0 && ((ulong)entry.Offset & ~OffsetMask) == 0 => (ulong)entry.Offset,
        BitmapTableEntryKind.Data => throw new ArgumentException($"offset 0x{entry.Offset:x} is not a non-zero 512-aligned host offset below 2^56", nameof(entry)),
        _ => throw new ArgumentOutOfRangeException(nameof(entry), entry.Kind, "unknown kind"),
    };

    /// <summary>The raw entries of a table read from the file (length a multiple of 8); decode each with <see cref="Decode"/>.</summary>
    public static ulong[] ParseEntries(ReadOnlySpan<byte> table)
    {
        if (table.Length % EntryBytes != 0)
            throw new ArgumentException($"a bitmap table of {table.Length} bytes is not a whole number of 8-byte entries", nameof(table));
        var entries = new ulong[table.Length / EntryBytes];
        for (int i = 0; i < entries.Length; i++)
            entries[i] = BinaryPrimitives.ReadUInt64BigEndian(table[(i * EntryBytes)..]);
        return entries;
    }

    public static void WriteEntries(ReadOnlySpan<ulong> entries, Span<byte> destination)
    {
        if (destination.Length < entries.Length * EntryBytes)
            throw new ArgumentException($"{entries.Length} entries need {entries.Length * EntryBytes} bytes, got {destination.Length}", nameof(destination));
        for (int i = 0; i < entries.Length; i++)
            BinaryPrimitives.WriteUInt64BigEndian(destination[(i * EntryBytes)..], entries[i]);
    }

    internal static void CheckGranularityArgument(int granularityBits)
    {
        // Wider than QEMU's 9..31 so arithmetic callers can ask about any spec value; shifts stay inside a long.
        if (granularityBits is < 0 or > 62)
            throw new ArgumentOutOfRangeException(nameof(granularityBits), granularityBits, "granularity_bits must be 0..62");
    }
}
