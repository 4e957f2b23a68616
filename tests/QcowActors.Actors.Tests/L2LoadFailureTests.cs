using System.Buffers.Binary;
using QcowActors.Actors.Service;
using Xunit;

namespace QcowActors.Actors.Tests;

/// <summary>An L2 table that cannot be read gives 503-style errors, never a hang, and works once the disk recovers.</summary>
public sealed class L2LoadFailureTests() : EngineTestBase(new ReadFaultFileSystem())
{
    private ReadFaultFileSystem Faults => (ReadFaultFileSystem)FileSystem;

    private long L2OffsetOfTable0(string path)
    {
        using var f = File.OpenRead(path);
        var header = new byte[48];
        f.ReadExactly(header);
        long l1 = (long)BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(40));
        var entry = new byte[8];
        f.Position = l1;
        f.ReadExactly(entry);
        return (long)(BinaryPrimitives.ReadUInt64BigEndian(entry) & 0x00FF_FFFF_FFFF_FE00UL);
    }

    [Fact]
    public async Task Reads_and_writes_fail_cleanly_while_an_L2_table_is_unreadable_and_recover_after()
    {
        string path = ImagePath("flaky");
        Qemu("qemu-img", "create", "-f", "qcow2", path, "64M");
        Qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x5c 0 1M", path);
        Qemu("qemu-img", "snapshot", "-c", "s1", path); // the table is now shared: a write must copy it
        Faults.FailReadsAt = L2OffsetOfTable0(path);

        var read = await Assert.ThrowsAsync<ImageException>(() => ReadAsync("flaky", 0, 4096));
        Assert.Equal(ImageError.Unavailable, read.Error);
        var write = await Assert.ThrowsAsync<ImageException>(() => Service.WriteAsync("flaky", 4096, new byte[] { 1, 2, 3 }, default));
        Assert.Equal(ImageError.Unavailable, write.Error);
        await Service.FlushAsync("flaky", default); // no table left half-moved, no flush stuck behind it

        Faults.FailReadsAt = -1;
        Assert.All(await ReadAsync("flaky", 0, 4096), b => Assert.Equal(0x5c, b));
        await Service.WriteAsync("flaky", 4096, new byte[] { 1, 2, 3 }, default);
        await Service.FlushAsync("flaky", default);
        Assert.Equal(new byte[] { 1, 2, 3, 0x5c }, await ReadAsync("flaky", 4096, 4));
        var (exit, output) = QemuCheck(path);
        Assert.True(exit == 0, output);
    }
}
