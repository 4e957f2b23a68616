namespace QcowActors.Format;

/// <summary>How much of a new image is allocated up front (qemu-img's <c>-o preallocation</c>).</summary>
public enum Preallocation
{
    /// <summary>Nothing past the L1 table: clusters are allocated on first write.</summary>
    Off,
    /// <summary>
    /// Every L2 table and every data cluster is allocated and counted, as qemu-img 7.2 does; data
    /// clusters stay holes in the file, so they read as zeros and cost no disk space until written.
    /// </summary>
    Metadata,
}

/// <summary>
/// Parameters of a new image, checked by <see cref="ImageCreator.Plan"/>. The defaults are
/// qemu-img 7.2's: compat 1.1 (version 3), 64 KiB clusters, 16-bit refcounts, zlib, no extended
/// L2, no lazy refcounts, no preallocation.
/// </summary>
public sealed record CreateOptions(long VirtualSize, int ClusterSize = 65536, int RefcountBits = 16)
{
    /// <summary>2 (compat 0.10: 72-byte header, 16-bit refcounts, no feature bits) or 3 (compat 1.1).</summary>
    public int Version { get; init; } = 3;
    /// <summary><see cref="QcowCompression.Zlib"/> or <see cref="QcowCompression.Zstd"/> (version 3 only).</summary>
    public byte CompressionType { get; init; } = QcowCompression.Zlib;
    /// <summary>Extended L2 entries (subclusters): version 3, clusters of at least 16 KiB.</summary>
    public bool ExtendedL2 { get; init; }
    /// <summary>Sets the lazy refcounts compatible bit (version 3 only).</summary>
    public bool LazyRefcounts { get; init; }
    public Preallocation Preallocation { get; init; } = Preallocation.Off;
    /// <summary>The backing file name the header records (an overlay), or null.</summary>
    public string? BackingFile { get; init; }
    /// <summary>Its format ("qcow2", "raw"), recorded in the backing-format extension; required with a backing file.</summary>
    public string? BackingFormat { get; init; }
}
