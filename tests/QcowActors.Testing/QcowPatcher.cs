using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace QcowActors.Testing;

/// <summary>
/// A test-side qcow2 reader and patcher, for tests that damage an image made by qemu-img on purpose:
/// it reads the header (big-endian fields), the active L1 table, the refcount table and blocks, the
/// L2 tables and the snapshot table, and can set the refcount of a host cluster (any refcount_bits;
/// entries under 8 bits pack least-significant-bit first), a raw L2 entry and a raw refcount-table entry.
/// Deliberately independent of src/Format: the tests must not share the code they check.
/// Standard L2 entries only (no extended L2), no encryption.
/// </summary>
public sealed class QcowPatcher : IDisposable
{
    public const uint Magic = 0x514649FB;
    public const ulong CopiedFlag = 1UL << 63;
    public const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00UL;
    /// <summary>Refcount table entries: bits 9..63 are the block offset.</summary>
    public const ulong RefcountTableOffsetMask = ~511UL;
    public const ulong IncompatibleDirty = 1UL << 0;
    public const ulong IncompatibleCorrupt = 1UL << 1;
    public const ulong IncompatibleExtendedL2 = 1UL << 4;
    /// <summary>Byte offset of the v3 incompatible_features field (8 bytes).</summary>
    public const int IncompatibleFeaturesOffset = 72;

    private readonly SafeFileHandle _handle;
    private readonly FileStream? _stream;
    private readonly ulong[] _l1;
    private readonly ulong[] _refcountTable;

    private QcowPatcher(string path, SafeFileHandle handle, FileStream? stream)
    {
        Path = path;
        _handle = handle;
        _stream = stream;
        var h = new byte[104];
        var n = ReadAt(h, 0);
        if (n < 72 || BinaryPrimitives.ReadUInt32BigEndian(h) != Magic)
        {
            throw new InvalidDataException($"{path} is not a qcow2 image");
        }
        Version = (int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(4));
        ClusterBits = (int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(20));
        VirtualSize = (long)BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(24));
        L1Size = (int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(36));
        L1TableOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(40));
        RefcountTableOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(48));
        RefcountTableClusters = (int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(56));
        SnapshotCount = (int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(60));
        SnapshotsOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(64));
        var v3 = Version >= 3 && n >= 100;
        IncompatibleFeatures = v3 ? BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(72)) : 0;
        RefcountOrder = v3 ? (int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(96)) : 4;
        if (ClusterBits is < 9 or > 21 || RefcountOrder is < 0 or > 6)
        {
            throw new InvalidDataException($"{path}: cluster_bits {ClusterBits} or refcount_order {RefcountOrder} out of range");
        }
        if ((IncompatibleFeatures & IncompatibleExtendedL2) != 0)
        {
            throw new NotSupportedException($"{path} uses extended L2 entries; {nameof(QcowPatcher)} reads standard L2 tables only");
        }
        _l1 = ReadTable(L1TableOffset, L1Size);
        _refcountTable = ReadTable(RefcountTableOffset, (long)RefcountTableClusters * ClusterSize / 8);
        Snapshots = ReadSnapshots(out var snapshotTableBytes);
        SnapshotTableBytes = snapshotTableBytes;
    }

    public string Path { get; }
    public bool Writable => _stream is not null;
    public int Version { get; }
    public int ClusterBits { get; }
    public int ClusterSize => 1 << ClusterBits;
    public long VirtualSize { get; }
    public int L1Size { get; }
    public long L1TableOffset { get; }
    public long RefcountTableOffset { get; }
    public int RefcountTableClusters { get; }
    public int SnapshotCount { get; }
    public long SnapshotsOffset { get; }
    /// <summary>As read at open (v3; 0 for v2).</summary>
    public ulong IncompatibleFeatures { get; }
    public int RefcountOrder { get; }
    public int RefcountBits => 1 << RefcountOrder;
    public long RefcountBlockEntries => (long)ClusterSize * 8 / RefcountBits;
    public long L2Entries => ClusterSize / 8;
    public IReadOnlyList<ulong> L1 => _l1;
    /// <summary>The refcount table as read at open, with the entries this patcher changed.</summary>
    public IReadOnlyList<ulong> RefcountTable => _refcountTable;
    public IReadOnlyList<QcowSnapshotInfo> Snapshots { get; }
    /// <summary>Bytes the snapshot table takes (entries padded to 8 bytes).</summary>
    public long SnapshotTableBytes { get; }
    public long FileLength => RandomAccess.GetLength(_handle);
    /// <summary>Clusters the file covers (its last one may be partial).</summary>
    public long FileClusters => (FileLength + ClusterSize - 1) / ClusterSize;

    /// <summary>
    /// Opens the image for patching with an exclusive lock (flock LOCK_EX, like the server's): fails
    /// when a server has it open, which is the point — patch only a stopped or not yet opened image.
    /// </summary>
    public static QcowPatcher Open(string path)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new IOException($"Cannot open {path} exclusively: a server (or another process) holds it open. Patch images only while nobody has them open.", e);
        }
        try
        {
            return new QcowPatcher(path, stream.SafeFileHandle, stream);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Opens the image read-only without taking any lock, so it works next to a server holding its flock.</summary>
    public static QcowPatcher OpenReadOnly(string path)
    {
        var handle = UnlockedFile.Open(path);
        try
        {
            return new QcowPatcher(path, handle, null);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>incompatible_features straight from the file (no lock taken); 0 for v2.</summary>
    public static ulong ReadIncompatibleFeatures(string path)
    {
        using var handle = UnlockedFile.Open(path);
        var h = new byte[IncompatibleFeaturesOffset + 8];
        var n = RandomAccess.Read(handle, h, 0);
        if (n < h.Length || BinaryPrimitives.ReadUInt32BigEndian(h) != Magic)
        {
            throw new InvalidDataException($"{path} is not a qcow2 image");
        }
        return BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(4)) >= 3 ? BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(IncompatibleFeaturesOffset)) : 0;
    }

    public long ClusterOf(long hostOffset) => hostOffset >> ClusterBits;

    public long RoundUpToCluster(long bytes) => (bytes + ClusterSize - 1) / ClusterSize * ClusterSize;

    // ---- refcounts -------------------------------------------------------------------------

    /// <summary>The refcount of a host cluster; 0 when no refcount block covers it.</summary>
    public ulong GetRefcount(long hostCluster)
    {
        var (blockOffset, index) = LocateRefcount(hostCluster, requireBlock: false);
        if (blockOffset == 0)
        {
            return 0;
        }
        var (position, width) = RefcountBytes(index);
        var bytes = new byte[width];
        ReadExactly(bytes, blockOffset + position);
        return DecodeRefcount(bytes, index);
    }

    /// <summary>Sets the refcount of a host cluster in the refcount block that covers it (which must exist).</summary>
    public void SetRefcount(long hostCluster, ulong value)
    {
        var max = RefcountBits == 64 ? ulong.MaxValue : (1UL << RefcountBits) - 1;
        if (value > max)
        {
            throw new ArgumentOutOfRangeException(nameof(value), value, $"refcount_bits {RefcountBits} holds at most {max}");
        }
        var (blockOffset, index) = LocateRefcount(hostCluster, requireBlock: true);
        var (position, width) = RefcountBytes(index);
        var bytes = new byte[width];
        ReadExactly(bytes, blockOffset + position);
        if (RefcountBits >= 8)
        {
            for (var i = 0; i < width; i++)
            {
                bytes[i] = (byte)(value >> (8 * (width - 1 - i))); // big-endian of the entry's width
            }
        }
        else
        {
            var shift = (int)((index * RefcountBits) & 7);
            var mask = ((1 << RefcountBits) - 1) << shift;
            bytes[0] = (byte)((bytes[0] & ~mask) | (((int)value << shift) & mask));
        }
        WriteAt(bytes, blockOffset + position);
    }

    public ulong GetRefcountTableEntry(long index) => _refcountTable[index];

    /// <summary>Writes a raw refcount-table entry (no validation: that is the point).</summary>
    public void SetRefcountTableEntry(long index, ulong raw)
    {
        if ((ulong)index >= (ulong)_refcountTable.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"the refcount table has {_refcountTable.Length} entries");
        }
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, raw);
        WriteAt(bytes, RefcountTableOffset + index * 8);
        _refcountTable[index] = raw;
    }

    /// <summary>Host offset of the refcount block covering a host cluster; 0 when there is none.</summary>
    public long RefcountBlockOffsetFor(long hostCluster)
        => (long)(_refcountTable[hostCluster / RefcountBlockEntries] & RefcountTableOffsetMask);

    // ---- L1 / L2 ---------------------------------------------------------------------------

    /// <summary>Host offset of the active L2 table mapping a virtual offset; 0 when none is allocated.</summary>
    public long L2TableOffsetFor(long virtualOffset)
    {
        var l1Index = (virtualOffset >> ClusterBits) / L2Entries;
        return l1Index < _l1.Length ? (long)(_l1[l1Index] & OffsetMask) : 0;
    }

    /// <summary>The raw active L2 entry mapping a virtual offset (0 when no L2 table covers it).</summary>
    public ulong GetL2Entry(long virtualOffset)
    {
        var position = L2EntryPosition(virtualOffset, requireTable: false);
        if (position == 0)
        {
            return 0;
        }
        var bytes = new byte[8];
        ReadExactly(bytes, position);
        return BinaryPrimitives.ReadUInt64BigEndian(bytes);
    }

    /// <summary>Writes a raw entry into the active L2 table mapping a virtual offset (the table must exist).</summary>
    public void SetL2Entry(long virtualOffset, ulong raw)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, raw);
        WriteAt(bytes, L2EntryPosition(virtualOffset, requireTable: true));
    }

    // ---- metadata --------------------------------------------------------------------------

    /// <summary>
    /// Every cluster holding metadata, as the image describes it now: the header, the active L1 table,
    /// the refcount table, the refcount blocks (also one the table places past the end of the file),
    /// the active L2 tables, the snapshot table, each snapshot's L1 table and the L2 tables it
    /// reaches. A cluster with two roles is listed once, under the first.
    /// </summary>
    public IReadOnlyList<QcowMetadataCluster> MetadataClusters()
    {
        var result = new List<QcowMetadataCluster>();
        var seen = new HashSet<long>();
        void Add(string kind, long offset)
        {
            var aligned = offset & ~(long)(ClusterSize - 1);
            if (seen.Add(aligned))
            {
                result.Add(new QcowMetadataCluster(kind, aligned));
            }
        }
        void AddRange(string kind, long offset, long bytes)
        {
            for (var c = offset & ~(long)(ClusterSize - 1); c < offset + bytes; c += ClusterSize)
            {
                Add(kind, c);
            }
        }

        Add("header", 0);
        AddRange("L1 table", L1TableOffset, (long)L1Size * 8);
        AddRange("refcount table", RefcountTableOffset, (long)RefcountTableClusters * ClusterSize);
        foreach (var entry in _refcountTable)
        {
            if ((entry & RefcountTableOffsetMask) != 0)
            {
                Add("refcount block", (long)(entry & RefcountTableOffsetMask));
            }
        }
        foreach (var entry in _l1)
        {
            if ((entry & OffsetMask) != 0)
            {
                Add("L2 table", (long)(entry & OffsetMask));
            }
        }
        if (SnapshotCount > 0)
        {
            AddRange("snapshot table", SnapshotsOffset, SnapshotTableBytes);
        }
        foreach (var snapshot in Snapshots)
        {
            AddRange($"snapshot '{snapshot.Name}' L1 table", snapshot.L1TableOffset, (long)snapshot.L1Size * 8);
            foreach (var entry in ReadTable(snapshot.L1TableOffset, snapshot.L1Size))
            {
                if ((entry & OffsetMask) != 0)
                {
                    Add($"snapshot '{snapshot.Name}' L2 table", (long)(entry & OffsetMask));
                }
            }
        }
        return result;
    }

    /// <summary>One cluster of the file; the part past the end of the file reads as zeros.</summary>
    public byte[] ReadCluster(long hostOffset)
    {
        var bytes = new byte[ClusterSize];
        ReadAt(bytes, hostOffset);
        return bytes;
    }

    public void Dispose()
    {
        if (_stream is not null)
        {
            _stream.Flush(flushToDisk: true);
            _stream.Dispose();
        }
        else
        {
            _handle.Dispose();
        }
    }

    public override string ToString()
        => $"{Path}: v{Version}, {ClusterSize} B clusters, refcount_bits {RefcountBits}, L1 at 0x{L1TableOffset:x} ({L1Size} entries), " +
           $"refcount table at 0x{RefcountTableOffset:x} ({RefcountTableClusters} clusters), {SnapshotCount} snapshots at 0x{SnapshotsOffset:x}, " +
           $"incompatible 0x{IncompatibleFeatures:x}, {FileLength} bytes of file";

    private (long BlockOffset, long Index) LocateRefcount(long hostCluster, bool requireBlock)
    {
        var tableIndex = hostCluster / RefcountBlockEntries;
        if (hostCluster < 0 || tableIndex >= _refcountTable.Length)
        {
            if (requireBlock)
            {
                throw new ArgumentOutOfRangeException(nameof(hostCluster), hostCluster, "no refcount-table entry covers this cluster");
            }
            return (0, 0);
        }
        var blockOffset = (long)(_refcountTable[tableIndex] & RefcountTableOffsetMask);
        if (blockOffset == 0 && requireBlock)
        {
            throw new InvalidOperationException($"no refcount block covers cluster {hostCluster} (refcount-table entry {tableIndex} is 0)");
        }
        return (blockOffset, hostCluster % RefcountBlockEntries);
    }

    /// <summary>Byte position in the block and number of bytes holding entry <paramref name="index"/>.</summary>
    private (long Position, int Width) RefcountBytes(long index)
        => RefcountBits >= 8 ? (index * (RefcountBits / 8), RefcountBits / 8) : (index * RefcountBits / 8, 1);

    private ulong DecodeRefcount(byte[] bytes, long index)
    {
        if (RefcountBits >= 8)
        {
            ulong value = 0;
            foreach (var b in bytes)
            {
                value = (value << 8) | b;
            }
            return value;
        }
        var shift = (int)((index * RefcountBits) & 7);
        return (ulong)((bytes[0] >> shift) & ((1 << RefcountBits) - 1));
    }

    private long L2EntryPosition(long virtualOffset, bool requireTable)
    {
        if (virtualOffset < 0 || virtualOffset >= VirtualSize)
        {
            throw new ArgumentOutOfRangeException(nameof(virtualOffset), virtualOffset, $"the disk has {VirtualSize} bytes");
        }
        var cluster = virtualOffset >> ClusterBits;
        var table = L2TableOffsetFor(virtualOffset);
        if (table == 0)
        {
            if (requireTable)
            {
                throw new InvalidOperationException($"no L2 table maps virtual offset {virtualOffset} (L1 entry {cluster / L2Entries} is unallocated)");
            }
            return 0;
        }
        return table + cluster % L2Entries * 8;
    }

    private ulong[] ReadTable(long offset, long entries)
    {
        var table = new ulong[entries];
        if (entries == 0)
        {
            return table;
        }
        var bytes = new byte[entries * 8];
        ReadExactly(bytes, offset);
        for (var i = 0; i < entries; i++)
        {
            table[i] = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(i * 8));
        }
        return table;
    }

    private List<QcowSnapshotInfo> ReadSnapshots(out long tableBytes)
    {
        var snapshots = new List<QcowSnapshotInfo>();
        tableBytes = 0;
        if (SnapshotCount == 0)
        {
            return snapshots;
        }
        long position = SnapshotsOffset;
        var fixedPart = new byte[40];
        for (var i = 0; i < SnapshotCount; i++)
        {
            ReadExactly(fixedPart, position);
            var l1Offset = (long)BinaryPrimitives.ReadUInt64BigEndian(fixedPart);
            var l1Size = (int)BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(8));
            int idSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(12));
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(14));
            var extraSize = (int)BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(36));
            var strings = new byte[idSize + nameSize];
            ReadExactly(strings, position + 40 + extraSize);
            var id = System.Text.Encoding.UTF8.GetString(strings, 0, idSize);
            var name = System.Text.Encoding.UTF8.GetString(strings, idSize, nameSize);
            snapshots.Add(new QcowSnapshotInfo(id, name, l1Offset, l1Size));
            var length = 40L + extraSize + idSize + nameSize;
            position += (length + 7) / 8 * 8;
        }
        tableBytes = position - SnapshotsOffset;
        return snapshots;
    }

    /// <summary>Reads what the file has at <paramref name="offset"/>; the rest of the buffer is zeroed. Returns the bytes read.</summary>
    private int ReadAt(Span<byte> buffer, long offset) => UnlockedFile.Read(_handle, buffer, offset);

    private void ReadExactly(Span<byte> buffer, long offset)
    {
        var n = ReadAt(buffer, offset);
        if (n < buffer.Length)
        {
            throw new InvalidDataException($"{Path}: {buffer.Length} bytes at 0x{offset:x} run past the end of the file ({FileLength} bytes)");
        }
    }

    private void WriteAt(ReadOnlySpan<byte> bytes, long offset)
    {
        if (_stream is null)
        {
            throw new InvalidOperationException($"{Path} was opened read-only");
        }
        RandomAccess.Write(_handle, bytes, offset);
    }
}

/// <summary>One entry of the snapshot table.</summary>
public sealed record QcowSnapshotInfo(string Id, string Name, long L1TableOffset, int L1Size);

/// <summary>A cluster holding metadata: what it is and where.</summary>
public sealed record QcowMetadataCluster(string Kind, long HostOffset)
{
    public override string ToString() => $"{Kind} at 0x{HostOffset:x}";
}

/// <summary>
/// The bytes of every metadata cluster of an image at one moment (read without a lock, so it works
/// next to a running server), to show later that none of them changed. The header's
/// incompatible_features field (bytes 72..79) is left out: marking an image corrupt changes it.
/// </summary>
public sealed class QcowMetadataSnapshot
{
    private readonly Dictionary<QcowMetadataCluster, byte[]> _bytes;

    private readonly int _clusterSize;

    private QcowMetadataSnapshot(string path, int clusterSize, Dictionary<QcowMetadataCluster, byte[]> bytes)
    {
        Path = path;
        _clusterSize = clusterSize;
        _bytes = bytes;
    }

    public string Path { get; }

    public IReadOnlyCollection<QcowMetadataCluster> Clusters => _bytes.Keys;

    public static QcowMetadataSnapshot Capture(string path)
    {
        using var image = QcowPatcher.OpenReadOnly(path);
        var bytes = new Dictionary<QcowMetadataCluster, byte[]>();
        foreach (var cluster in image.MetadataClusters())
        {
            bytes[cluster] = Masked(cluster, image.ReadCluster(cluster.HostOffset));
        }
        return new QcowMetadataSnapshot(path, image.ClusterSize, bytes);
    }

    /// <summary>
    /// The clusters whose bytes differ in the file now, each with where and how much; empty when none.
    /// Reads the same offsets as <see cref="Capture"/> without parsing anything (the header itself may be gone).
    /// </summary>
    public IReadOnlyList<string> ChangedClusters()
    {
        using var handle = UnlockedFile.Open(Path);
        var changes = new List<string>();
        foreach (var (cluster, before) in _bytes)
        {
            var now = new byte[_clusterSize];
            UnlockedFile.Read(handle, now, cluster.HostOffset);
            Masked(cluster, now);
            if (!before.AsSpan().SequenceEqual(now))
            {
                var first = before.AsSpan().CommonPrefixLength(now);
                var count = 0;
                for (var i = 0; i < before.Length; i++)
                {
                    if (before[i] != now[i])
                    {
                        count++;
                    }
                }
                changes.Add($"{cluster}: {count} bytes differ, the first at +{first} (0x{before[first]:x2} -> 0x{now[first]:x2})");
            }
        }
        return changes;
    }

    private static byte[] Masked(QcowMetadataCluster cluster, byte[] bytes)
    {
        if (cluster.HostOffset == 0)
        {
            bytes.AsSpan(QcowPatcher.IncompatibleFeaturesOffset, 8).Clear();
        }
        return bytes;
    }
}

/// <summary>
/// open(2) without .NET's advisory flock: FileStream/File.OpenHandle take LOCK_SH even for reading,
/// which fails while the server holds its LOCK_EX (and would make the server's own open fail).
/// </summary>
internal static class UnlockedFile
{
    private const int ReadOnly = 0;
    private const int CloseOnExec = 0x80000;

    public static SafeFileHandle Open(string path)
    {
        var fd = NativeOpen(path, ReadOnly | CloseOnExec);
        if (fd < 0)
        {
            throw new IOException($"open({path}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Reads what the file has at <paramref name="offset"/>; the rest of the buffer (past the end of the file) is zeroed. Returns the bytes read.</summary>
    public static int Read(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = RandomAccess.Read(handle, buffer[total..], offset + total);
            if (n == 0)
            {
                break;
            }
            total += n;
        }
        buffer[total..].Clear();
        return total;
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int NativeOpen([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
}
