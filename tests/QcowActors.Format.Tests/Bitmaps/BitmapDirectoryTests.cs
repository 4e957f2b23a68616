using System.Buffers.Binary;
using System.Text;

namespace QcowActors.Format.Tests.Bitmaps;

public sealed class BitmapDirectoryTests
{
    private const int ClusterBits = 16;
    private const long DiskSize = 64L << 20;  // 1024 granules of 64 KiB: 128 bytes, one table entry
    private const long FileLength = 16L << 20;

    /// <summary>One entry as qcow2.txt lays it out: 24 fixed bytes, extra data, name, zero padding to 8.</summary>
    private static byte[] Entry(ulong tableOffset, uint tableSize, uint flags, string name, byte granularityBits = 16,
        byte type = 1, byte[]? extra = null, byte[]? nameBytes = null)
    {
        extra ??= [];
        nameBytes ??= Encoding.UTF8.GetBytes(name);
        int length = 24 + extra.Length + nameBytes.Length;
        var entry = new byte[(length + 7) / 8 * 8];
        BinaryPrimitives.WriteUInt64BigEndian(entry, tableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(entry.AsSpan(8), tableSize);
        BinaryPrimitives.WriteUInt32BigEndian(entry.AsSpan(12), flags);
        entry[16] = type;
        entry[17] = granularityBits;
        BinaryPrimitives.WriteUInt16BigEndian(entry.AsSpan(18), (ushort)nameBytes.Length);
        BinaryPrimitives.WriteUInt32BigEndian(entry.AsSpan(20), (uint)extra.Length);
        extra.CopyTo(entry, 24);
        nameBytes.CopyTo(entry, 24 + extra.Length);
        return entry;
    }

    private static IReadOnlyList<BitmapDirectoryEntry> Parse(byte[] directory, uint count)
        => BitmapDirectory.Parse(directory, count, DiskSize, ClusterBits, FileLength);

    private static QcowFormatException Refused(byte[] directory, uint count = 1)
        => Assert.Throws<QcowFormatException>(() => Parse(directory, count));

    /// <summary>Names of 1, 7, 8, 9 and 13 bytes (one with 2-byte UTF-8), 40 bytes of extra data: every padding case.</summary>
    private static byte[][] SeveralEntries() =>
    [
        Entry(0x100000, 1, 2, "a"),
        Entry(0x110000, 1, 0, "backup7"),
        Entry(0x120000, 1, 2, "eight888"),
        Entry(0x130000, 1, 2 | 4, "nine_9999", extra: Enumerable.Range(1, 40).Select(i => (byte)i).ToArray()),
        Entry(0x140000, 1, 1, "größe-täglich", granularityBits: 20),
    ];

    [Fact]
    public void Parse_reads_several_entries_and_Write_reproduces_the_bytes()
    {
        byte[][] parts = SeveralEntries();
        byte[] directory = parts.SelectMany(p => p).ToArray();
        var entries = Parse(directory, (uint)parts.Length);

        Assert.Equal(["a", "backup7", "eight888", "nine_9999", "größe-täglich"], entries.Select(e => e.Name));
        Assert.Equal(parts.Select(p => p.Length), entries.Select(e => e.EncodedSize));
        Assert.Equal(0x130000, entries[3].TableOffset);
        Assert.Equal(BitmapFlags.Auto | BitmapFlags.ExtraDataCompatible, entries[3].Flags);
        Assert.Equal(Enumerable.Range(1, 40).Select(i => (byte)i), entries[3].ExtraData);
        Assert.True(entries[4].InUse);
        Assert.False(entries[4].Auto);
        Assert.Equal(1L << 20, entries[4].Granularity);
        Assert.True(entries[0].Auto);

        Assert.Equal(directory.Length, BitmapDirectory.SizeOf(entries));
        var written = new byte[directory.Length];
        BitmapDirectory.Write(entries, written);
        Assert.Equal(directory, written);
        Assert.Equal(entries, Parse(written, (uint)entries.Count));
    }

    [Fact]
    public void FlagsOffset_points_at_each_entrys_flags_field()
    {
        byte[][] parts = SeveralEntries();
        byte[] directory = parts.SelectMany(p => p).ToArray();
        var entries = Parse(directory, (uint)parts.Length);
        int start = 0;
        for (int i = 0; i < parts.Length; i++)
        {
            Assert.Equal(start + 12, BitmapDirectory.FlagsOffset(entries, i)); // flags are bytes 12..15 of an entry
            start += parts[i].Length;
        }

        byte[] copy = (byte[])directory.Clone();
        copy[BitmapDirectory.FlagsOffset(entries, 2) + 3] |= 1; // big-endian: bit 0 is in the last byte
        var flipped = Parse(copy, (uint)parts.Length);
        Assert.Equal([false, false, true, false, true], flipped.Select(e => e.InUse));
    }

    [Fact]
    public void A_1023_byte_name_is_accepted()
    {
        string name = new('n', 1023);
        Assert.Equal(name, Assert.Single(Parse(Entry(0x100000, 1, 0, name), 1)).Name);
    }

    [Theory]
    [InlineData(1u << 3)]
    [InlineData(1u << 31)]
    public void Reserved_flag_bits_are_refused(uint flag)
        => Assert.Equal("flags", Refused(Entry(0x100000, 1, flag | 2, "b")).Field);

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(255)]
    public void Types_other_than_dirty_tracking_are_refused(byte type)
        => Assert.Equal("type", Refused(Entry(0x100000, 1, 0, "b", type: type)).Field);

    [Theory]
    [InlineData(8)]
    [InlineData(32)]
    [InlineData(63)]
    public void Granularity_outside_9_to_31_bits_is_refused(byte granularityBits)
        => Assert.Equal("granularity_bits", Refused(Entry(0x100000, 1, 0, "b", granularityBits: granularityBits)).Field);

    [Theory]
    [InlineData(9)]
    [InlineData(31)]
    public void Granularity_at_the_edges_is_accepted(byte granularityBits)
    {
        // 64 MiB at 512 bytes: 131072 bits = 16 KiB, one 64 KiB cluster; at 2 GiB: 1 bit.
        Assert.Equal(granularityBits, Assert.Single(Parse(Entry(0x100000, 1, 0, "b", granularityBits: granularityBits), 1)).GranularityBits);
    }

    [Theory]
    [InlineData(0, "name_size")]
    [InlineData(1024, "name_size")]
    public void Name_sizes_of_0_and_1024_are_refused(int length, string field)
        => Assert.Equal(field, Refused(Entry(0x100000, 1, 0, new string('x', length))).Field);

    [Fact]
    public void Names_that_are_not_utf8_or_hold_a_nul_are_refused()
    {
        Assert.Equal("name", Refused(Entry(0x100000, 1, 0, "", nameBytes: [0x61, 0xC3])).Field);
        Assert.Equal("name", Refused(Entry(0x100000, 1, 0, "", nameBytes: [0x61, 0x00, 0x62])).Field);
    }

    [Fact]
    public void Duplicate_names_are_refused()
    {
        byte[] directory = [.. Entry(0x100000, 1, 0, "same"), .. Entry(0x110000, 1, 0, "other"), .. Entry(0x120000, 1, 0, "same")];
        var e = Refused(directory, 3);
        Assert.Equal("name", e.Field);
        Assert.Contains("same", e.Message);
    }

    [Fact]
    public void Extra_data_without_the_compatible_flag_is_refused()
    {
        var e = Refused(Entry(0x100000, 1, 2, "b", extra: [1, 2, 3]));
        Assert.Equal("extra_data_size", e.Field);
        Assert.Equal(QcowProblem.Unsupported, e.Problem);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(2u)]
    public void A_table_size_other_than_the_disk_needs_is_refused(uint tableSize)
        => Assert.Equal("bitmap_table_size", Refused(Entry(0x100000, tableSize, 2, "b")).Field);

    [Fact]
    public void An_in_use_bitmap_may_have_a_stale_table_size()
    {
        // QEMU never reads an in-use bitmap's data, so a table left from before a resize is fine.
        var entry = Assert.Single(Parse(Entry(0x100000, 3, 1, "b"), 1));
        Assert.Equal(3, entry.TableSize);
        Assert.Equal("bitmap_table_size", Refused(Entry(0x100000, 0, 1, "b")).Field); // but never 0
    }

    [Fact]
    public void A_table_over_qemus_512_MiB_limit_is_refused()
    {
        var e = Refused(Entry(0x100000, 8193, 1, "b")); // 8193 × 64 KiB > 512 MiB
        Assert.Equal("bitmap_table_size", e.Field);
        Assert.Equal(QcowProblem.LimitExceeded, e.Problem);
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(0x100200UL)]
    [InlineData(0x100008UL)]
    public void An_unaligned_or_zero_table_offset_is_refused(ulong offset)
        => Assert.Equal("bitmap_table_offset", Refused(Entry(offset, 1, 0, "b")).Field);

    [Fact]
    public void A_table_outside_the_file_is_refused()
    {
        Assert.Equal("bitmap_table_offset", Refused(Entry((ulong)FileLength, 1, 0, "b")).Field);
        // 3 entries (24 bytes) at 0x100000 in a file that ends 16 bytes after it.
        var e = Assert.Throws<QcowFormatException>(() => BitmapDirectory.Parse(Entry(0x100000, 3, 1, "b"), 1, DiskSize, ClusterBits, 0x100000 + 16));
        Assert.Equal("bitmap_table_offset", e.Field);
        BitmapDirectory.Parse(Entry(0x100000, 3, 1, "b"), 1, DiskSize, ClusterBits, 0x100000 + 24);
    }

    [Fact]
    public void The_entries_must_fill_the_directory_exactly()
    {
        byte[] two = [.. Entry(0x100000, 1, 0, "one"), .. Entry(0x110000, 1, 0, "two")];
        Assert.Equal("bitmap_directory_size", Refused(two, 1).Field);           // more bytes than nb_bitmaps entries
        Assert.Equal("bitmap_directory_size", Refused(two, 3).Field);           // fewer entries than nb_bitmaps
        Assert.Equal("bitmap_directory_size", Refused(two[..^8], 2).Field);     // last entry cut off
        Assert.Equal("bitmap_directory_size", Refused(two[..^1], 2).Field);     // last entry's padding cut off
        Assert.Equal("nb_bitmaps", Refused(two, 0).Field);
    }

    [Fact]
    public void Write_refuses_entries_qemu_could_not_read()
    {
        var buffer = new byte[4096];
        Assert.Throws<ArgumentException>(() => BitmapDirectory.Write([new BitmapDirectoryEntry(0x10000, 1, 0, 16, "", [])], buffer));
        Assert.Throws<ArgumentException>(() => BitmapDirectory.Write([new BitmapDirectoryEntry(0x10000, 1, 0, 8, "b", [])], buffer));
        Assert.Throws<ArgumentException>(() => BitmapDirectory.Write([new BitmapDirectoryEntry(0x10000, 1, (BitmapFlags)8, 16, "b", [])], buffer));
        Assert.Throws<ArgumentException>(() => BitmapDirectory.Write([new BitmapDirectoryEntry(0x10000, 1, 0, 16, "b", [])], new byte[31]));
    }
}
