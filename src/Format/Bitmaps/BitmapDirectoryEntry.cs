using System.Text;

namespace QcowActors.Format;

/// <summary>
/// One bitmap of the bitmap directory. The type is always 1 (dirty tracking), the only one defined.
/// ExtraData is kept byte for byte; it is only accepted with <see cref="BitmapFlags.ExtraDataCompatible"/>.
/// Equality compares ExtraData by content.
/// </summary>
public sealed record BitmapDirectoryEntry(long TableOffset, int TableSize, BitmapFlags Flags, int GranularityBits, string Name, byte[] ExtraData)
{
    /// <summary>The type byte of a dirty tracking bitmap.</summary>
    public const byte DirtyTrackingType = 1;
    /// <summary>bitmap_table_offset u64, bitmap_table_size u32, flags u32, type u8, granularity_bits u8, name_size u16, extra_data_size u32.</summary>
    public const int FixedSize = 24;

    public bool InUse => (Flags & BitmapFlags.InUse) != 0;
    public bool Auto => (Flags & BitmapFlags.Auto) != 0;
    /// <summary>Bytes of disk per bit.</summary>
    public long Granularity => 1L << GranularityBits;
    /// <summary>Bytes in the directory: fixed part, extra data, name, padded to 8.</summary>
    public int EncodedSize => Align8(FixedSize + ExtraData.Length + Encoding.UTF8.GetByteCount(Name));

    public bool Equals(BitmapDirectoryEntry? other)
        => other is not null && TableOffset == other.TableOffset && TableSize == other.TableSize && Flags == other.Flags
           && GranularityBits == other.GranularityBits && string.Equals(Name, other.Name, StringComparison.Ordinal)
           && ExtraData.AsSpan().SequenceEqual(other.ExtraData);

    public override int GetHashCode() => HashCode.Combine(TableOffset, TableSize, Flags, GranularityBits, StringComparer.Ordinal.GetHashCode(Name), ExtraData.Length);

    internal static int Align8(int bytes) => (bytes + 7) & ~7;
}
