namespace QcowActors.Format;

/// <summary>
/// A standard L2 entry: bit 0 = reads as zero (v3), bits 9..55 = host cluster offset,
/// bit 62 = compressed (then the rest is a <see cref="CompressedDescriptor"/>), bit 63 = COPIED.
/// </summary>
public readonly record struct L2Entry(ulong Raw)
{
    public const ulong CopiedFlag = 1UL << 63;
    public const ulong CompressedFlag = 1UL << 62;
    public const ulong ZeroFlag = 1UL;
    public const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00UL;
    public static readonly L2Entry Unallocated = new(0);

    public static L2Entry From(ulong raw) => new(raw);
    public ulong ToRaw() => Raw;

    /// <summary>A normal data cluster at hostOffset; copied = its refcount is exactly 1.</summary>
    public static L2Entry Data(long hostOffset, bool copied) => new(((ulong)hostOffset & OffsetMask) | (copied ? CopiedFlag : 0));
    /// <summary>A v3 zero cluster; hostOffset 0 = no preallocation, else a preallocated (still referenced) cluster.</summary>
    public static L2Entry Zero(long hostOffset, bool copied) => new(((ulong)hostOffset & OffsetMask) | ZeroFlag | (copied && hostOffset != 0 ? CopiedFlag : 0));

    public bool Copied => (Raw & CopiedFlag) != 0;
    public bool IsCompressed => (Raw & CompressedFlag) != 0;
    /// <summary>Reads as zero (only meaningful for uncompressed entries).</summary>
    public bool IsZero => !IsCompressed && (Raw & ZeroFlag) != 0;
    /// <summary>Host offset of a standard (uncompressed) entry; 0 = none.</summary>
    public long HostOffset => IsCompressed ? 0 : (long)(Raw & OffsetMask);
    /// <summary>Nothing in this layer: read from backing or zeros.</summary>
    public bool IsUnallocated => Raw == 0 || (!IsCompressed && (Raw & (OffsetMask | ZeroFlag)) == 0);
    /// <summary>A normal data cluster whose bytes live at HostOffset.</summary>
    public bool IsData => !IsCompressed && !IsZero && HostOffset != 0;
}
