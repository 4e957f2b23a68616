namespace QcowActors.Format;

/// <summary>
/// The descriptor of a compressed cluster: x = 62 - (cluster_bits - 8); bits 0..x-1 = host byte
/// offset (not aligned), bits x..61 = number of additional 512-byte sectors after the first one.
/// </summary>
public readonly record struct CompressedDescriptor(long HostOffset, int AdditionalSectors)
{
    public static CompressedDescriptor From(ulong raw, int clusterBits)
    {
        int x = 62 - (clusterBits - 8);
        ulong offsetMask = (1UL << x) - 1;
        ulong sectorsMask = (1UL << (62 - x)) - 1;
        return new CompressedDescriptor((long)(raw & offsetMask), (int)((raw >> x) & sectorsMask));
    }

    /// <summary>Bytes from HostOffset that may hold compressed data (up to the end of the last sector).</summary>
    public int MaxCompressedLength => (AdditionalSectors + 1) * 512 - (int)(HostOffset & 511);

    /// <summary>First and last host cluster the data touches (each holds a reference).</summary>
    public (long First, long Last) HostClusters(int clusterBits)
    {
        long first = HostOffset >> clusterBits;
        long lastByte = (HostOffset & ~511L) + (AdditionalSectors + 1) * 512L - 1;
        return (first, lastByte >> clusterBits);
    }
}
