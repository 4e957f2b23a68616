using System.Buffers.Binary;

namespace QcowActors.Testing;

/// <summary>
/// A few qcow2 header fields read straight from a file, for tests that need to state a precondition
/// about an image's layout (e.g. "the writes went past what the first refcount table covers").
/// Deliberately independent of src/Format: the tests must not share the code they check.
/// </summary>
public sealed record QcowHeaderPeek(int Version, int ClusterBits, long VirtualSize, long RefcountTableOffset, int RefcountTableClusters, int RefcountOrder)
{
    public int ClusterSize => 1 << ClusterBits;

    public int RefcountBits => 1 << RefcountOrder;

    /// <summary>Bytes of host file the refcount table can describe without growing.</summary>
    public long RefcountTableCoverageBytes =>
        (long)RefcountTableClusters * (ClusterSize / 8) * ((long)ClusterSize * 8 / RefcountBits) * ClusterSize;

    public static QcowHeaderPeek Read(string path)
    {
        Span<byte> h = stackalloc byte[104];
        using var handle = File.OpenHandle(path);
        var n = RandomAccess.Read(handle, h, 0);
        if (n < 72 || BinaryPrimitives.ReadUInt32BigEndian(h) != 0x514649FB)
        {
            throw new InvalidDataException($"{path} is not a qcow2 image");
        }
        var version = (int)BinaryPrimitives.ReadUInt32BigEndian(h[4..]);
        return new QcowHeaderPeek(
            version,
            (int)BinaryPrimitives.ReadUInt32BigEndian(h[20..]),
            (long)BinaryPrimitives.ReadUInt64BigEndian(h[24..]),
            (long)BinaryPrimitives.ReadUInt64BigEndian(h[48..]),
            (int)BinaryPrimitives.ReadUInt32BigEndian(h[56..]),
            version >= 3 && n >= 100 ? (int)BinaryPrimitives.ReadUInt32BigEndian(h[96..]) : 4);
    }
}
