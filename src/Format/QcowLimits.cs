namespace QcowActors.Format;

/// <summary>QEMU's limits (block/qcow2.h): checked on every size read from a file before allocating.</summary>
public static class QcowLimits
{
    public const int MinClusterBits = 9;
    public const int MaxClusterBits = 21;
    public const int MaxRefcountOrder = 6;
    /// <summary>QCOW_MAX_L1_SIZE: 32 MiB of L1 entries.</summary>
    public const long MaxL1Bytes = 32L * 1024 * 1024;
    /// <summary>QCOW_MAX_REFTABLE_SIZE: 8 MiB of refcount table.</summary>
    public const long MaxRefcountTableBytes = 8L * 1024 * 1024;
    /// <summary>Host offsets are 56 bits wide (bits 9..55 of an entry).</summary>
    public const ulong MaxHostOffset = (1UL << 56) - 1;
    /// <summary>QCOW_MAX_SNAPSHOTS: more snapshots than this is refused.</summary>
    public const uint MaxSnapshots = 65536;
    /// <summary>qcow2.txt: backing_file_size must not be longer than 1023 bytes.</summary>
    public const int MaxBackingFileNameBytes = 1023;
    /// <summary>qcow2.txt: extended L2 entries need cluster_bits of at least 14 (16 KiB).</summary>
    public const int MinExtendedL2ClusterBits = 14;
}
