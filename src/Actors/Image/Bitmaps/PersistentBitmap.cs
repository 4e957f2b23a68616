using QcowActors.Format;

namespace QcowActors.Actors.Image.Bitmaps;

/// <summary>
/// One persistent dirty bitmap of an open image. Its bits live in memory (<see cref="Bits"/>, marked
/// by requests without a message); what the file holds for it is <see cref="Stored"/> (its directory
/// entry as last written) and <see cref="StoredClusters"/> (its table and data clusters, released when
/// it is stored anew or removed). An inconsistent bitmap (found <c>in_use</c> at open: the image was
/// not closed cleanly while it tracked writes) has no bits and keeps its stored entry untouched.
/// Changed only by the supervisor.
/// </summary>
internal sealed class PersistentBitmap(string name, int granularityBits, bool enabled, DirtyBits? bits, byte[] extraData)
{
    public string Name { get; } = name;
    public int GranularityBits { get; } = granularityBits;
    public long Granularity => 1L << GranularityBits;
    /// <summary>QEMU's <c>auto</c> flag: the bitmap tracks writes.</summary>
    public bool Enabled { get; set; } = enabled;
    public DirtyBits? Bits { get; } = bits;
    public bool Consistent => Bits is not null;
    /// <summary>Extra data QEMU allows when the entry says it may be ignored; kept byte for byte.</summary>
    public byte[] ExtraData { get; } = extraData;
    public BitmapDirectoryEntry? Stored { get; set; }
    public long[] StoredClusters { get; set; } = [];
    /// <summary>Bytes the bits of a bitmap of this disk size and granularity hold (one bit per granule, in 64-bit words).</summary>
    public static long MemoryFor(long diskSize, int granularityBits) => 8 * ((BitmapTable.BitsFor(diskSize, granularityBits) + 63) / 64);

    /// <summary>Budget bytes its bits hold.</summary>
    public long MemoryBytes => Bits?.MemoryBytes ?? 0;

    public BitmapFlags FlagsFor(bool inUse)
        => (inUse ? BitmapFlags.InUse : BitmapFlags.None) | (Enabled ? BitmapFlags.Auto : BitmapFlags.None)
           | (ExtraData.Length > 0 ? BitmapFlags.ExtraDataCompatible : BitmapFlags.None);
}
