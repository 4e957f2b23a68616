using System.Buffers.Binary;

namespace QcowActors.Format.Tests.Bitmaps;

public sealed class BitmapTableTests
{
    private const int ClusterBits = 16;
    private const long FileLength = 1L << 30;

    [Theory]
    // disk, granularity bits, cluster bits, bits, entries — worked out by hand:
    [InlineData(64L << 20, 16, 16, 1024L, 1)]               // 1024 bits = 128 bytes: one cluster
    [InlineData(1L << 40, 16, 16, 1L << 24, 32)]            // 16 Mi bits = 2 MiB = 32 clusters of 64 KiB
    [InlineData((1L << 20) + 1, 9, 9, 2049L, 1)]            // 2049 bits = 257 bytes: one 512-byte cluster
    [InlineData((2L << 20) + 1, 9, 9, 4097L, 2)]            // 4097 bits = 513 bytes: two
    [InlineData(2L << 20, 9, 9, 4096L, 1)]                  // exactly 512 bytes: one
    [InlineData(1L, 31, 21, 1L, 1)]
    [InlineData(0L, 16, 16, 0L, 0)]
    public void BitsFor_and_EntriesFor_match_hand_computed_sizes(long disk, int granularityBits, int clusterBits, long bits, int entries)
    {
        Assert.Equal(bits, BitmapTable.BitsFor(disk, granularityBits));
        Assert.Equal(entries, BitmapTable.EntriesFor(disk, granularityBits, clusterBits));
    }

    /// <summary>
    /// QEMU sizes the table as size_to_clusters(serialization size), and serialises whole 64-bit
    /// words: clusters of 8 × ceil(bits / 64) bytes. Checked on random sizes (fixed seed).
    /// </summary>
    [Fact]
    public void EntriesFor_agrees_with_qemus_word_based_formula()
    {
        const int Seed = 20240605;
        var random = new Random(Seed);
        for (int i = 0; i < 20_000; i++)
        {
            long disk = random.NextInt64(0, 1L << 44) >> random.Next(0, 30);
            int granularityBits = random.Next(9, 32);
            int clusterBits = random.Next(9, 22);
            long granularity = 1L << granularityBits, cluster = 1L << clusterBits;
            long bits = (disk + granularity - 1) / granularity;
            long serialized = (bits + 63) / 64 * 8;
            long qemu = (serialized + cluster - 1) / cluster;
            Assert.True(qemu == BitmapTable.EntriesFor(disk, granularityBits, clusterBits),
                $"seed {Seed}: disk {disk}, granularity_bits {granularityBits}, cluster_bits {clusterBits}: QEMU {qemu}");
        }
    }

    [Fact]
    public void CheckFits_refuses_what_qemu_refuses_to_create()
    {
        BitmapTable.CheckFits(1L << 40, 16, 16); // 2 MiB of bitmap
        Assert.Equal("granularity_bits", Assert.Throws<QcowFormatException>(() => BitmapTable.CheckFits(1L << 30, 8, 16)).Field);
        Assert.Equal("granularity_bits", Assert.Throws<QcowFormatException>(() => BitmapTable.CheckFits(1L << 30, 32, 16)).Field);
        // 4 TiB at 512-byte granularity: 2^33 bits = 1 GiB of bitmap, over 512 MiB.
        var e = Assert.Throws<QcowFormatException>(() => BitmapTable.CheckFits(4L << 40, 9, 16));
        Assert.Equal(QcowProblem.LimitExceeded, e.Problem);
        BitmapTable.CheckFits(2L << 40, 9, 16); // exactly 512 MiB: allowed
    }

    [Fact]
    public void Decode_reads_zero_ones_and_data_entries()
    {
        Assert.Equal(BitmapTableEntry.Zeros, BitmapTable.Decode(0, ClusterBits, FileLength));
        Assert.Equal(BitmapTableEntry.Ones, BitmapTable.Decode(1, ClusterBits, FileLength));
        var data = BitmapTable.Decode(0x0000_0000_0123_0000, ClusterBits, FileLength);
        Assert.Equal(BitmapTableEntryKind.Data, data.Kind);
        Assert.Equal(0x123_0000, data.Offset);
    }

    public static TheoryData<int> ReservedBits()
    {
        var bits = new TheoryData<int>();
        for (int b = 1; b <= 8; b++) bits.Add(b);
        for (int b = 56; b <= 63; b++) bits.Add(b);
        return bits;
    }

    [Theory]
    [MemberData(nameof(ReservedBits))]
    public void Decode_refuses_reserved_bits(int bit)
    {
        Assert.Throws<QcowFormatException>(() => BitmapTable.Decode(1UL << bit, ClusterBits, FileLength));
        Assert.Throws<QcowFormatException>(() => BitmapTable.Decode(0x10000 | (1UL << bit), ClusterBits, FileLength));
    }

    [Theory]
    [InlineData(0x10001UL)]             // an offset with the all-ones bit
    [InlineData(0x10200UL)]             // 512-aligned, not cluster aligned
    [InlineData(0x4000_0000UL)]         // at the end of the 1 GiB file
    [InlineData(0x00FF_FFFF_FFFF_0000UL)] // far past it
    public void Decode_refuses_bad_data_offsets(ulong raw)
    {
        var e = Assert.Throws<QcowFormatException>(() => BitmapTable.Decode(raw, ClusterBits, FileLength));
        Assert.Equal("bitmap_table", e.Field);
        Assert.Equal(QcowProblem.Invalid, e.Problem);
    }

    [Fact]
    public void Encode_is_the_inverse_of_Decode()
    {
        foreach (ulong raw in new ulong[] { 0, 1, 0x10000, 0x3FFF_0000 })
            Assert.Equal(raw, BitmapTable.Decode(raw, ClusterBits, FileLength).ToRaw());
        Assert.Throws<ArgumentException>(() => BitmapTable.Encode(BitmapTableEntry.Data(0)));
        Assert.Throws<ArgumentException>(() => BitmapTable.Encode(BitmapTableEntry.Data(0x10100)));
    }

    [Fact]
    public void Entries_are_big_endian_u64s()
    {
        ulong[] entries = [0x10000, 1, 0, 0x0001_0203_0405_0000];
        var bytes = new byte[32];
        BitmapTable.WriteEntries(entries, bytes);
        Assert.Equal(new byte[] { 0, 0, 0, 0, 0, 1, 0, 0 }, bytes[..8]);
        Assert.Equal(1, bytes[15]);
        Assert.Equal(0x0001_0203_0405_0000UL, BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(24)));
        Assert.Equal(entries, BitmapTable.ParseEntries(bytes));
        Assert.Throws<ArgumentException>(() => BitmapTable.ParseEntries(new byte[12]));
    }
}
