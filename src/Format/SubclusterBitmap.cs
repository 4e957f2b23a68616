namespace QcowActors.Format;

/// <summary>
/// The second word of an extended L2 entry (qcow2.txt "Extended L2 Entries"): bit x (0..31) =
/// subcluster x is allocated (its bytes are in the host cluster at x * subcluster size), bit 32 + x
/// = it reads as zeros; neither = unallocated (the backing file, else zeros). Both at once is an
/// invalid entry, as is an allocated subcluster without a host cluster.
/// </summary>
public readonly record struct SubclusterBitmap(ulong Raw)
{
    public const ulong AllAllocated = 0xFFFF_FFFFUL;
    public const ulong AllZero = 0xFFFF_FFFFUL << 32;

    public uint Allocated => (uint)Raw;
    public uint Zero => (uint)(Raw >> 32);

    public bool IsAllocated(int subcluster) => (Allocated & (1u << subcluster)) != 0;

    /// <summary>Subclusters first..last (inclusive) as a 32-bit mask.</summary>
    public static uint Range(int first, int last) => (uint)(((1UL << (last + 1)) - 1) & ~((1UL << first) - 1));

    /// <summary>The bitmap after subclusters in <paramref name="mask"/> were written: allocated, no longer zero.</summary>
    public SubclusterBitmap WithAllocated(uint mask) => new((Raw | mask) & ~((ulong)mask << 32));

    /// <summary>Why this bitmap cannot be read with that entry, or null.</summary>
    public string? Problem(long hostOffset)
    {
        if ((Allocated & Zero) != 0) return $"subclusters {Allocated & Zero:x8} are marked both allocated and zero";
        if (hostOffset == 0 && Allocated != 0) return "subclusters are marked allocated in a cluster with no host offset";
        return null;
    }
}
