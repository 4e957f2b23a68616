namespace QcowActors.Format;

/// <summary>
/// The image header (v2 or v3) with its extensions and backing file name. Mutable so the engine can
/// change a field and write it back; unknown extra header bytes and unknown extensions are kept.
/// </summary>
public sealed class QcowHeader
{
    public const uint Magic = 0x514649FB; // "QFI\xfb"
    public const int V2Length = 72;
    public const int V3MinLength = 104;

    public uint Version { get; set; }
    public long BackingFileOffset { get; set; }
    public uint BackingFileSize { get; set; }
    public int ClusterBits { get; set; }
    public long Size { get; set; }
    public uint CryptMethod { get; set; }
    public uint L1Size { get; set; }
    public long L1TableOffset { get; set; }
    public long RefcountTableOffset { get; set; }
    public uint RefcountTableClusters { get; set; }
    public uint NbSnapshots { get; set; }
    public long SnapshotsOffset { get; set; }
    // v3 only (v2: zeros, refcount_order 4, header_length 72)
    public ulong IncompatibleFeatures { get; set; }
    public ulong CompatibleFeatures { get; set; }
    public ulong AutoclearFeatures { get; set; }
    public int RefcountOrder { get; set; } = 4;
    public uint HeaderLength { get; set; }
    /// <summary>Present only when HeaderLength &gt; 104; 0 = zlib, 1 = zstd.</summary>
    public byte CompressionType { get; set; }
    /// <summary>Header bytes from offset 104 up to HeaderLength, kept verbatim (byte 0 of it is compression_type).</summary>
    public byte[] AdditionalFields { get; set; } = [];
    public List<HeaderExtension> Extensions { get; } = [];
    /// <summary>Backing file name (from BackingFileOffset/Size), or null.</summary>
    public string? BackingFile { get; set; }

    public int ClusterSize => 1 << ClusterBits;
    public int RefcountBits => 1 << RefcountOrder;
    public ClusterLayout Layout => new(ClusterBits, RefcountOrder, (IncompatibleFeatures & FeatureBits.IncompatibleExtendedL2) != 0);
    public HeaderExtension? FindExtension(uint type) => Extensions.Find(e => e.Type == type);

    /// <summary>
    /// Parses and validates the header from the start of the file (at least the first cluster, or
    /// the whole file if shorter). Throws <see cref="QcowFormatException"/> naming the field for:
    /// bad magic, version not 2/3, unknown incompatible bits, cluster_bits outside 9..21,
    /// refcount_order above 6 (or not 4 on v2), header_length invalid, tables outside the file or
    /// unaligned, sizes that overflow or exceed QEMU's limits (L1 &lt;= 32 MiB, refcount table
    /// &lt;= 8 MiB), extensions running past the cluster, backing file name outside the cluster.
    /// </summary>
    public static QcowHeader Parse(ReadOnlySpan<byte> firstCluster, long fileLength)
        => QcowHeaderCodec.Parse(firstCluster, fileLength);

    /// <summary>
    /// Writes header, extensions (each padded to 8, then the end marker) and the backing file name
    /// into <paramref name="cluster"/> (one cluster, zero-filled by the caller), updating
    /// BackingFileOffset/BackingFileSize. Returns the number of bytes used. Throws if it does not fit.
    /// </summary>
    public int WriteTo(Span<byte> cluster) => QcowHeaderCodec.Write(this, cluster);
    /// <summary>The fixed fields only (<see cref="QcowHeaderCodec.WriteFixedFields"/>): the header_length bytes to rewrite in place.</summary>
    public byte[] FixedFields()
    {
        var fields = new byte[Version == 2 ? V2Length : HeaderLength];
        QcowHeaderCodec.WriteFixedFields(this, fields);
        return fields;
    }
}
