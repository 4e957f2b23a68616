using QcowActors.Format.Tests.Support;
using static QcowActors.Format.HeaderFields;
using static QcowActors.Format.Tests.Support.TestImages;

namespace QcowActors.Format.Tests;

/// <summary>Every refusal of <see cref="QcowHeader.Parse"/>: one corrupted field per test, checking Field and Problem.</summary>
public sealed class HeaderRefusalTests
{
    private const int FeatureTableOffset = 112; // where ImageCreator's extension list starts

    private static QcowFormatException Refuse(byte[] image, QcowProblem problem, string field)
        => Refuse(image, image.Length, image.Length, problem, field);

    private static QcowFormatException Refuse(byte[] image, int bytesGiven, long fileLength, QcowProblem problem, string field)
    {
        var e = Assert.Throws<QcowFormatException>(() => QcowHeader.Parse(image.AsSpan(0, bytesGiven), fileLength));
        Assert.Equal(field, e.Field);
        Assert.Equal(problem, e.Problem);
        return e;
    }

    [Fact]
    public void Parse_accepts_the_unmodified_test_images()
    {
        byte[] v3 = V3(), v2 = V2();
        Assert.Equal(3u, QcowHeader.Parse(v3, v3.Length).Version);
        Assert.Equal(2u, QcowHeader.Parse(v2, v2.Length).Version);
    }

    [Fact]
    public void Parse_rejects_input_shorter_than_the_v2_header()
        => Refuse(V3(), QcowHeader.V2Length - 1, OneGiB, QcowProblem.Invalid, "header_length");

    [Fact]
    public void Parse_rejects_v3_input_shorter_than_104_bytes()
        => Refuse(V3(), QcowHeader.V3MinLength - 1, OneGiB, QcowProblem.Invalid, "header_length");

    [Fact]
    public void Parse_rejects_input_shorter_than_header_length()
        => Refuse(V3(), 110, OneGiB, QcowProblem.Invalid, "header_length");

    [Fact]
    public void Parse_rejects_bad_magic()
    {
        byte[] image = V3();
        image[MagicOffset + 3] = 0xfa;
        Assert.Contains("magic", Refuse(image, QcowProblem.Invalid, "magic").Message);
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(4u)]
    public void Parse_rejects_versions_other_than_2_and_3_as_unsupported(uint version)
    {
        byte[] image = V3();
        SetU32(image, VersionOffset, version);
        var e = Refuse(image, QcowProblem.Unsupported, "version");
        Assert.Equal($"qcow version {version}", e.Feature);
    }

    [Fact]
    public void Parse_rejects_unknown_incompatible_bits_as_unsupported()
    {
        byte[] image = V3();
        SetU64(image, IncompatibleFeaturesOffset, 1UL << 6 | FeatureBits.IncompatibleDirty);
        var e = Refuse(image, QcowProblem.Unsupported, "incompatible_features");
        Assert.Equal("incompatible features 0x40", e.Feature);
    }

    [Theory]
    [InlineData(8u)]
    [InlineData(22u)]
    public void Parse_rejects_cluster_bits_outside_9_to_21(uint bits)
    {
        byte[] image = V3();
        SetU32(image, ClusterBitsOffset, bits);
        var e = Refuse(image, QcowProblem.Invalid, "cluster_bits");
        Assert.Contains($"cluster_bits {bits} is outside 9..21", e.Message);
    }

    [Fact]
    public void Parse_rejects_refcount_order_above_6()
    {
        byte[] image = V3();
        SetU32(image, RefcountOrderOffset, 7);
        Assert.Contains("refcount_order 7", Refuse(image, QcowProblem.Invalid, "refcount_order").Message);
    }

    [Theory]
    [InlineData(96u)] // below 104
    [InlineData(108u)] // not a multiple of 8
    [InlineData(ClusterSize + 8u)] // past the first cluster
    public void Parse_rejects_invalid_header_length(uint length)
    {
        byte[] image = V3();
        SetU32(image, HeaderLengthOffset, length);
        Assert.Contains($"header_length {length}", Refuse(image, QcowProblem.Invalid, "header_length").Message);
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(2u)]
    public void Parse_rejects_encryption_as_unsupported(uint method)
    {
        byte[] image = V3();
        SetU32(image, CryptMethodOffset, method);
        Assert.Equal("encryption", Refuse(image, QcowProblem.Unsupported, "crypt_method").Feature);
    }

    [Fact]
    public void Parse_rejects_size_above_2_pow_63_minus_1()
    {
        byte[] image = V3();
        SetU64(image, SizeOffset, (ulong)long.MaxValue + 1);
        Refuse(image, QcowProblem.Invalid, "size");
    }

    [Fact]
    public void Parse_rejects_size_that_l1_size_cannot_map()
    {
        byte[] image = V3(); // l1_size 2 maps exactly 1 GiB at 64 KiB clusters
        SetU64(image, SizeOffset, OneGiB + 512);
        Assert.Contains("l1_size is 2", Refuse(image, QcowProblem.Invalid, "size").Message);
    }

    [Fact]
    public void Parse_rejects_l1_table_over_32_MiB()
    {
        byte[] image = V3();
        SetU32(image, L1SizeOffset, (32u << 20) / 8 + 1);
        Assert.Contains("32 MiB", Refuse(image, QcowProblem.LimitExceeded, "l1_size").Message);
    }

    [Fact]
    public void Parse_rejects_refcount_table_over_8_MiB()
    {
        byte[] image = V3();
        SetU32(image, RefcountTableClustersOffset, (8u << 20) / ClusterSize + 1);
        Assert.Contains("8 MiB", Refuse(image, QcowProblem.LimitExceeded, "refcount_table_clusters").Message);
    }

    [Fact]
    public void Parse_rejects_refcount_table_clusters_0()
    {
        byte[] image = V3();
        SetU32(image, RefcountTableClustersOffset, 0);
        Refuse(image, QcowProblem.Invalid, "refcount_table_clusters");
    }

    [Theory]
    [InlineData(L1TableOffsetOffset, "l1_table_offset")]
    [InlineData(RefcountTableOffsetOffset, "refcount_table_offset")]
    [InlineData(SnapshotsOffsetOffset, "snapshots_offset")]
    public void Parse_rejects_table_offsets_not_cluster_aligned(int offset, string field)
    {
        byte[] image = V3();
        SetU64(image, offset, (ulong)ClusterSize + 512);
        Assert.Contains("aligned", Refuse(image, QcowProblem.Invalid, field).Message);
    }

    [Fact]
    public void Parse_rejects_l1_table_past_end_of_file()
    {
        byte[] image = V3();
        Refuse(image, image.Length, image.Length - 1, QcowProblem.Invalid, "l1_table_offset");
    }

    [Fact]
    public void Parse_accepts_l1_table_ending_mid_cluster_at_end_of_file()
    {
        byte[] image = V3();
        var header = QcowHeader.Parse(image, image.Length);
        Assert.Equal(image.Length, header.L1TableOffset + header.L1Size * 8L);
        Assert.NotEqual(0, image.Length % ClusterSize);
    }

    [Fact]
    public void Parse_rejects_refcount_table_past_end_of_file()
    {
        byte[] image = V3();
        SetU64(image, RefcountTableOffsetOffset, 3UL * ClusterSize); // the L1's cluster: only 16 bytes exist
        Refuse(image, QcowProblem.Invalid, "refcount_table_offset");
    }

    [Fact]
    public void Parse_rejects_snapshot_table_starting_past_end_of_file()
    {
        byte[] image = V3();
        SetU32(image, NbSnapshotsOffset, 1);
        SetU64(image, SnapshotsOffsetOffset, 4UL * ClusterSize);
        Refuse(image, QcowProblem.Invalid, "snapshots_offset");
    }

    [Fact]
    public void Parse_rejects_more_snapshots_than_qemu_allows()
    {
        byte[] image = V3();
        SetU32(image, NbSnapshotsOffset, QcowLimits.MaxSnapshots + 1);
        SetU64(image, SnapshotsOffsetOffset, 2UL * ClusterSize);
        Refuse(image, QcowProblem.LimitExceeded, "nb_snapshots");
    }

    [Fact]
    public void Parse_rejects_l1_table_offset_0_with_entries()
    {
        byte[] image = V3();
        SetU64(image, L1TableOffsetOffset, 0);
        Refuse(image, QcowProblem.Invalid, "l1_table_offset");
    }

    [Fact]
    public void Parse_accepts_l1_table_offset_0_for_an_empty_disk()
    {
        byte[] image = V3();
        SetU64(image, L1TableOffsetOffset, 0);
        SetU32(image, L1SizeOffset, 0);
        SetU64(image, SizeOffset, 0);
        Assert.Equal(0u, QcowHeader.Parse(image, image.Length).L1Size);
    }

    [Fact]
    public void Parse_rejects_extension_length_running_past_the_cluster()
    {
        byte[] image = V3();
        SetU32(image, FeatureTableOffset + 4, ClusterSize);
        Refuse(image, QcowProblem.Invalid, "header_extension");
    }

    [Fact]
    public void Parse_rejects_an_encryption_extension_in_an_image_that_is_not_encrypted()
    {
        byte[] image = V3();
        SetU32(image, FeatureTableOffset, HeaderExtensionType.FullDiskEncryption);
        Assert.Contains("crypt_method 0", Refuse(image, QcowProblem.Invalid, "crypt_method").Message);
    }

    [Fact]
    public void Parse_rejects_extension_header_cut_off_by_the_end_of_the_bytes()
        => Refuse(V3(), FeatureTableOffset + 4, OneGiB, QcowProblem.Invalid, "header_extension");

    [Fact]
    public void Parse_rejects_backing_file_name_outside_the_cluster()
    {
        byte[] image = V3();
        SetU64(image, BackingFileOffsetOffset, ClusterSize - 4);
        SetU32(image, BackingFileSizeOffset, 8);
        Refuse(image, QcowProblem.Invalid, "backing_file_offset");
    }

    [Fact]
    public void Parse_rejects_backing_file_name_inside_the_header()
    {
        byte[] image = V3();
        SetU64(image, BackingFileOffsetOffset, 8);
        SetU32(image, BackingFileSizeOffset, 4);
        Refuse(image, QcowProblem.Invalid, "backing_file_offset");
    }

    [Fact]
    public void Parse_rejects_backing_file_name_over_1023_bytes()
    {
        byte[] image = V3();
        SetU64(image, BackingFileOffsetOffset, 1024);
        SetU32(image, BackingFileSizeOffset, 1024);
        Refuse(image, QcowProblem.Invalid, "backing_file_size");
    }

    [Fact]
    public void Parse_rejects_compression_type_without_its_incompatible_bit()
    {
        byte[] image = V3();
        image[CompressionTypeOffset] = QcowCompression.Zstd;
        Refuse(image, QcowProblem.Invalid, "compression_type");
    }

    [Fact]
    public void Parse_rejects_compression_type_bit_with_zlib()
    {
        byte[] image = V3();
        SetU64(image, IncompatibleFeaturesOffset, FeatureBits.IncompatibleCompressionType);
        Refuse(image, QcowProblem.Invalid, "compression_type");
    }

    [Fact]
    public void Parse_rejects_unknown_compression_type_as_unsupported()
    {
        byte[] image = V3();
        SetU64(image, IncompatibleFeaturesOffset, FeatureBits.IncompatibleCompressionType);
        image[CompressionTypeOffset] = 7;
        Assert.Equal("compression type 7", Refuse(image, QcowProblem.Unsupported, "compression_type").Feature);
    }

    [Fact]
    public void Parse_rejects_extended_l2_below_16_KiB_clusters()
    {
        var plan = ImageCreator.Plan(new CreateOptions(OneGiB, ClusterSize: 4096));
        byte[] image = ImageFiles.ToBytes(plan);
        SetU64(image, IncompatibleFeaturesOffset, FeatureBits.IncompatibleExtendedL2);
        Refuse(image, QcowProblem.Invalid, "cluster_bits");
    }
}
