using System.Globalization;
using QcowActors.Format.Tests.Support;

namespace QcowActors.Format.Tests;

/// <summary>
/// Version, compression type, extended L2, lazy refcounts and metadata preallocation, each laid out
/// by <see cref="ImageCreator"/> and judged against a <c>qemu-img create</c> of the same options.
/// </summary>
public sealed class ImageCreatorOptionsQemuTests : IDisposable
{
    private const long KiB = 1L << 10;
    private const long MiB = 1L << 20;
    private const long GiB = 1L << 30;
    private const long TiB = 1L << 40;

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Options written as qemu-img's "-o" list: "cluster_size=…,compat=…,…".</summary>
    private static CreateOptions Parse(long size, string qemuOptions)
    {
        var options = new CreateOptions(size);
        foreach (string option in qemuOptions.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] kv = option.Split('=');
            options = kv[0] switch
            {
                "cluster_size" => options with { ClusterSize = int.Parse(kv[1], CultureInfo.InvariantCulture) },
                "refcount_bits" => options with { RefcountBits = int.Parse(kv[1], CultureInfo.InvariantCulture) },
                "compat" => options with { Version = kv[1] == "0.10" ? 2 : 3 },
                "compression_type" => options with { CompressionType = kv[1] == "zstd" ? QcowCompression.Zstd : QcowCompression.Zlib },
                "extended_l2" => options with { ExtendedL2 = kv[1] == "on" },
                "lazy_refcounts" => options with { LazyRefcounts = kv[1] == "on" },
                "preallocation" => options with { Preallocation = kv[1] == "metadata" ? Preallocation.Metadata : Preallocation.Off },
                _ => throw new ArgumentException(option),
            };
        }
        return options;
    }

    private int _created;

    private (string Ours, string Theirs) CreateBoth(long size, string qemuOptions)
    {
        int n = ++_created;
        string ours = _dir.File($"ours{n}.qcow2"), theirs = _dir.File($"qemu{n}.qcow2");
        ImageFiles.WritePlan(ImageCreator.Plan(Parse(size, qemuOptions)), ours);
        var args = new List<string> { "create", "-q", "-f", "qcow2" };
        if (qemuOptions.Length > 0) args.AddRange(["-o", qemuOptions]);
        args.AddRange([theirs, size.ToString(CultureInfo.InvariantCulture)]);
        Qemu.ImgOk([.. args]);
        return (ours, theirs);
    }

    [Theory]
    [InlineData(GiB, "compression_type=zstd")]
    [InlineData(GiB, "extended_l2=on")]
    [InlineData(100 * GiB, "extended_l2=on")]
    [InlineData(GiB, "extended_l2=on,cluster_size=16384")]
    [InlineData(64 * TiB, "extended_l2=on,cluster_size=2097152")]
    [InlineData(GiB, "lazy_refcounts=on")]
    [InlineData(GiB, "compat=0.10")]
    [InlineData(100 * GiB, "compat=0.10,cluster_size=4096")]
    [InlineData(1, "compat=0.10,cluster_size=512")]
    [InlineData(GiB, "compression_type=zstd,extended_l2=on,lazy_refcounts=on,refcount_bits=64")]
    public void Created_image_matches_qemu_img_byte_for_byte(long size, string qemuOptions)
    {
        var (ours, theirs) = CreateBoth(size, qemuOptions);
        Qemu.AssertClean(ours);
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
    }

    [Fact]
    public void Info_reports_each_option_as_qemu_img_names_it()
    {
        var (ours, _) = CreateBoth(GiB, "compression_type=zstd,extended_l2=on,lazy_refcounts=on");
        var data = Qemu.Info(ours).GetProperty("format-specific").GetProperty("data");
        Assert.Equal("1.1", data.GetProperty("compat").GetString());
        Assert.Equal("zstd", data.GetProperty("compression-type").GetString());
        Assert.True(data.GetProperty("extended-l2").GetBoolean());
        Assert.True(data.GetProperty("lazy-refcounts").GetBoolean());

        var (v2, _) = CreateBoth(GiB, "compat=0.10");
        var v2Data = Qemu.Info(v2).GetProperty("format-specific").GetProperty("data");
        Assert.Equal("0.10", v2Data.GetProperty("compat").GetString());
    }

    /// <summary>
    /// Where the refcount table fits one cluster, the preallocated image is qemu-img's, byte for
    /// byte: tables interleaved with data, blocks placed after the run that needs them, the tail
    /// of a partial last cluster (subcluster) written as zeros.
    /// </summary>
    [Theory]
    [InlineData(1000000L, "")]
    [InlineData(GiB, "")]
    [InlineData(5 * GiB, "")]
    [InlineData(1000000L, "cluster_size=4096")]
    [InlineData(GiB, "cluster_size=4096")]
    [InlineData(4 * MiB, "cluster_size=512")]
    [InlineData(MiB, "cluster_size=512,refcount_bits=64")]
    [InlineData(64 * MiB, "cluster_size=4096,refcount_bits=1")]
    [InlineData(5 * GiB, "cluster_size=131072")]
    [InlineData(1000000L, "extended_l2=on")]
    [InlineData(333333L, "extended_l2=on,cluster_size=16384")]
    [InlineData(GiB, "extended_l2=on")]
    [InlineData(GiB, "compat=0.10")]
    [InlineData(GiB, "lazy_refcounts=on,compression_type=zstd")]
    public void Metadata_preallocation_matches_qemu_img_byte_for_byte(long size, string qemuOptions)
    {
        var (ours, theirs) = CreateBoth(size, Join(qemuOptions, "preallocation=metadata"));
        Qemu.AssertClean(ours);
        Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);
        Assert.Equal(Map(theirs), Map(ours));
        Qemu.ImgOk("compare", "-f", "qcow2", "-F", "qcow2", theirs, ours);
        AssertSameBytes(theirs, ours);
    }

    /// <summary>
    /// 512-byte clusters outgrow a one-cluster refcount table at 8 MiB: qemu-img moves the table
    /// while this plan sizes it first. Different offsets, same disk, both clean.
    /// </summary>
    [Fact]
    public void Metadata_preallocation_with_a_growing_refcount_table_is_valid_and_reads_the_same()
    {
        var (ours, theirs) = CreateBoth(20 * MiB, "cluster_size=512,preallocation=metadata");
        Qemu.AssertClean(ours);
        Qemu.ImgOk("compare", "-f", "qcow2", "-F", "qcow2", theirs, ours);
        Assert.Equal(GuestStatus(theirs), GuestStatus(ours));
        Assert.True(new FileInfo(ours).Length <= new FileInfo(theirs).Length);
    }

    [Fact]
    public void Preallocated_image_reads_zeros_and_takes_writes_in_place()
    {
        var (ours, _) = CreateBoth(64 * MiB, "preallocation=metadata");
        Qemu.IoOk("-c", "read -P 0 0 64M", ours);
        long before = new FileInfo(ours).Length;
        Qemu.IoOk("-c", "write -P 0x5a 1M 3M", ours);
        Qemu.AssertClean(ours);
        Assert.Equal(before, new FileInfo(ours).Length); // the clusters were already there
        Qemu.IoOk("-c", "read -P 0x5a 1M 3M", "-c", "read -P 0 0 1M", ours);
    }

    /// <summary>1 TiB at 64 KiB clusters: 160 MiB of tables, written one table at a time.</summary>
    [Fact]
    public void One_TiB_preallocation_matches_qemu_img_and_is_made_in_bounded_pieces()
    {
        var plan = ImageCreator.Plan(new CreateOptions(TiB) { Preallocation = Preallocation.Metadata });
        long largest = 0, total = 0;
        foreach (var (_, bytes) in plan.Writes)
        {
            largest = Math.Max(largest, bytes.Length);
            total += bytes.Length;
        }
        Assert.True(largest <= MiB, $"a chunk of {largest} bytes");
        Assert.True(total > 128 * MiB, $"only {total} bytes of metadata");

        var (ours, theirs) = CreateBoth(TiB, "preallocation=metadata");
        Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);
        Assert.Equal(Map(theirs), Map(ours));
        Qemu.AssertClean(ours);
    }

    private static string Join(string a, string b) => a.Length == 0 ? b : $"{a},{b}";

    private static string Map(string path) => Qemu.ImgOk("map", "--output=json", "-f", "qcow2", path).StdOut;

    /// <summary>
    /// The map without host offsets and without "zero" (which reflects the host file system's holes
    /// around metadata placed elsewhere): which guest ranges are present and data, merged.
    /// </summary>
    private static List<(long Start, long End, bool Present, bool Data)> GuestStatus(string path)
    {
        var ranges = new List<(long Start, long End, bool Present, bool Data)>();
        foreach (var e in System.Text.Json.JsonDocument.Parse(Map(path)).RootElement.EnumerateArray())
        {
            long start = e.GetProperty("start").GetInt64(), end = start + e.GetProperty("length").GetInt64();
            bool present = e.GetProperty("present").GetBoolean(), data = e.GetProperty("data").GetBoolean();
            if (ranges.Count > 0 && ranges[^1].End == start && ranges[^1].Present == present && ranges[^1].Data == data)
                ranges[^1] = (ranges[^1].Start, end, present, data);
            else
                ranges.Add((start, end, present, data));
        }
        return ranges;
    }

    /// <summary>
    /// The same bytes wherever either file holds data (holes read as zeros, so only data extents,
    /// found with SEEK_DATA, need reading). Which metadata bytes are holes may differ: qemu-img
    /// writes whole clusters of zeros where this plan extends the file. Holes under guest data
    /// are compared through qemu-img map's "zero" flag.
    /// </summary>
    private static void AssertSameBytes(string expected, string actual)
    {
        var extents = SparseFile.DataExtents(expected).Concat(SparseFile.DataExtents(actual)).Order().ToList();
        using var a = File.OpenHandle(expected);
        using var b = File.OpenHandle(actual);
        var x = new byte[MiB];
        var y = new byte[MiB];
        foreach (var (start, end) in extents)
        {
            for (long at = start; at < end; at += MiB)
            {
                int n = (int)Math.Min(MiB, end - at);
                Assert.Equal(n, RandomAccess.Read(a, x.AsSpan(0, n), at));
                Assert.Equal(n, RandomAccess.Read(b, y.AsSpan(0, n), at));
                if (!x.AsSpan(0, n).SequenceEqual(y.AsSpan(0, n)))
                {
                    int i = 0;
                    while (x[i] == y[i]) i++;
                    Assert.Fail($"files differ at byte 0x{at + i:x}: qemu-img 0x{x[i]:x2}, ours 0x{y[i]:x2}");
                }
            }
        }
    }
}
