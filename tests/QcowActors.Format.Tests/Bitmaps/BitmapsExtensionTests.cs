using System.Buffers.Binary;

namespace QcowActors.Format.Tests.Bitmaps;

public sealed class BitmapsExtensionTests
{
    private const int ClusterBits = 16;
    private const long FileLength = 1L << 30;

    /// <summary>The 24 bytes as qcow2.txt lays them out: nb_bitmaps u32, reserved u32, size u64, offset u64.</summary>
    private static byte[] Data(uint count, ulong size, ulong offset, uint reserved = 0, int length = BitmapsExtension.Length)
    {
        var data = new byte[Math.Max(length, 24)];
        BinaryPrimitives.WriteUInt32BigEndian(data, count);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4), reserved);
        BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(8), size);
        BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(16), offset);
        return data[..length];
    }

    private static QcowFormatException Refused(byte[] data, long fileLength = FileLength)
        => Assert.Throws<QcowFormatException>(() => BitmapsExtension.Parse(data, fileLength, ClusterBits));

    [Fact]
    public void Parse_reads_the_fields_and_ToBytes_writes_them_back()
    {
        byte[] data = Data(3, 96, 0x50000);
        var ext = BitmapsExtension.Parse(data, FileLength, ClusterBits);
        Assert.Equal(new BitmapsExtension(3, 96, 0x50000), ext);
        Assert.Equal(data, ext.ToBytes());
        var header = ext.ToExtension();
        Assert.Equal(0x23852875u, header.Type);
        Assert.Equal(data, header.Data);
    }

    [Fact]
    public void Parse_accepts_the_largest_values_qemu_accepts()
    {
        var ext = BitmapsExtension.Parse(Data(65535, 1024 * 65535, 0x10000), FileLength, ClusterBits);
        Assert.Equal(65535u, ext.Count);
        Assert.Equal(1024L * 65535, ext.DirectorySize);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(16)]
    [InlineData(23)]
    [InlineData(25)]
    [InlineData(32)]
    public void A_length_other_than_24_is_refused(int length)
    {
        byte[] data = new byte[length];
        if (length >= 24) Data(1, 32, 0x10000).CopyTo(data, 0);
        Assert.Equal("bitmaps_extension.length", Refused(data).Field);
    }

    [Fact]
    public void A_nonzero_reserved_field_is_refused()
        => Assert.Equal("bitmaps_extension.reserved", Refused(Data(1, 32, 0x10000, reserved: 1)).Field);

    [Theory]
    [InlineData(0u, QcowProblem.Invalid)]
    [InlineData(65536u, QcowProblem.LimitExceeded)]
    [InlineData(0xFFFF_FFFFu, QcowProblem.LimitExceeded)]
    public void Nb_bitmaps_outside_1_to_65535_is_refused(uint count, QcowProblem problem)
    {
        var e = Refused(Data(count, 32, 0x10000));
        Assert.Equal("nb_bitmaps", e.Field);
        Assert.Equal(problem, e.Problem);
        Assert.Contains(count.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(1024UL * 65535 + 1)]
    [InlineData(ulong.MaxValue)]
    public void A_directory_size_of_0_or_over_qemus_limit_is_refused(ulong size)
        => Assert.Equal("bitmap_directory_size", Refused(Data(1, size, 0x10000)).Field);

    [Theory]
    [InlineData(0UL)]
    [InlineData(0x10200UL)] // 512-aligned, not 64 KiB-aligned
    [InlineData(1UL << 57)] // cluster aligned, but past 2^56
    public void A_directory_offset_that_is_not_a_cluster_offset_is_refused(ulong offset)
        => Assert.Equal("bitmap_directory_offset", Refused(Data(1, 32, offset)).Field);

    [Fact]
    public void A_directory_past_the_end_of_the_file_is_refused()
    {
        Assert.Equal("bitmap_directory_offset", Refused(Data(1, 32, 0x20000), fileLength: 0x20000).Field);
        Assert.Equal("bitmap_directory_offset", Refused(Data(1, 40, 0x20000), fileLength: 0x20000 + 32).Field);
        BitmapsExtension.Parse(Data(1, 32, 0x20000), 0x20000 + 32, ClusterBits); // ends exactly at the end: fine
    }
}
