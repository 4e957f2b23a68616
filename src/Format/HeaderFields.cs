using System.Buffers.Binary;

namespace QcowActors.Format;

/// <summary>The header fields, in on-disk order; the index of each entry in <see cref="HeaderFields.All"/>.</summary>
internal enum HeaderField
{
    Magic,
    Version,
    BackingFileOffset,
    BackingFileSize,
    ClusterBits,
    Size,
    CryptMethod,
    L1Size,
    L1TableOffset,
    RefcountTableOffset,
    RefcountTableClusters,
    NbSnapshots,
    SnapshotsOffset,
    IncompatibleFeatures,
    CompatibleFeatures,
    AutoclearFeatures,
    RefcountOrder,
    HeaderLength,
    CompressionType,
}

/// <summary>One header field: its spec name, byte offset and width, and how it maps to <see cref="QcowHeader"/>.</summary>
internal sealed record HeaderFieldSpec(
    HeaderField Id, string Name, int Offset, int Width, Func<QcowHeader, ulong> Get, Action<QcowHeader, ulong> Set)
{
    /// <summary>qcow2.txt: a field is present only when header_length is greater than its offset.</summary>
    public bool IsPresent(uint headerLength) => (uint)Offset < headerLength;

    public ulong Read(ReadOnlySpan<byte> header) => Width switch
    {
        1 => header[Offset],
        4 => BinaryPrimitives.ReadUInt32BigEndian(header[Offset..]),
        _ => BinaryPrimitives.ReadUInt64BigEndian(header[Offset..]),
    };

    public void Write(Span<byte> header, ulong value)
    {
        switch (Width)
        {
            case 1: header[Offset] = (byte)value; break;
            case 4: BinaryPrimitives.WriteUInt32BigEndian(header[Offset..], (uint)value); break;
            default: BinaryPrimitives.WriteUInt64BigEndian(header[Offset..], value); break;
        }
    }
}

/// <summary>The header layout of qcow2.txt as a table, so parse and write cannot drift apart.</summary>
internal static class HeaderFields
{
    public const int MagicOffset = 0;
    public const int VersionOffset = 4;
    public const int BackingFileOffsetOffset = 8;
    public const int BackingFileSizeOffset = 16;
    public const int ClusterBitsOffset = 20;
    public const int SizeOffset = 24;
    public const int CryptMethodOffset = 32;
    public const int L1SizeOffset = 36;
    public const int L1TableOffsetOffset = 40;
    public const int RefcountTableOffsetOffset = 48;
    public const int RefcountTableClustersOffset = 56;
    public const int NbSnapshotsOffset = 60;
    public const int SnapshotsOffsetOffset = 64;
    public const int IncompatibleFeaturesOffset = 72;
    public const int CompatibleFeaturesOffset = 80;
    public const int AutoclearFeaturesOffset = 88;
    public const int RefcountOrderOffset = 96;
    public const int HeaderLengthOffset = 100;
    public const int CompressionTypeOffset = 104;

    /// <summary>header_length, extensions and snapshot entries are padded to multiples of 8 bytes.</summary>
    public const int Alignment = 8;

    public static int AlignUp(int bytes) => (bytes + Alignment - 1) & ~(Alignment - 1);

    /// <summary>Indexed by <see cref="HeaderField"/>.</summary>
    public static readonly IReadOnlyList<HeaderFieldSpec> All =
    [
        new(HeaderField.Magic, "magic", MagicOffset, 4, _ => QcowHeader.Magic, (_, _) => { }),
        new(HeaderField.Version, "version", VersionOffset, 4, h => h.Version, (h, v) => h.Version = (uint)v),
        new(HeaderField.BackingFileOffset, "backing_file_offset", BackingFileOffsetOffset, 8,
            h => (ulong)h.BackingFileOffset, (h, v) => h.BackingFileOffset = (long)v),
        new(HeaderField.BackingFileSize, "backing_file_size", BackingFileSizeOffset, 4,
            h => h.BackingFileSize, (h, v) => h.BackingFileSize = (uint)v),
        new(HeaderField.ClusterBits, "cluster_bits", ClusterBitsOffset, 4,
            h => (uint)h.ClusterBits, (h, v) => h.ClusterBits = (int)v),
        new(HeaderField.Size, "size", SizeOffset, 8, h => (ulong)h.Size, (h, v) => h.Size = (long)v),
        new(HeaderField.CryptMethod, "crypt_method", CryptMethodOffset, 4,
            h => h.CryptMethod, (h, v) => h.CryptMethod = (uint)v),
        new(HeaderField.L1Size, "l1_size", L1SizeOffset, 4, h => h.L1Size, (h, v) => h.L1Size = (uint)v),
        new(HeaderField.L1TableOffset, "l1_table_offset", L1TableOffsetOffset, 8,
            h => (ulong)h.L1TableOffset, (h, v) => h.L1TableOffset = (long)v),
        new(HeaderField.RefcountTableOffset, "refcount_table_offset", RefcountTableOffsetOffset, 8,
            h => (ulong)h.RefcountTableOffset, (h, v) => h.RefcountTableOffset = (long)v),
        new(HeaderField.RefcountTableClusters, "refcount_table_clusters", RefcountTableClustersOffset, 4,
            h => h.RefcountTableClusters, (h, v) => h.RefcountTableClusters = (uint)v),
        new(HeaderField.NbSnapshots, "nb_snapshots", NbSnapshotsOffset, 4,
            h => h.NbSnapshots, (h, v) => h.NbSnapshots = (uint)v),
        new(HeaderField.SnapshotsOffset, "snapshots_offset", SnapshotsOffsetOffset, 8,
            h => (ulong)h.SnapshotsOffset, (h, v) => h.SnapshotsOffset = (long)v),
        new(HeaderField.IncompatibleFeatures, "incompatible_features", IncompatibleFeaturesOffset, 8,
            h => h.IncompatibleFeatures, (h, v) => h.IncompatibleFeatures = v),
        new(HeaderField.CompatibleFeatures, "compatible_features", CompatibleFeaturesOffset, 8,
            h => h.CompatibleFeatures, (h, v) => h.CompatibleFeatures = v),
        new(HeaderField.AutoclearFeatures, "autoclear_features", AutoclearFeaturesOffset, 8,
            h => h.AutoclearFeatures, (h, v) => h.AutoclearFeatures = v),
        new(HeaderField.RefcountOrder, "refcount_order", RefcountOrderOffset, 4,
            h => (uint)h.RefcountOrder, (h, v) => h.RefcountOrder = (int)v),
        new(HeaderField.HeaderLength, "header_length", HeaderLengthOffset, 4,
            h => h.HeaderLength, (h, v) => h.HeaderLength = (uint)v),
        new(HeaderField.CompressionType, "compression_type", CompressionTypeOffset, 1,
            h => h.CompressionType, (h, v) => h.CompressionType = (byte)v),
    ];

    public static HeaderFieldSpec Get(HeaderField id) => All[(int)id];
    public static string NameOf(HeaderField id) => All[(int)id].Name;
}
