namespace QcowActors.Format.Tests;

/// <summary>Validation and limits of <see cref="ImageCreator.Plan"/> (no QEMU needed).</summary>
public sealed class ImageCreatorTests
{
    private const long KiB = 1L << 10;
    private const long GiB = 1L << 30;
    private const long TiB = 1L << 40;

    private static QcowFormatException Refuse(CreateOptions options, QcowProblem problem, string field)
    {
        var e = Assert.Throws<QcowFormatException>(() => ImageCreator.Plan(options));
        Assert.Equal(problem, e.Problem);
        Assert.Equal(field, e.Field);
        return e;
    }

    [Theory]
    [InlineData(256)]
    [InlineData(1000)]
    [InlineData(4 << 20)]
    [InlineData(0)]
    [InlineData(-512)]
    public void Plan_rejects_cluster_sizes_outside_powers_of_two_from_512_to_2_MiB(int clusterSize)
        => Refuse(new CreateOptions(GiB, ClusterSize: clusterSize), QcowProblem.Invalid, "cluster_size");

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(128)]
    [InlineData(-16)]
    public void Plan_rejects_refcount_bits_outside_powers_of_two_from_1_to_64(int bits)
        => Refuse(new CreateOptions(GiB, RefcountBits: bits), QcowProblem.Invalid, "refcount_bits");

    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    public void Plan_rejects_sizes_that_are_not_positive(long size)
        => Refuse(new CreateOptions(size), QcowProblem.Invalid, "size");

    [Theory]
    [InlineData(1L, 512L)]
    [InlineData(511L, 512L)]
    [InlineData(513L, 1024L)]
    [InlineData(GiB + 1, GiB + 512)]
    public void Plan_rounds_the_size_up_to_512(long requested, long expected)
        => Assert.Equal(expected, ImageCreator.Plan(new CreateOptions(requested)).Header.Size);

    [Fact]
    public void Plan_of_64_TiB_with_8_KiB_clusters_exceeds_the_32_MiB_L1_limit()
    {
        var e = Refuse(new CreateOptions(64 * TiB, ClusterSize: (int)(8 * KiB)), QcowProblem.LimitExceeded, "l1_size");
        Assert.Equal(
            "a 64 TiB disk needs an L1 table of 64 MiB with 8 KiB clusters; QEMU's limit is 32 MiB: use clusters of at least 16 KiB",
            e.Message);
    }

    [Fact]
    public void Plan_of_64_TiB_with_16_KiB_clusters_fits_the_L1_limit_exactly()
    {
        var plan = ImageCreator.Plan(new CreateOptions(64 * TiB, ClusterSize: (int)(16 * KiB)));
        Assert.Equal(QcowLimits.MaxL1Bytes / 2, plan.Header.L1Size * 8L);
    }

    [Fact]
    public void Plan_of_a_size_no_cluster_size_can_map_says_so()
    {
        var e = Refuse(new CreateOptions(long.MaxValue), QcowProblem.LimitExceeded, "l1_size");
        Assert.Contains("32 MiB", e.Message);
        Assert.Contains("no cluster size", e.Message);
    }

    [Fact]
    public void Refcount_layout_refuses_a_table_over_8_MiB()
    {
        // 512-byte clusters with 64-bit refcounts: 64 clusters per block, 64 blocks per table cluster.
        var layout = new ClusterLayout(9, 6);
        long clustersFor8MiBTable = (QcowLimits.MaxRefcountTableBytes / 8 + 1) * layout.RefcountBlockEntries;
        var e = Assert.Throws<QcowFormatException>(() => ImageCreator.SolveRefcountLayout(layout, clustersFor8MiBTable));
        Assert.Equal(QcowProblem.LimitExceeded, e.Problem);
        Assert.Equal("refcount_table_clusters", e.Field);
    }

    [Theory]
    [InlineData(9, 6, 1)]
    [InlineData(9, 6, 100_000)]
    [InlineData(9, 0, 65_536)]
    [InlineData(16, 4, 1)]
    [InlineData(12, 6, 8192)]
    public void Refcount_layout_counts_every_used_cluster_and_the_table_points_at_every_block(int clusterBits, int order, long l1Clusters)
    {
        var layout = new ClusterLayout(clusterBits, order);
        var (table, blocks) = ImageCreator.SolveRefcountLayout(layout, l1Clusters);
        long used = 1 + table + blocks + l1Clusters;
        Assert.True(blocks * layout.RefcountBlockEntries >= used, "blocks cover every used cluster");
        Assert.True((blocks - 1) * layout.RefcountBlockEntries < used, "no block is empty");
        Assert.True(table * (long)layout.ClusterSize / 8 >= blocks, "the table has an entry for every block");
        Assert.True((table - 1) * (long)layout.ClusterSize / 8 < blocks, "the table has no spare cluster");
    }

    [Theory]
    [InlineData(8192)]
    [InlineData(65536)]
    public void Plan_header_has_the_feature_name_table_and_compression_type_field(int clusterSize)
    {
        var header = ImageCreator.Plan(new CreateOptions(GiB, clusterSize)).Header;
        Assert.Equal(3u, header.Version);
        Assert.Equal(112u, header.HeaderLength);
        Assert.Equal(HeaderExtensionType.FeatureNameTable, Assert.Single(header.Extensions).Type);
        Assert.Equal(0UL, header.IncompatibleFeatures | header.CompatibleFeatures | header.AutoclearFeatures);
    }

    [Theory]
    [InlineData(512)]
    [InlineData(4096)]
    public void Plan_leaves_out_the_feature_name_table_up_to_4_KiB_clusters_as_qemu_img_does(int clusterSize)
        => Assert.Empty(ImageCreator.Plan(new CreateOptions(GiB, clusterSize)).Header.Extensions);

    /// <summary>qemu-img 7.2 refuses each of these with compat=0.10 ("... only supported with compatibility level 1.1").</summary>
    [Theory]
    [InlineData(1, false, QcowCompression.Zlib, false, "refcount_bits")]
    [InlineData(64, false, QcowCompression.Zlib, false, "refcount_bits")]
    [InlineData(16, true, QcowCompression.Zlib, false, "extended_l2")]
    [InlineData(16, false, QcowCompression.Zstd, false, "compression_type")]
    [InlineData(16, false, QcowCompression.Zlib, true, "lazy_refcounts")]
    public void Plan_refuses_what_version_2_cannot_express(int refcountBits, bool extendedL2, byte compression, bool lazy, string field)
    {
        var e = Refuse(new CreateOptions(GiB, RefcountBits: refcountBits)
        {
            Version = 2, ExtendedL2 = extendedL2, CompressionType = compression, LazyRefcounts = lazy,
        }, QcowProblem.Invalid, field);
        Assert.Contains("version 3", e.Message);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void Plan_refuses_versions_other_than_2_and_3(int version)
        => Refuse(new CreateOptions(GiB) { Version = version }, QcowProblem.Invalid, "version");

    [Theory]
    [InlineData(512)]
    [InlineData(8192)]
    public void Plan_refuses_extended_L2_below_16_KiB_clusters(int clusterSize)
    {
        var e = Refuse(new CreateOptions(GiB, clusterSize) { ExtendedL2 = true }, QcowProblem.Invalid, "cluster_size");
        Assert.Contains("16 KiB", e.Message);
    }

    [Fact]
    public void Plan_refuses_unknown_compression_types()
        => Refuse(new CreateOptions(GiB) { CompressionType = 2 }, QcowProblem.Invalid, "compression_type");

    [Fact]
    public void Version_2_header_is_72_bytes_without_extensions_or_feature_bits()
    {
        var header = ImageCreator.Plan(new CreateOptions(GiB) { Version = 2 }).Header;
        Assert.Equal(2u, header.Version);
        Assert.Equal(72u, header.HeaderLength);
        Assert.Empty(header.Extensions);
    }

    [Fact]
    public void Feature_options_set_their_bits_and_compression_type()
    {
        var header = ImageCreator.Plan(new CreateOptions(GiB)
        {
            CompressionType = QcowCompression.Zstd, ExtendedL2 = true, LazyRefcounts = true,
        }).Header;
        Assert.Equal(FeatureBits.IncompatibleCompressionType | FeatureBits.IncompatibleExtendedL2, header.IncompatibleFeatures);
        Assert.Equal(FeatureBits.CompatibleLazyRefcounts, header.CompatibleFeatures);
        Assert.Equal(QcowCompression.Zstd, header.CompressionType);
        Assert.Equal(4u, header.L1Size); // 1 GiB / (64 KiB × 4096 sixteen-byte entries)
    }

    [Fact]
    public void Metadata_preallocation_is_limited_to_8_TiB_disks()
    {
        var e = Refuse(new CreateOptions(8 * TiB + 512) { Preallocation = Preallocation.Metadata }, QcowProblem.LimitExceeded, "preallocation");
        Assert.Contains("8 TiB", e.Message);
        ImageCreator.Plan(new CreateOptions(8 * TiB) { Preallocation = Preallocation.Metadata });
    }

    [Fact]
    public void Metadata_preallocation_is_limited_to_2_GiB_of_tables()
    {
        // 4 KiB clusters: 2 TiB needs 4 GiB of L2 tables.
        var e = Refuse(new CreateOptions(2 * TiB, 4096) { Preallocation = Preallocation.Metadata }, QcowProblem.LimitExceeded, "preallocation");
        Assert.Contains("2 GiB", e.Message);
        Assert.Contains("larger clusters", e.Message);
    }
}
