using System.Buffers.Binary;
using System.Text;
using QcowActors.Format.Tests.Support;

namespace QcowActors.Format.Tests;

public sealed class SnapshotTableTests : IDisposable
{
    private const int FixedBytes = 40;
    private const int ExtraDataSizeOffset = 36;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>One entry as qcow2.txt lays it out, padded to 8 when <paramref name="pad"/>.</summary>
    private static byte[] Entry(long l1Offset, uint l1Size, string id, string name, byte[] extra, bool pad = true)
    {
        byte[] idBytes = Encoding.UTF8.GetBytes(id), nameBytes = Encoding.UTF8.GetBytes(name);
        int length = FixedBytes + extra.Length + idBytes.Length + nameBytes.Length;
        var entry = new byte[pad ? (length + 7) / 8 * 8 : length];
        BinaryPrimitives.WriteUInt64BigEndian(entry, (ulong)l1Offset);
        BinaryPrimitives.WriteUInt32BigEndian(entry.AsSpan(8), l1Size);
        BinaryPrimitives.WriteUInt16BigEndian(entry.AsSpan(12), (ushort)idBytes.Length);
        BinaryPrimitives.WriteUInt16BigEndian(entry.AsSpan(14), (ushort)nameBytes.Length);
        BinaryPrimitives.WriteUInt32BigEndian(entry.AsSpan(ExtraDataSizeOffset), (uint)extra.Length);
        extra.CopyTo(entry, FixedBytes);
        idBytes.CopyTo(entry, FixedBytes + extra.Length);
        nameBytes.CopyTo(entry, FixedBytes + extra.Length + idBytes.Length);
        return entry;
    }

    private static byte[] V3Extra(long diskSize)
    {
        var extra = new byte[24]; // vm_state_size_large, disk_size, and a field this build does not know
        BinaryPrimitives.WriteUInt64BigEndian(extra.AsSpan(8), (ulong)diskSize);
        return extra;
    }

    [Fact]
    public void Parse_reads_the_table_qemu_img_snapshot_writes()
    {
        string path = _dir.File("snap.qcow2");
        Qemu.ImgOk("create", "-q", "-f", "qcow2", path, "1G");
        Qemu.IoOk("-c", "write -P 0x11 0 1M", path);
        Qemu.ImgOk("snapshot", "-c", "s1", path);
        Qemu.ImgOk("snapshot", "-c", "second", path);

        var header = ImageFiles.ParseHeader(path);
        byte[] table = ImageFiles.ReadAt(path, header.SnapshotsOffset, 1 << 20);
        var (entries, length) = SnapshotTable.Parse(table, header.NbSnapshots, (int)header.Version);

        var expected = Qemu.Info(path).GetProperty("snapshots").EnumerateArray().ToList();
        Assert.Equal(expected.Count, entries.Count);
        for (int i = 0; i < entries.Count; i++)
        {
            Assert.Equal(expected[i].GetProperty("id").GetString(), entries[i].Id);
            Assert.Equal(expected[i].GetProperty("name").GetString(), entries[i].Name);
            Assert.Equal(header.Size, entries[i].DiskSize);
            Assert.Equal(header.L1Size, entries[i].L1Size);
        }
        Assert.Equal("s1", entries[0].Name);
        // The first entry starts the table: its l1_table_offset is the first 8 bytes.
        Assert.Equal((long)BinaryPrimitives.ReadUInt64BigEndian(table), entries[0].L1TableOffset);
        Assert.Equal(0, entries[0].L1TableOffset % header.ClusterSize);
        Assert.NotEqual(header.L1TableOffset, entries[0].L1TableOffset);
        // qemu-img writes the table without padding after the last entry and ends the file there.
        Assert.Equal(new FileInfo(path).Length - header.SnapshotsOffset, length);
    }

    [Fact]
    public void Parse_pads_every_entry_but_the_last_to_8_bytes()
    {
        byte[] first = Entry(0x40000, 2, "1", "a", V3Extra(1 << 30));
        byte[] second = Entry(0x50000, 3, "2", "bb", V3Extra(2L << 30), pad: false);
        var (entries, length) = SnapshotTable.Parse([.. first, .. second], 2, 3);
        Assert.Equal(2, entries.Count);
        Assert.Equal(new SnapshotEntry("2", "bb", 0x50000, 3, 2L << 30) { Icount = 0, UnknownExtra = entries[1].UnknownExtra }, entries[1]); // its 24 bytes of extra data hold icount 0
        Assert.Equal(first.Length + second.Length, length);
        Assert.Equal(0, first.Length % 8);
    }

    [Fact]
    public void Parse_of_a_v2_entry_without_extra_data_has_unknown_disk_size()
    {
        var (entries, _) = SnapshotTable.Parse(Entry(0x40000, 2, "1", "old", []), 1, 2);
        Assert.Equal(-1, entries[0].DiskSize);
    }

    [Fact]
    public void Parse_of_zero_entries_is_empty()
    {
        var (entries, length) = SnapshotTable.Parse([], 0, 3);
        Assert.Empty(entries);
        Assert.Equal(0, length);
    }

    [Fact]
    public void Parse_rejects_v3_entries_with_less_than_16_bytes_of_extra_data()
    {
        var e = Assert.Throws<QcowFormatException>(() => SnapshotTable.Parse(Entry(0x40000, 2, "1", "x", new byte[8]), 1, 3));
        Assert.Equal(QcowProblem.Invalid, e.Problem);
    }

    [Theory]
    [InlineData(10)] // inside the fixed part
    [InlineData(FixedBytes + 20)] // inside the extra data
    public void Parse_rejects_an_entry_running_past_the_table(int keep)
    {
        byte[] entry = Entry(0x40000, 2, "1", "name", V3Extra(1 << 30));
        var e = Assert.Throws<QcowFormatException>(() => SnapshotTable.Parse(entry.AsSpan(0, keep), 1, 3));
        Assert.Equal(QcowProblem.Invalid, e.Problem);
    }

    [Fact]
    public void Parse_rejects_more_entries_than_the_table_holds()
    {
        byte[] entry = Entry(0x40000, 2, "1", "name", V3Extra(1 << 30));
        Assert.Throws<QcowFormatException>(() => SnapshotTable.Parse(entry, 2, 3));
    }

    [Fact]
    public void Parse_rejects_a_name_that_is_not_utf8()
    {
        byte[] entry = Entry(0x40000, 2, "1", "ab", V3Extra(1 << 30));
        entry[FixedBytes + 24 + 1] = 0xff;
        Assert.Throws<QcowFormatException>(() => SnapshotTable.Parse(entry, 1, 3));
    }
}
