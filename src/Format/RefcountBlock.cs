using System.Buffers.Binary;

namespace QcowActors.Format;

/// <summary>
/// Reads and writes entries of a refcount block of any width 1..64 bits (order 0..6). Entries of
/// 8 bits and more are big-endian of that width; narrower ones pack least-significant-bit first.
/// </summary>
public static class RefcountBlock
{
    /// <summary>log2 of the bits in a byte.</summary>
    private const int BitsPerByteShift = 3;
    private const int BitInByteMask = (1 << BitsPerByteShift) - 1;
    private const int Order8 = 3;
    private const int Order16 = 4;
    private const int Order32 = 5;
    private const int Order64 = 6;

    public static ulong MaxValue(int refcountOrder) => refcountOrder == Order64 ? ulong.MaxValue : (1UL << (1 << refcountOrder)) - 1;

    /// <summary>Number of entries a block of <paramref name="blockBytes"/> bytes holds.</summary>
    public static long EntriesIn(int blockBytes, int refcountOrder) => ((long)blockBytes << BitsPerByteShift) >> refcountOrder;

    public static ulong Get(ReadOnlySpan<byte> block, long index, int refcountOrder)
    {
        CheckIndex(block.Length, index, refcountOrder);
        int i = (int)index;
        switch (refcountOrder)
        {
            case Order8: return block[i];
            case Order16: return BinaryPrimitives.ReadUInt16BigEndian(block[(i << 1)..]);
            case Order32: return BinaryPrimitives.ReadUInt32BigEndian(block[(i << 2)..]);
            case Order64: return BinaryPrimitives.ReadUInt64BigEndian(block[(i << 3)..]);
            default:
                int bit = i << refcountOrder;
                int mask = (1 << (1 << refcountOrder)) - 1;
                return (ulong)((block[bit >> BitsPerByteShift] >> (bit & BitInByteMask)) & mask);
        }
    }

    /// <summary>Throws ArgumentOutOfRangeException when value exceeds MaxValue(refcountOrder).</summary>
    public static void Set(Span<byte> block, long index, int refcountOrder, ulong value)
    {
        CheckIndex(block.Length, index, refcountOrder);
        if (value > MaxValue(refcountOrder))
            throw new ArgumentOutOfRangeException(nameof(value), value,
                $"a refcount of {1 << refcountOrder} bits holds at most {MaxValue(refcountOrder)}");
        int i = (int)index;
        switch (refcountOrder)
        {
            case Order8: block[i] = (byte)value; break;
            case Order16: BinaryPrimitives.WriteUInt16BigEndian(block[(i << 1)..], (ushort)value); break;
            case Order32: BinaryPrimitives.WriteUInt32BigEndian(block[(i << 2)..], (uint)value); break;
            case Order64: BinaryPrimitives.WriteUInt64BigEndian(block[(i << 3)..], value); break;
            default:
                int bit = i << refcountOrder;
                int shift = bit & BitInByteMask;
                int mask = ((1 << (1 << refcountOrder)) - 1) << shift;
                ref byte b = ref block[bit >> BitsPerByteShift];
                b = (byte)((b & ~mask) | (((int)value << shift) & mask));
                break;
        }
    }

    private static void CheckIndex(int blockBytes, long index, int refcountOrder)
    {
        if ((uint)refcountOrder > Order64)
            throw new ArgumentOutOfRangeException(nameof(refcountOrder), refcountOrder, "refcount_order is 0..6");
        if ((ulong)index >= (ulong)EntriesIn(blockBytes, refcountOrder))
            throw new ArgumentOutOfRangeException(nameof(index), index, "the index lies outside the refcount block");
    }
}
