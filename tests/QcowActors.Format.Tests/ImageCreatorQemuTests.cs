using QcowActors.Format.Tests.Support;

namespace QcowActors.Format.Tests;

/// <summary>Images laid out by <see cref="ImageCreator"/>, judged by qemu-img and compared with its own.</summary>
public sealed class ImageCreatorQemuTests : IDisposable
{
    private const long KiB = 1L << 10;
    private const long MiB = 1L << 20;
    private const long GiB = 1L << 30;
    private const long TiB = 1L << 40;

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Sizes × cluster sizes × refcount widths, minus what QEMU's L1 limit forbids.</summary>
    public static TheoryData<long, int, int> Matrix()
    {
        var data = new TheoryData<long, int, int>();
        long[] sizes = [1, GiB, 100 * GiB, 64 * TiB];
        int[] clusterSizes = [512, (int)(4 * KiB), (int)(64 * KiB), (int)(2 * MiB)];
        int[] refcountBits = [1, 16, 64];
        foreach (long size in sizes)
        {
            foreach (int cluster in clusterSizes)
            {
                if (size == 64 * TiB && cluster < 16 * KiB)
                    continue; // refused: covered by the limit tests
                foreach (int bits in refcountBits)
                    data.Add(size, cluster, bits);
            }
        }
        foreach (int bits in refcountBits)
            data.Add(64 * TiB, (int)(16 * KiB), bits);
        return data;
    }

    private string WritePlan(CreateOptions options, string name = "ours.qcow2")
    {
        string path = _dir.File(name);
        ImageFiles.WritePlan(ImageCreator.Plan(options), path);
        return path;
    }

    private string QemuCreate(CreateOptions options, string name = "qemu.qcow2")
    {
        string path = _dir.File(name);
        Qemu.ImgOk("create", "-q", "-f", "qcow2",
            "-o", $"cluster_size={options.ClusterSize},refcount_bits={options.RefcountBits}",
            path, options.VirtualSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return path;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Planned_image_passes_qemu_img_check_and_info(long size, int clusterSize, int refcountBits)
    {
        var options = new CreateOptions(size, clusterSize, refcountBits);
        string path = WritePlan(options);
        Qemu.AssertClean(path);

        var info = Qemu.Info(path);
        long expectedSize = (size + 511) / 512 * 512;
        Assert.Equal(expectedSize, info.GetProperty("virtual-size").GetInt64());
        Assert.Equal(clusterSize, info.GetProperty("cluster-size").GetInt32());
        var data = info.GetProperty("format-specific").GetProperty("data");
        Assert.Equal(refcountBits, data.GetProperty("refcount-bits").GetInt32());
        Assert.Equal("1.1", data.GetProperty("compat").GetString());
    }

    [Fact]
    public void One_GiB_at_64_KiB_matches_qemu_img_byte_for_byte()
    {
        var options = new CreateOptions(GiB);
        string qemu = QemuCreate(options);
        string ours = WritePlan(options);
        var qemuHeader = ImageFiles.ParseHeader(qemu);
        var ourHeader = ImageFiles.ParseHeader(ours);

        Assert.Equal(new FileInfo(qemu).Length, new FileInfo(ours).Length);
        Assert.Equal(qemuHeader.RefcountTableOffset, ourHeader.RefcountTableOffset);
        Assert.Equal(qemuHeader.RefcountTableClusters, ourHeader.RefcountTableClusters);
        Assert.Equal(qemuHeader.L1TableOffset, ourHeader.L1TableOffset);
        Assert.Equal(qemuHeader.L1Size, ourHeader.L1Size);
        Assert.Equal(File.ReadAllBytes(qemu), File.ReadAllBytes(ours));
    }

    /// <summary>Where one refcount block covers everything, qemu-img's layout is the same as ours.</summary>
    [Theory]
    [InlineData(1L, 65536, 16)]
    [InlineData(100 * GiB, 65536, 16)]
    [InlineData(GiB, 65536, 1)]
    [InlineData(GiB, 65536, 64)]
    [InlineData(1L, 512, 64)]
    [InlineData(1L, 4096, 16)]
    [InlineData(GiB, 4096, 16)]
    [InlineData(GiB, 8192, 1)]
    [InlineData(100 * GiB, 2 * 1024 * 1024, 16)]
    [InlineData(64 * TiB, 16 * 1024, 16)]
    public void Single_refcount_block_layouts_match_qemu_img_byte_for_byte(long size, int clusterSize, int refcountBits)
    {
        var options = new CreateOptions(size, clusterSize, refcountBits);
        string qemu = QemuCreate(options);
        string ours = WritePlan(options);
        Assert.Equal(File.ReadAllBytes(qemu), File.ReadAllBytes(ours));
    }

    /// <summary>
    /// With several refcount blocks qemu-img grows them after the L1; this plan puts them all before
    /// it. Both are valid; ours must not cost more file space.
    /// </summary>
    [Theory]
    [InlineData(GiB, 512, 16)]
    [InlineData(100 * GiB, 512, 16)]
    [InlineData(100 * GiB, 512, 1)]
    [InlineData(100 * GiB, 4096, 64)]
    public void Multi_block_layouts_are_no_larger_than_qemu_img_ones(long size, int clusterSize, int refcountBits)
    {
        var options = new CreateOptions(size, clusterSize, refcountBits);
        string qemu = QemuCreate(options);
        string ours = WritePlan(options);
        Qemu.AssertClean(ours);
        Assert.True(new FileInfo(ours).Length <= new FileInfo(qemu).Length,
            $"ours {new FileInfo(ours).Length} bytes, qemu-img {new FileInfo(qemu).Length}");
    }

    [Fact]
    public void Planned_image_accepts_qemu_io_writes_and_stays_clean()
    {
        string path = WritePlan(new CreateOptions(GiB, 4096, 1));
        Qemu.IoOk("-c", "write -P 0x5a 0 1M", "-c", "write -P 0xa5 1020M 4M", path);
        Qemu.AssertClean(path);
        Qemu.IoOk("-c", "read -P 0x5a 0 1M", "-c", "read -P 0xa5 1020M 4M", "-c", "read -P 0 1M 1M", path);
    }
}
