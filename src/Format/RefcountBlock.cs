namespace QcowActors.Format;

/// <summary>
/// Reads and writes entries of a refcount block of any width 1..64 bits (order 0..6). Entries of
/// 8 bits and more are big-endian of that width; narrower ones pack least-significant-bit first.
/// </summary>
public static class RefcountBlock
{
    public static ulong MaxValue(int refcountOrder) => refcountOrder == 6 ? ulong.MaxValue : (1UL << (1 << refcountOrder)) - 1;
    public static ulong Get(ReadOnlySpan<byte> block, long index, int refcountOrder) => throw new NotImplementedException();
    /// <summary>Throws ArgumentOutOfRangeException when value exceeds MaxValue(refcountOrder).</summary>
    public static void Set(Span<byte> block, long index, int refcountOrder, ulong value) => throw new NotImplementedException();
}
