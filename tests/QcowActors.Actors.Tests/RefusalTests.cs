using QcowActors.Actors.Service;
using Xunit;

namespace QcowActors.Actors.Tests;

public sealed class DiskFullTests() : EngineTestBase(new FullDiskFileSystem())
{
    [Fact]
    public async Task A_write_on_a_full_disk_fails_as_disk_full_and_leaves_the_image_consistent()
    {
        var fs = (FullDiskFileSystem)FileSystem;
        await Service.CreateAsync("full", 1L << 30, null, null, default);
        var data = Enumerable.Repeat((byte)0x5a, 100_000).ToArray();
        await Service.WriteAsync("full", 0, data, default);
        await Service.FlushAsync("full", default);

        fs.Full = true;
        var e = await Assert.ThrowsAsync<ImageException>(() => Service.WriteAsync("full", 50_000_000, new byte[300_000], default));
        Assert.Equal(ImageError.DiskFull, e.Error);
        fs.Full = false;

        await Service.FlushAsync("full", default);
        var (exit, output) = QemuCheck(ImagePath("full"));
        Assert.True(exit == 0, output);
        Assert.Equal(data, await ReadAsync("full", 0, data.Length));
        Assert.All(await ReadAsync("full", 50_000_000, 1000), b => Assert.Equal(0, b));
    }
}

/// <summary>Images using features the server does not serve: a clear 422 naming the feature; what can be served still is.</summary>
public sealed class RefusalTests : EngineTestBase
{
    [Fact]
    public async Task Writes_to_an_image_with_bitmaps_mark_them_and_reads_work()
    {
        string path = ImagePath("bm");
        Qemu("qemu-img", "create", "-f", "qcow2", path, "64M");
        Qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x42 0 64k", path);
        Qemu("qemu-img", "bitmap", "--add", path, "b0");
        Qemu("qemu-img", "bitmap", "--add", "--disable", path, "off");
        await Service.WriteAsync("bm", 70_000, new byte[10], default);
        await Service.ZeroAsync("bm", 10L << 20, 1L << 20, default);
        var bitmaps = await Service.ListBitmapsAsync("bm", default);
        Assert.Equal(65536 + (1L << 20), bitmaps.Single(b => b.Name == "b0").DirtyBytes);
        Assert.Equal(0, bitmaps.Single(b => b.Name == "off").DirtyBytes);
        Assert.All(await ReadAsync("bm", 0, 65536), b => Assert.Equal(0x42, b));
    }

    [Fact]
    public async Task An_overlay_reads_a_backing_image_named_by_an_absolute_path_in_the_store_and_one_outside_is_refused_with_info_working()
    {
        Qemu("qemu-img", "create", "-f", "qcow2", ImagePath("base"), "64M");
        Qemu("qemu-io", "-c", "write -P 0x5c 0 64k", ImagePath("base"));
        Qemu("qemu-img", "create", "-f", "qcow2", "-b", ImagePath("base"), "-F", "qcow2", ImagePath("overlay"));
        var info = await Service.GetInfoAsync("overlay", default);
        Assert.Equal(ImagePath("base"), info.Backing);
        Assert.All(await ReadAsync("overlay", 0, 4096), b => Assert.Equal(0x5c, b));

        string outside = Path.Combine(Path.GetTempPath(), $"outside-{Guid.NewGuid():N}.qcow2");
        try
        {
            Qemu("qemu-img", "create", "-f", "qcow2", outside, "64M");
            Qemu("qemu-img", "create", "-f", "qcow2", "-b", outside, "-F", "qcow2", ImagePath("escapes"));
            Assert.Equal(outside, (await Service.GetInfoAsync("escapes", default)).Backing);
            var e = await Assert.ThrowsAsync<ImageException>(() => Service.PlanReadAsync("escapes", 0, 512, default));
            Assert.Equal("backing file", e.Feature);
            Assert.Contains("outside the store", e.Message);
        }
        finally
        {
            File.Delete(outside);
        }
    }

    [Fact]
    public async Task A_compressed_cluster_reads_inflated_and_a_partial_write_keeps_the_rest_of_it()
    {
        string raw = Path.Combine(StoreDirectory, "src.raw");
        Qemu("qemu-img", "create", "-f", "raw", raw, "1M");
        Qemu("qemu-io", "-f", "raw", "-c", "write -P 0x33 0 256k", raw);
        Qemu("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", raw, ImagePath("comp"));
        Assert.All(await ReadAsync("comp", 65536 - 100, 4096), b => Assert.Equal(0x33, b));
        Assert.All(await ReadAsync("comp", 512 * 1024, 4096), b => Assert.Equal(0, b));
        await Service.WriteAsync("comp", 70000, new byte[] { 7, 7 }, default);
        var cluster = await ReadAsync("comp", 65536, 65536);
        Assert.Equal([7, 7], cluster[(70000 - 65536)..(70002 - 65536)]);
        Assert.Equal(65534, cluster.Count(b => b == 0x33));
    }

    [Fact]
    public async Task An_image_marked_corrupt_is_read_only_with_a_clear_error()
    {
        string path = ImagePath("bad");
        Qemu("qemu-img", "create", "-f", "qcow2", path, "64M");
        SetIncompatibleBit(path, 1); // corrupt
        var e = await Assert.ThrowsAsync<ImageException>(() => Service.WriteAsync("bad", 0, new byte[10], default));
        Assert.Equal(ImageError.Unsupported, e.Error);
        Assert.Contains("corrupt", e.Message);
        Assert.All(await ReadAsync("bad", 0, 512), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task An_image_with_the_dirty_bit_gets_its_refcounts_rebuilt_before_the_first_write()
    {
        string path = ImagePath("dirty");
        Qemu("qemu-img", "create", "-f", "qcow2", path, "64M");
        Qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 1M", path);
        ZeroRefcountOf(path, clusterIndex: 5); // a data cluster now has a wrong (zero) count
        SetIncompatibleBit(path, 0); // dirty: refcounts may be wrong
        Assert.True((await Service.GetInfoAsync("dirty", default)).Dirty is false);
        await Service.WriteAsync("dirty", 2 << 20, Enumerable.Repeat((byte)0x62, 70_000).ToArray(), default);
        await Service.FlushAsync("dirty", default);
        var (exit, output) = QemuCheck(path);
        Assert.True(exit == 0, output);
        Assert.All(await ReadAsync("dirty", 0, 1 << 20), b => Assert.Equal(0x61, b));
    }

    private static void SetIncompatibleBit(string path, int bit)
    {
        using var f = File.Open(path, FileMode.Open, FileAccess.ReadWrite);
        var field = new byte[8];
        f.Position = 72;
        f.ReadExactly(field);
        ulong value = System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(field) | (1UL << bit);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(field, value);
        f.Position = 72;
        f.Write(field);
    }

    /// <summary>Default layout (64 KiB clusters, 16-bit counts): the first refcount block is at 0x20000.</summary>
    private static void ZeroRefcountOf(string path, int clusterIndex)
    {
        using var f = File.Open(path, FileMode.Open, FileAccess.ReadWrite);
        f.Position = 0x20000 + clusterIndex * 2;
        f.Write(new byte[2]);
    }
}
