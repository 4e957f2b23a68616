namespace QcowActors.Format;

/// <summary>An L1 table entry: bits 9..55 = L2 table offset, bit 63 = COPIED (refcount exactly 1).</summary>
public readonly record struct L1Entry(ulong Raw)
{
    public const ulong CopiedFlag = 1UL << 63;
    public const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00UL;
    /// <summary>Bits that must be zero (0..8 and 56..62); a set one means a corrupt entry.</summary>
    public const ulong ReservedMask = ~(CopiedFlag | OffsetMask);

    public static L1Entry From(ulong raw) => new(raw);
    public static L1Entry Create(long l2Offset, bool copied) => new(((ulong)l2Offset & OffsetMask) | (copied ? CopiedFlag : 0));
    public ulong ToRaw() => Raw;

    public long L2Offset => (long)(Raw & OffsetMask);
    public bool Copied => (Raw & CopiedFlag) != 0;
    public bool IsUnallocated => L2Offset == 0;
}
