namespace QcowActors.Format;

/// <summary>Parameters of a new v3 image, checked by <see cref="ImageCreator.Plan"/>.</summary>
public sealed record CreateOptions(long VirtualSize, int ClusterSize = 65536, int RefcountBits = 16);

/// <summary>The bytes of a new image: write each chunk at its offset, then set the file length.</summary>
public sealed record ImagePlan(QcowHeader Header, IReadOnlyList<(long Offset, byte[] Bytes)> Writes, long FileLength);

/// <summary>
/// Lays out a new compat 1.1 (v3) image the way qemu-img does: header cluster 0 (header_length
/// 112 with compression_type, feature name table extension), refcount table from cluster 1,
/// refcount blocks next, then the L1 table; the file ends at the end of the L1 table.
/// </summary>
public static class ImageCreator
{
    /// <summary>
    /// Virtual size rounds up to a multiple of 512. Throws QcowFormatException (LimitExceeded) when
    /// the L1 table would pass 32 MiB (message names the limit and suggests a larger cluster size)
    /// or the refcount table 8 MiB; (Invalid) for cluster size not a power of two in 512..2 MiB,
    /// refcount bits not a power of two in 1..64, size &lt;= 0.
    /// </summary>
    public static ImagePlan Plan(CreateOptions options) => throw new NotImplementedException();
}
