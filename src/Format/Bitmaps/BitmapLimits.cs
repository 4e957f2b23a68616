namespace QcowActors.Format;

/// <summary>
/// QEMU's limits on persistent bitmaps (block/qcow2.h and block/qcow2-bitmap.c). The spec allows
/// more (granularity_bits 0..63, any name length); an image outside these is one QEMU cannot open,
/// so we refuse it too.
/// </summary>
public static class BitmapLimits
{
    /// <summary>QCOW2_MAX_BITMAPS.</summary>
    public const uint MaxBitmaps = 65535;
    /// <summary>QCOW2_MAX_BITMAP_DIRECTORY_SIZE: 1 KiB per bitmap, 1024 × 65535 bytes (just under 64 MiB).</summary>
    public const long MaxDirectorySize = 1024L * MaxBitmaps;
    /// <summary>BME_MAX_TABLE_SIZE: entries of one bitmap table.</summary>
    public const int MaxTableSize = 0x800_0000;
    /// <summary>BME_MAX_PHYS_SIZE: bitmap_table_size × cluster_size may not exceed 512 MiB.</summary>
    public const long MaxPhysicalSize = 0x2000_0000;
    public const int MinGranularityBits = 9;
    public const int MaxGranularityBits = 31;
    /// <summary>BME_MAX_NAME_SIZE, in bytes of UTF-8.</summary>
    public const int MaxNameSize = 1023;
}
