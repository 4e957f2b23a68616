using System.Buffers.Binary;
using System.Text;

namespace QcowActors.EndToEnd.Tests.Corpus;

/// <summary>
/// Where things lie in a valid source image: header fields, extensions, backing name, active L1 and
/// its L2 tables, refcount table and blocks, snapshot table. Read once from the pristine bytes so the
/// cases can aim their damage; independent of src/Format (the corpus must not share the code it checks).
/// </summary>
internal sealed class ImageLayout
{
    public const uint FeatureNameTable = 0x6803f857;
    public const uint BackingFormat = 0xe2792aca;
    public const uint Bitmaps = 0x23852875;
    public const uint FullDiskEncryption = 0x0537be77;
    public const uint ExternalDataFile = 0x44415441;
    public const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00UL;

    public sealed record Extension(int At, uint Type, int Length);

    /// <summary>A snapshot table entry: <see cref="At"/> is the entry's file offset.</summary>
    public sealed record SnapshotEntry(long At, long L1Offset, int L1Size, int IdSize, int NameSize, int ExtraSize, int Length);

    public ImageLayout(byte[] image)
    {
        Bytes = image;
        Version = (int)U32(4);
        BackingOffset = (long)U64(8);
        BackingSize = (int)U32(16);
        ClusterBits = (int)U32(20);
        Size = (long)U64(24);
        L1Size = (int)U32(36);
        L1Offset = (long)U64(40);
        RefcountTableOffset = (long)U64(48);
        RefcountTableClusters = (int)U32(56);
        SnapshotCount = (int)U32(60);
        SnapshotsOffset = (long)U64(64);
        Incompatible = Version >= 3 ? U64(72) : 0;
        HeaderLength = Version >= 3 ? (int)U32(100) : 72;
        ExtendedL2 = (Incompatible & (1UL << 4)) != 0;

        var extensions = new List<Extension>();
        for (var at = HeaderLength; at + 8 <= ClusterSize;)
        {
            var type = U32(at);
            var length = (int)U32(at + 4);
            if (type == 0)
            {
                EndOfExtensions = at;
                break;
            }
            extensions.Add(new Extension(at, type, length));
            at += 8 + (length + 7) / 8 * 8;
        }
        Extensions = extensions;

        L1 = Table(L1Offset, L1Size);
        L2Tables = L1.Select(e => (long)(e & OffsetMask)).Where(o => o != 0).Distinct().ToList();
        RefcountTable = Table(RefcountTableOffset, RefcountTableClusters * ClusterSize / 8);
        RefcountBlocks = RefcountTable.Select(e => (long)(e & ~511UL)).Where(o => o != 0).ToList();

        var snapshots = new List<SnapshotEntry>();
        long p = SnapshotsOffset;
        for (var i = 0; i < SnapshotCount; i++)
        {
            var idSize = BinaryPrimitives.ReadUInt16BigEndian(image.AsSpan((int)p + 12));
            var nameSize = BinaryPrimitives.ReadUInt16BigEndian(image.AsSpan((int)p + 14));
            var extra = (int)U32((int)p + 36);
            var length = (40 + extra + idSize + nameSize + 7) / 8 * 8;
            snapshots.Add(new SnapshotEntry(p, (long)U64((int)p), (int)U32((int)p + 8), idSize, nameSize, extra, length));
            p += length;
        }
        Snapshots = snapshots;
    }

    public byte[] Bytes { get; }
    public int Version { get; }
    public long BackingOffset { get; }
    public int BackingSize { get; }
    public int ClusterBits { get; }
    public int ClusterSize => 1 << ClusterBits;
    public long Size { get; }
    public int L1Size { get; }
    public long L1Offset { get; }
    public long RefcountTableOffset { get; }
    public int RefcountTableClusters { get; }
    public int SnapshotCount { get; }
    public long SnapshotsOffset { get; }
    public ulong Incompatible { get; }
    public int HeaderLength { get; }
    public bool ExtendedL2 { get; }
    public IReadOnlyList<Extension> Extensions { get; }
    public int EndOfExtensions { get; }
    public IReadOnlyList<ulong> L1 { get; }
    public IReadOnlyList<long> L2Tables { get; }
    public IReadOnlyList<ulong> RefcountTable { get; }
    public IReadOnlyList<long> RefcountBlocks { get; }
    public IReadOnlyList<SnapshotEntry> Snapshots { get; }
    public long FileLength => Bytes.Length;
    public long EndCluster => (FileLength + ClusterSize - 1) / ClusterSize * ClusterSize;
    public int L2EntryBytes => ExtendedL2 ? 16 : 8;

    public Extension? FindExtension(uint type) => Extensions.FirstOrDefault(e => e.Type == type);

    public string BackingName => Encoding.UTF8.GetString(Bytes, (int)BackingOffset, BackingSize);

    /// <summary>The file offset of the L2 entry (descriptor word) of a guest cluster in the active L2 tables.</summary>
    public long L2EntryAt(long guestOffset)
    {
        var entries = ClusterSize / L2EntryBytes;
        var cluster = guestOffset >> ClusterBits;
        var table = (long)(L1[(int)(cluster / entries)] & OffsetMask);
        if (table == 0)
            throw new InvalidOperationException($"no L2 table for guest offset {guestOffset}");
        return table + cluster % entries * L2EntryBytes;
    }

    public ulong L2Entry(long guestOffset) => U64((int)L2EntryAt(guestOffset));

    /// <summary>The host offset of an allocated guest cluster.</summary>
    public long HostOf(long guestOffset) => (long)(L2Entry(guestOffset) & OffsetMask);

    /// <summary>Every nonzero descriptor word in the active L2 tables, with its file offset.</summary>
    public IEnumerable<(long At, ulong Entry)> L2Entries()
    {
        foreach (var table in L2Tables)
            for (var i = 0; i < ClusterSize / L2EntryBytes; i++)
            {
                var at = table + (long)i * L2EntryBytes;
                var e = U64((int)at);
                if (e != 0)
                    yield return (at, e);
            }
    }

    public uint U32(int at) => BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(at));
    public ulong U64(int at) => BinaryPrimitives.ReadUInt64BigEndian(Bytes.AsSpan(at));

    private ulong[] Table(long offset, long count)
    {
        var t = new ulong[count];
        for (var i = 0; i < count; i++)
            t[i] = U64((int)(offset + i * 8));
        return t;
    }
}
