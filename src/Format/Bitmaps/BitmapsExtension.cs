using System.Buffers.Binary;

namespace QcowActors.Format;

/// <summary>
/// The bitmaps header extension (qcow2.txt "Bitmaps extension"): where the bitmap directory is and
/// how many entries it holds. Its data is consistent only while autoclear bit 0
/// (<see cref="FeatureBits.AutoclearBitmaps"/>) is set: without it QEMU checks the length, then
/// ignores the rest and drops the extension on its next header update.
/// </summary>
public readonly record struct BitmapsExtension(uint Count, long DirectorySize, long DirectoryOffset)
{
    /// <summary>The extension data is exactly this long; QEMU refuses any other length.</summary>
    public const int Length = 24;

    private const int NbBitmapsOffset = 0;
    private const int ReservedOffset = 4;
    private const int DirectorySizeOffset = 8;
    private const int DirectoryOffsetOffset = 16;

    /// <summary>Parses and checks the extension data as QEMU does when it opens an image; throws QcowFormatException.</summary>
    public static BitmapsExtension Parse(ReadOnlySpan<byte> data, long fileLength, int clusterBits)
    {
        if (data.Length != Length)
            throw new QcowFormatException(QcowProblem.Invalid, "bitmaps_extension.length",
                $"the bitmaps extension is {data.Length} bytes long; it must be exactly {Length}");
        uint reserved = BinaryPrimitives.ReadUInt32BigEndian(data[ReservedOffset..]);
        if (reserved != 0)
            throw new QcowFormatException(QcowProblem.Invalid, "bitmaps_extension.reserved",
                $"the reserved field of the bitmaps extension is 0x{reserved:x}; it must be zero");

        uint count = BinaryPrimitives.ReadUInt32BigEndian(data[NbBitmapsOffset..]);
        if (count == 0)
            throw new QcowFormatException(QcowProblem.Invalid, "nb_bitmaps", "nb_bitmaps 0: a bitmaps extension must hold at least one bitmap");
        if (count > BitmapLimits.MaxBitmaps)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "nb_bitmaps",
                $"nb_bitmaps {count} exceeds QEMU's limit of {BitmapLimits.MaxBitmaps} bitmaps");

        ulong size = BinaryPrimitives.ReadUInt64BigEndian(data[DirectorySizeOffset..]);
        if (size == 0)
            throw new QcowFormatException(QcowProblem.Invalid, "bitmap_directory_size",
                $"bitmap_directory_size 0 cannot hold {count} bitmaps");
        if (size > BitmapLimits.MaxDirectorySize)
            throw new QcowFormatException(QcowProblem.LimitExceeded, "bitmap_directory_size",
                $"bitmap_directory_size {size} exceeds QEMU's limit of {BitmapLimits.MaxDirectorySize} bytes");

        ulong offset = BinaryPrimitives.ReadUInt64BigEndian(data[DirectoryOffsetOffset..]);
        const string OffsetField = "bitmap_directory_offset";
        if (offset == 0)
            throw new QcowFormatException(QcowProblem.Invalid, OffsetField, "bitmap_directory_offset 0 puts the bitmap directory on top of the header");
        if ((offset & ((1UL << clusterBits) - 1)) != 0 || offset > QcowLimits.MaxHostOffset)
            throw new QcowFormatException(QcowProblem.Invalid, OffsetField,
                $"bitmap_directory_offset 0x{offset:x} is not a host offset aligned to {ByteSize.Format(1L << clusterBits)} clusters");
        ulong length = fileLength < 0 ? 0 : (ulong)fileLength;
        if (offset > length || size > length - offset)
            throw new QcowFormatException(QcowProblem.Invalid, OffsetField,
                $"bitmap_directory_offset 0x{offset:x}: the bitmap directory ({size} bytes) lies outside the {length}-byte file");
        return new BitmapsExtension(count, (long)size, (long)offset);
    }

    public byte[] ToBytes()
    {
        var data = new byte[Length];
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(NbBitmapsOffset), Count);
        BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(DirectorySizeOffset), (ulong)DirectorySize);
        BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(DirectoryOffsetOffset), (ulong)DirectoryOffset);
        return data;
    }

    public HeaderExtension ToExtension() => new(HeaderExtensionType.Bitmaps, ToBytes());
}
