namespace QcowActors.Format;

/// <summary>
/// The checks <see cref="QcowHeaderCodec.Parse"/> runs on raw header values before it trusts any of
/// them. Values stay <see cref="ulong"/> here so that no field read from a file can overflow the
/// arithmetic: every refusal is a <see cref="QcowFormatException"/> naming the field.
/// </summary>
internal static class HeaderValidation
{
    public const int V2RefcountOrder = 4;
    private const int L1EntryBytes = 8;
    private const int L2EntryBytes = 8;
    private const int ExtendedL2EntryBytes = 16;

    public static void CheckMagic(RawHeader raw)
    {
        ulong magic = raw[HeaderField.Magic];
        if (magic != QcowHeader.Magic)
            throw Invalid(HeaderField.Magic, $"magic 0x{magic:x8} is not QFI\\xfb (0x{QcowHeader.Magic:x8}): not a qcow2 image");
    }

    public static uint CheckVersion(RawHeader raw)
    {
        ulong version = raw[HeaderField.Version];
        if (version is not (2 or 3))
            throw Unsupported(HeaderField.Version, $"version {version} is not 2 or 3", $"qcow version {version}");
        return (uint)version;
    }

    public static int CheckClusterBits(RawHeader raw)
    {
        ulong bits = raw[HeaderField.ClusterBits];
        if (bits is < QcowLimits.MinClusterBits or > QcowLimits.MaxClusterBits)
            throw Invalid(HeaderField.ClusterBits,
                $"cluster_bits {bits} is outside {QcowLimits.MinClusterBits}..{QcowLimits.MaxClusterBits}");
        return (int)bits;
    }

    /// <summary>v3 only: at least 104, a multiple of 8, inside the first cluster and the bytes given.</summary>
    public static uint CheckHeaderLength(ReadOnlySpan<byte> firstCluster, int clusterSize)
    {
        if (firstCluster.Length < QcowHeader.V3MinLength)
            throw Invalid(HeaderField.HeaderLength,
                $"the image holds {firstCluster.Length} bytes, fewer than the {QcowHeader.V3MinLength}-byte version 3 header");
        uint length = (uint)HeaderFields.Get(HeaderField.HeaderLength).Read(firstCluster);
        if (length < QcowHeader.V3MinLength || length % HeaderFields.Alignment != 0)
            throw Invalid(HeaderField.HeaderLength,
                $"header_length {length} is not a multiple of {HeaderFields.Alignment} of at least {QcowHeader.V3MinLength}");
        if (length > clusterSize)
            throw Invalid(HeaderField.HeaderLength, $"header_length {length} runs past the {clusterSize}-byte first cluster");
        if (length > firstCluster.Length)
            throw Invalid(HeaderField.HeaderLength, $"header_length {length} runs past the {firstCluster.Length} bytes of the image");
        return length;
    }

    /// <summary>Unknown incompatible bits mean "do not open" (qcow2.txt); known ones must be consistent.</summary>
    public static void CheckFeatures(RawHeader raw, int clusterBits)
    {
        ulong incompatible = raw[HeaderField.IncompatibleFeatures];
        ulong unknown = incompatible & ~FeatureBits.KnownIncompatible;
        if (unknown != 0)
            throw Unsupported(HeaderField.IncompatibleFeatures,
                $"incompatible_features 0x{incompatible:x} has unknown bits 0x{unknown:x}", $"incompatible features 0x{unknown:x}");
        if ((incompatible & FeatureBits.IncompatibleExtendedL2) != 0 && clusterBits < QcowLimits.MinExtendedL2ClusterBits)
            throw Invalid(HeaderField.ClusterBits,
                $"cluster_bits {clusterBits} is below {QcowLimits.MinExtendedL2ClusterBits}, the minimum with extended L2 entries");

        ulong compression = raw[HeaderField.CompressionType];
        bool typeBit = (incompatible & FeatureBits.IncompatibleCompressionType) != 0;
        if (typeBit && compression == QcowCompression.Zlib)
            throw Invalid(HeaderField.CompressionType,
                "compression_type is zlib (0 or absent) but the compression type incompatible bit is set");
        if (!typeBit && compression != QcowCompression.Zlib)
            throw Invalid(HeaderField.CompressionType,
                $"compression_type {compression} is set without the compression type incompatible bit");
        if (compression > QcowCompression.Zstd)
            throw Unsupported(HeaderField.CompressionType, $"compression_type {compression} is unknown", $"compression type {compression}");
    }

    public static void CheckRefcountOrder(RawHeader raw)
    {
        ulong order = raw[HeaderField.RefcountOrder];
        if (order > QcowLimits.MaxRefcountOrder)
            throw Invalid(HeaderField.RefcountOrder, $"refcount_order {order} is above {QcowLimits.MaxRefcountOrder}");
    }

    public static void CheckCryptMethod(RawHeader raw)
    {
        ulong method = raw[HeaderField.CryptMethod];
        if (method != 0)
            throw Unsupported(HeaderField.CryptMethod,
                $"crypt_method {method} ({method switch { 1 => "AES", 2 => "LUKS", _ => "unknown" }}): the image is encrypted, and this server does not serve encrypted images",
                "encryption");
    }

    /// <summary>The size must fit in a long and be mapped by l1_size entries; the L1 must fit QEMU's limit.</summary>
    public static void CheckSizeAndL1Size(RawHeader raw, int clusterBits)
    {
        ulong size = raw[HeaderField.Size];
        if (size > long.MaxValue)
            throw Invalid(HeaderField.Size, $"size {size} exceeds 2^63-1");

        ulong l1Size = raw[HeaderField.L1Size];
        ulong l1Bytes = l1Size * L1EntryBytes;
        if (l1Bytes > QcowLimits.MaxL1Bytes)
            throw Limit(HeaderField.L1Size,
                $"l1_size {l1Size} ({ByteSize.Format(l1Bytes)}) exceeds the {ByteSize.Format(QcowLimits.MaxL1Bytes)} L1 table limit " +
                $"for {ByteSize.Format(1L << clusterBits)} clusters");

        bool extendedL2 = (raw[HeaderField.IncompatibleFeatures] & FeatureBits.IncompatibleExtendedL2) != 0;
        int entryBytes = extendedL2 ? ExtendedL2EntryBytes : L2EntryBytes;
        int coverageBits = clusterBits + clusterBits - int.Log2(entryBytes);
        ulong needed = (size >> coverageBits) + ((size & ((1UL << coverageBits) - 1)) != 0 ? 1UL : 0UL);
        if (needed > l1Size)
            throw Invalid(HeaderField.Size,
                $"size {size} needs {needed} L1 entries with {ByteSize.Format(1L << clusterBits)} clusters but l1_size is {l1Size}");
    }

    public static void CheckRefcountTable(RawHeader raw, int clusterBits, long fileLength)
    {
        ulong clusters = raw[HeaderField.RefcountTableClusters];
        if (clusters == 0)
            throw Invalid(HeaderField.RefcountTableClusters, "refcount_table_clusters 0: the image has no refcount table");
        ulong bytes = clusters << clusterBits; // a u32 shifted by at most 21 cannot overflow
        if (bytes > QcowLimits.MaxRefcountTableBytes)
            throw Limit(HeaderField.RefcountTableClusters,
                $"refcount_table_clusters {clusters} ({ByteSize.Format(bytes)}) exceeds the " +
                $"{ByteSize.Format(QcowLimits.MaxRefcountTableBytes)} refcount table limit");
        CheckTable(HeaderField.RefcountTableOffset, raw[HeaderField.RefcountTableOffset], bytes, clusterBits, fileLength, "refcount table");
    }

    /// <summary>The L1 may end mid-cluster at the end of the file (qemu-img create does that): only its bytes must exist.</summary>
    public static void CheckL1Table(RawHeader raw, int clusterBits, long fileLength)
    {
        ulong l1Size = raw[HeaderField.L1Size];
        ulong offset = raw[HeaderField.L1TableOffset];
        if (l1Size == 0)
            CheckAligned(HeaderField.L1TableOffset, offset, clusterBits);
        else
            CheckTable(HeaderField.L1TableOffset, offset, l1Size * L1EntryBytes, clusterBits, fileLength, "L1 table");
    }

    /// <summary>Entries are variable length, so only the start of the snapshot table can be checked here.</summary>
    public static void CheckSnapshotTable(RawHeader raw, int clusterBits, long fileLength)
    {
        ulong count = raw[HeaderField.NbSnapshots];
        ulong offset = raw[HeaderField.SnapshotsOffset];
        if (count > QcowLimits.MaxSnapshots)
            throw Limit(HeaderField.NbSnapshots, $"nb_snapshots {count} exceeds the limit of {QcowLimits.MaxSnapshots}");
        if (count == 0)
            CheckAligned(HeaderField.SnapshotsOffset, offset, clusterBits);
        else
            CheckTable(HeaderField.SnapshotsOffset, offset, 1, clusterBits, fileLength, "snapshot table");
    }

    private static void CheckTable(HeaderField field, ulong offset, ulong bytes, int clusterBits, long fileLength, string what)
    {
        string name = HeaderFields.NameOf(field);
        if (offset == 0)
            throw Invalid(field, $"{name} 0 puts the {what} on top of the header");
        CheckAligned(field, offset, clusterBits);
        ulong length = fileLength < 0 ? 0 : (ulong)fileLength;
        if (offset > length || bytes > length - offset)
            throw Invalid(field,
                $"{name} 0x{offset:x}: the {what} ({bytes} bytes) lies outside the {length}-byte file");
    }

    private static void CheckAligned(HeaderField field, ulong offset, int clusterBits)
    {
        if ((offset & ((1UL << clusterBits) - 1)) != 0 || offset > QcowLimits.MaxHostOffset)
            throw Invalid(field,
                $"{HeaderFields.NameOf(field)} 0x{offset:x} is not a host offset aligned to {ByteSize.Format(1L << clusterBits)} clusters");
    }

    public static QcowFormatException Invalid(HeaderField field, string message)
        => new(QcowProblem.Invalid, HeaderFields.NameOf(field), message);

    public static QcowFormatException Unsupported(HeaderField field, string message, string feature)
        => new(QcowProblem.Unsupported, HeaderFields.NameOf(field), message, feature);

    public static QcowFormatException Limit(HeaderField field, string message)
        => new(QcowProblem.LimitExceeded, HeaderFields.NameOf(field), message);
}

/// <summary>Raw header values indexed by field, as read (no sign or width conversion yet).</summary>
internal readonly ref struct RawHeader(Span<ulong> values)
{
    private readonly Span<ulong> _values = values;

    public ulong this[HeaderField field]
    {
        get => _values[(int)field];
        set => _values[(int)field] = value;
    }

    /// <summary>Reads every field present under <paramref name="headerLength"/> that the bytes hold.</summary>
    public void ReadFrom(ReadOnlySpan<byte> header, uint headerLength)
    {
        foreach (var field in HeaderFields.All)
        {
            if (field.IsPresent(headerLength) && field.Offset + field.Width <= header.Length)
                _values[(int)field.Id] = field.Read(header);
        }
    }
}
