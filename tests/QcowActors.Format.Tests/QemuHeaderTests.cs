using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using QcowActors.Format.Tests.Support;

namespace QcowActors.Format.Tests;

/// <summary>Headers written by qemu-img itself; expectations come from qemu-img info, not from our code.</summary>
public sealed class QemuHeaderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Create(string name, string size, params string[] options)
    {
        string path = _dir.File(name);
        Qemu.ImgOk(["create", "-q", "-f", "qcow2", .. options, path, size]);
        return path;
    }

    private static JsonElement Data(JsonElement info) => info.GetProperty("format-specific").GetProperty("data");

    /// <summary>Checks the fields qemu-img info reports, plus the structural facts every image has.</summary>
    private static QcowHeader AssertMatchesInfo(string path)
    {
        var header = ImageFiles.ParseHeader(path);
        var info = Qemu.Info(path);
        var data = Data(info);
        Assert.Equal(info.GetProperty("virtual-size").GetInt64(), header.Size);
        Assert.Equal(info.GetProperty("cluster-size").GetInt32(), header.ClusterSize);
        Assert.Equal(data.GetProperty("refcount-bits").GetInt32(), header.RefcountBits);
        Assert.Equal(data.GetProperty("compat").GetString() == "0.10" ? 2u : 3u, header.Version);
        bool lazy = data.TryGetProperty("lazy-refcounts", out var lazyValue) && lazyValue.GetBoolean(); // absent for v2
        Assert.Equal(lazy, (header.CompatibleFeatures & FeatureBits.CompatibleLazyRefcounts) != 0);
        Assert.True(header.L1TableOffset + header.L1Size * 8L <= new FileInfo(path).Length);
        return header;
    }

    [Fact]
    public void Parse_reads_a_default_qemu_img_v3_header()
    {
        var header = AssertMatchesInfo(Create("v3.qcow2", "1G"));
        Assert.Equal(112u, header.HeaderLength);
        Assert.Equal(QcowCompression.Zlib, header.CompressionType);
        Assert.Equal(new byte[8], header.AdditionalFields);
        var names = Assert.Single(header.Extensions);
        Assert.Equal(HeaderExtensionType.FeatureNameTable, names.Type);
        Assert.Equal(0, names.Data.Length % FeatureNameTable.EntryBytes);
        Assert.Null(header.BackingFile);
    }

    [Fact]
    public void Parse_reads_a_compat_0_10_header_as_v2()
    {
        var header = AssertMatchesInfo(Create("v2.qcow2", "1G", "-o", "compat=0.10"));
        Assert.Equal((uint)QcowHeader.V2Length, header.HeaderLength);
        Assert.Equal(4, header.RefcountOrder);
        Assert.Empty(header.Extensions);
        Assert.Empty(header.AdditionalFields);
    }

    [Theory]
    [InlineData("cluster_size=512")]
    [InlineData("cluster_size=2M")]
    [InlineData("refcount_bits=1")]
    [InlineData("refcount_bits=64")]
    [InlineData("lazy_refcounts=on")]
    public void Parse_reads_qemu_img_headers_with_options(string option)
        => AssertMatchesInfo(Create("opt.qcow2", "10G", "-o", option));

    [Fact]
    public void Parse_reads_the_backing_file_name_and_format()
    {
        Create("base.qcow2", "1G");
        string overlay = Create("overlay.qcow2", "1G", "-b", "base.qcow2", "-F", "qcow2");
        var header = AssertMatchesInfo(overlay);
        var info = Qemu.Info(overlay);
        Assert.Equal(info.GetProperty("backing-filename").GetString(), header.BackingFile);
        var format = header.FindExtension(HeaderExtensionType.BackingFormat);
        Assert.NotNull(format);
        Assert.Equal(info.GetProperty("backing-filename-format").GetString(), Encoding.UTF8.GetString(format.Data));
    }

    [Fact]
    public void Parse_keeps_the_bitmaps_extension()
    {
        string path = Create("bitmap.qcow2", "1G");
        Qemu.ImgOk("bitmap", "--add", path, "b0");
        var header = AssertMatchesInfo(path);
        int expectedBitmaps = Data(Qemu.Info(path)).GetProperty("bitmaps").GetArrayLength();
        var bitmaps = header.FindExtension(HeaderExtensionType.Bitmaps);
        Assert.NotNull(bitmaps);
        Assert.Equal((uint)expectedBitmaps, BinaryPrimitives.ReadUInt32BigEndian(bitmaps.Data)); // nb_bitmaps
        Assert.NotEqual(0UL, header.AutoclearFeatures & FeatureBits.AutoclearBitmaps);
    }

    [Theory]
    [InlineData("1G")]
    [InlineData("1G", "-o", "compat=0.10")]
    [InlineData("1G", "-b", "base.qcow2", "-F", "qcow2")]
    [InlineData("1G", "-o", "cluster_size=512,refcount_bits=1")]
    public void Write_reproduces_the_qemu_img_header_cluster_byte_for_byte(string size, params string[] options)
    {
        Create("base.qcow2", "1G");
        string path = Create("image.qcow2", size, options);
        var header = ImageFiles.ParseHeader(path);
        byte[] original = ImageFiles.ReadAt(path, 0, header.ClusterSize);
        var written = new byte[header.ClusterSize];
        header.WriteTo(written);
        Assert.Equal(original, written);
    }

    [Fact]
    public void Parse_after_qemu_io_writes_still_matches_info()
    {
        string path = Create("written.qcow2", "1G");
        Qemu.IoOk("-c", "write -P 0xab 0 3M", "-c", "write -P 0xcd 700M 64k", path);
        AssertMatchesInfo(path);
    }
}
