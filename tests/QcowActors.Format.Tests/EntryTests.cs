namespace QcowActors.Format.Tests;

public sealed class EntryTests
{
    private const long HostOffset = 0x30000;
    private const ulong Bit63 = 1UL << 63;
    private const ulong Bit62 = 1UL << 62;

    [Fact]
    public void L1_entry_round_trips_offset_and_copied()
    {
        var entry = L1Entry.Create(HostOffset, copied: true);
        Assert.Equal(Bit63 | HostOffset, entry.ToRaw());
        var back = L1Entry.From(entry.ToRaw());
        Assert.Equal(HostOffset, back.L2Offset);
        Assert.True(back.Copied);
        Assert.False(back.IsUnallocated);
    }

    [Fact]
    public void L1_entry_of_zero_is_unallocated()
    {
        var entry = L1Entry.From(0);
        Assert.True(entry.IsUnallocated);
        Assert.False(entry.Copied);
    }

    [Fact]
    public void L1_reserved_mask_covers_bits_0_to_8_and_56_to_62()
    {
        for (int bit = 0; bit < 64; bit++)
        {
            bool reserved = bit <= 8 || bit is >= 56 and <= 62;
            Assert.Equal(reserved, (L1Entry.ReservedMask & (1UL << bit)) != 0);
        }
    }

    [Fact]
    public void L2_data_entry_round_trips()
    {
        var entry = L2Entry.Data(HostOffset, copied: true);
        Assert.Equal(Bit63 | HostOffset, entry.ToRaw());
        var back = L2Entry.From(entry.ToRaw());
        Assert.True(back.IsData);
        Assert.True(back.Copied);
        Assert.Equal(HostOffset, back.HostOffset);
        Assert.False(back.IsZero || back.IsCompressed || back.IsUnallocated);
    }

    [Fact]
    public void L2_zero_entry_without_offset_reads_zero_and_holds_no_cluster()
    {
        var entry = L2Entry.From(L2Entry.Zero(0, copied: true).ToRaw());
        Assert.Equal(1UL, entry.ToRaw()); // COPIED is meaningless without a cluster
        Assert.True(entry.IsZero);
        Assert.False(entry.IsData);
        Assert.Equal(0, entry.HostOffset);
    }

    [Fact]
    public void L2_preallocated_zero_entry_keeps_its_cluster()
    {
        var entry = L2Entry.From(L2Entry.Zero(HostOffset, copied: true).ToRaw());
        Assert.True(entry.IsZero);
        Assert.True(entry.Copied);
        Assert.Equal(HostOffset, entry.HostOffset);
        Assert.False(entry.IsData);
        Assert.False(entry.IsUnallocated);
    }

    [Fact]
    public void L2_unallocated_entries()
    {
        Assert.True(L2Entry.Unallocated.IsUnallocated);
        Assert.True(L2Entry.From(Bit63).IsUnallocated);
    }

    [Fact]
    public void L2_compressed_entry_has_no_standard_offset()
    {
        var entry = L2Entry.From(Bit62 | HostOffset | 1);
        Assert.True(entry.IsCompressed);
        Assert.False(entry.IsZero);
        Assert.False(entry.IsData);
        Assert.Equal(0, entry.HostOffset);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(9)]
    [InlineData(21)]
    public void Compressed_descriptor_splits_at_62_minus_cluster_bits_minus_8(int clusterBits)
    {
        int x = 62 - (clusterBits - 8);
        long offset = 0x12345 + ((1L << clusterBits) * 7);
        int sectors = (1 << (clusterBits - 8)) - 1; // the widest sector count the field holds
        ulong raw = Bit62 | ((ulong)sectors << x) | (ulong)offset;
        var descriptor = CompressedDescriptor.From(raw, clusterBits);
        Assert.Equal(offset, descriptor.HostOffset);
        Assert.Equal(sectors, descriptor.AdditionalSectors);
    }

    [Fact]
    public void Compressed_data_may_run_into_the_next_host_cluster()
    {
        const int ClusterBits = 16;
        long offset = (1L << ClusterBits) - 100; // 100 bytes before the end of cluster 0
        var descriptor = new CompressedDescriptor(offset, AdditionalSectors: 1);
        Assert.Equal(2 * 512 - (int)(offset & 511), descriptor.MaxCompressedLength);
        Assert.Equal((0L, 1L), descriptor.HostClusters(ClusterBits));
    }
}
