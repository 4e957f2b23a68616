namespace QcowActors.Format.Tests;

public sealed class RefcountBlockTests
{
    private const int BlockBytes = 512;

    public static TheoryData<int> Orders => new() { 0, 1, 2, 3, 4, 5, 6 };

    [Fact]
    public void One_bit_block_for_21_used_clusters_starts_ff_ff_1f()
    {
        var block = new byte[BlockBytes];
        for (int i = 0; i < 21; i++)
            RefcountBlock.Set(block, i, refcountOrder: 0, 1);
        Assert.Equal(new byte[] { 0xff, 0xff, 0x1f, 0 }, block[..4]);
    }

    [Fact]
    public void Sub_byte_entries_pack_least_significant_bits_first()
    {
        var block = new byte[BlockBytes];
        RefcountBlock.Set(block, 0, refcountOrder: 1, 1);
        RefcountBlock.Set(block, 1, refcountOrder: 1, 2);
        RefcountBlock.Set(block, 3, refcountOrder: 1, 3);
        Assert.Equal(0b11_00_10_01, block[0]);
        RefcountBlock.Set(block, 2, refcountOrder: 2, 0xA); // nibble 2 = low half of byte 1
        RefcountBlock.Set(block, 3, refcountOrder: 2, 0x5);
        Assert.Equal(0x5A, block[1]);
    }

    [Theory]
    [InlineData(3, new byte[] { 0x00, 0x07 })]
    [InlineData(4, new byte[] { 0x00, 0x00, 0x01, 0x02 })]
    [InlineData(5, new byte[] { 0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04 })]
    public void Wide_entries_are_big_endian(int order, byte[] expectedStart)
    {
        var block = new byte[BlockBytes];
        ulong value = order switch { 3 => 0x07, 4 => 0x0102, _ => 0x01020304 };
        RefcountBlock.Set(block, 1, order, value);
        Assert.Equal(expectedStart, block[..expectedStart.Length]);
        Assert.Equal(value, RefcountBlock.Get(block, 1, order));
    }

    [Fact]
    public void Sixty_four_bit_entries_hold_ulong_max()
    {
        var block = new byte[BlockBytes];
        RefcountBlock.Set(block, 63, 6, ulong.MaxValue);
        Assert.Equal(ulong.MaxValue, RefcountBlock.Get(block, 63, 6));
        Assert.All(block[^8..], b => Assert.Equal(0xff, b));
        Assert.Equal(0UL, RefcountBlock.Get(block, 62, 6));
    }

    [Theory]
    [MemberData(nameof(Orders))]
    public void Every_entry_keeps_its_value_and_leaves_neighbours_alone(int order)
    {
        var block = new byte[BlockBytes];
        long entries = RefcountBlock.EntriesIn(BlockBytes, order);
        Assert.Equal(BlockBytes * 8L >> order, entries);
        ulong max = RefcountBlock.MaxValue(order);
        // Fill with a pattern that differs between neighbours, then overwrite every third with max.
        for (long i = 0; i < entries; i++)
            RefcountBlock.Set(block, i, order, Pattern(i, max));
        for (long i = 0; i < entries; i += 3)
            RefcountBlock.Set(block, i, order, max);
        for (long i = 0; i < entries; i++)
            Assert.Equal(i % 3 == 0 ? max : Pattern(i, max), RefcountBlock.Get(block, i, order));
    }

    [Theory]
    [MemberData(nameof(Orders))]
    public void Max_value_is_all_ones_of_the_width(int order)
    {
        int bits = 1 << order;
        ulong expected = bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;
        Assert.Equal(expected, RefcountBlock.MaxValue(order));
        var block = new byte[BlockBytes];
        RefcountBlock.Set(block, 0, order, expected);
        Assert.Equal(expected, RefcountBlock.Get(block, 0, order));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Set_rejects_values_above_max(int order)
    {
        var block = new byte[BlockBytes];
        Assert.Throws<ArgumentOutOfRangeException>(() => RefcountBlock.Set(block, 0, order, RefcountBlock.MaxValue(order) + 1));
        Assert.All(block, b => Assert.Equal(0, b));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(BlockBytes * 8 / 16)]
    public void Get_and_set_reject_indexes_outside_the_block(long index)
    {
        var block = new byte[BlockBytes];
        Assert.Throws<ArgumentOutOfRangeException>(() => RefcountBlock.Get(block, index, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => RefcountBlock.Set(block, index, 4, 1));
    }

    /// <summary>Fibonacci hashing constant: spreads neighbouring indexes over all bit patterns.</summary>
    private const ulong Mixer = 0x9E3779B97F4A7C15UL;

    private static ulong Pattern(long index, ulong max) => ((ulong)index * Mixer + 1) & max;
}
