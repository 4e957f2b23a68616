using System.Buffers.Binary;
using QcowActors.Format.Tests.Support;

namespace QcowActors.Format.Tests;

/// <summary>The pure parts of snapshot maintenance: the table written back as QEMU writes it, ids, names, COPIED, layout, resize rules.</summary>
public sealed class SnapshotMaintenanceFormatTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Serialize_writes_back_the_table_qemu_img_wrote_byte_for_byte()
    {
        string path = _dir.File("snap.qcow2");
        Qemu.ImgOk("create", "-q", "-f", "qcow2", path, "64M");
        Qemu.ImgOk("snapshot", "-c", "first", path);
        Qemu.ImgOk("snapshot", "-c", "second-with-a-longer-name", path);
        var header = ImageFiles.ParseHeader(path);
        byte[] table = ImageFiles.ReadAt(path, header.SnapshotsOffset, 1 << 16);
        var (entries, length) = SnapshotTable.Parse(table, header.NbSnapshots, (int)header.Version);

        byte[] written = SnapshotTable.Serialize(entries, header.Size);

        Assert.Equal(length, written.Length);
        Assert.Equal(table.AsSpan(0, (int)length).ToArray(), written);
        Assert.Equal(0UL, entries[0].VmStateSize);
    }

    [Fact]
    public void Serialize_keeps_unknown_extra_data_and_fills_a_missing_disk_size()
    {
        var old = new SnapshotEntry("7", "old", 0x30000, 2, -1) { DateSeconds = 5, UnknownExtra = [1, 2, 3, 4, 5, 6, 7, 8] };
        byte[] table = SnapshotTable.Serialize([old, new SnapshotEntry("8", "n", 0x40000, 2, 1 << 20)], 123 << 20);
        var (back, _) = SnapshotTable.Parse(table, 2, 3);
        Assert.Equal(123L << 20, back[0].DiskSize);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, back[0].UnknownExtra);
        Assert.Equal(5u, back[0].DateSeconds);
        Assert.Equal(0, SnapshotTableOffsetOf(table, 1) % 8);
    }

    private static int SnapshotTableOffsetOf(byte[] table, int index)
    {
        int offset = 0;
        for (int i = 0; i < index; i++)
        {
            int extra = (int)BinaryPrimitives.ReadUInt32BigEndian(table.AsSpan(offset + 36));
            int id = BinaryPrimitives.ReadUInt16BigEndian(table.AsSpan(offset + 12));
            int name = BinaryPrimitives.ReadUInt16BigEndian(table.AsSpan(offset + 14));
            offset = (offset + 40 + extra + id + name + 7) & ~7;
        }
        return offset;
    }

    [Fact]
    public void Next_id_is_one_past_the_largest_numeric_id_and_lookup_tries_the_id_first()
    {
        SnapshotEntry E(string id, string name) => new(id, name, 0x10000, 1, 0);
        Assert.Equal("1", SnapshotNames.NextId([]));
        Assert.Equal("10", SnapshotNames.NextId([E("3", "a"), E("9", "b"), E("x", "c")]));
        var entries = new[] { E("1", "2"), E("2", "b"), E("3", "dup"), E("4", "dup") };
        Assert.Equal("1", SnapshotNames.Find(entries, "1")!.Id);
        Assert.Equal("2", SnapshotNames.Find(entries, "2")!.Id); // id "2", not the snapshot named "2"
        Assert.Equal("2", SnapshotNames.Find(entries, "b")!.Id);
        Assert.Null(SnapshotNames.Find(entries, "dup"));
        Assert.True(SnapshotNames.IsAmbiguous(entries, "dup"));
        Assert.Null(SnapshotNames.Find(entries, "none"));
    }

    [Theory]
    [InlineData("ok-name", true)]
    [InlineData("before upgrade", true)]
    [InlineData("", false)]
    [InlineData("123", false)]
    [InlineData("tab\there", false)]
    [InlineData(" padded", false)]
    public void Snapshot_names_are_validated(string name, bool valid)
        => Assert.Equal(valid, SnapshotNames.Validate(name) is null);

    [Fact]
    public void Copied_is_set_exactly_when_the_count_is_one_and_never_on_compressed_clusters()
    {
        var table = new byte[4 * 8];
        BinaryPrimitives.WriteUInt64BigEndian(table, L2Entry.Data(0x10000, copied: true).ToRaw());      // count 2: cleared
        BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(8), L2Entry.Data(0x20000, copied: false).ToRaw()); // count 1: set
        BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(16), L2Entry.CompressedFlag | L2Entry.CopiedFlag | 0x30000);
        var counts = new Dictionary<long, ulong> { [1] = 2, [2] = 1 };
        Assert.True(CopiedFlags.Recompute(table, new ClusterLayout(16, 4), c => counts[c]));
        Assert.False(L2Entry.From(BinaryPrimitives.ReadUInt64BigEndian(table)).Copied);
        Assert.True(L2Entry.From(BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(8))).Copied);
        Assert.False(L2Entry.From(BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(16))).Copied);
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(24)));
        Assert.False(CopiedFlags.Recompute(table, new ClusterLayout(16, 4), c => counts[c])); // stable
    }

    [Theory]
    [InlineData(9, 0, 100, 3, 0, 5)]
    [InlineData(9, 6, 5000, 4096, 200, 4000)]
    [InlineData(16, 4, 3, 2, 0, 0)]
    public void Rewrite_layout_places_a_refcount_structure_that_covers_itself(int clusterBits, int order, long fileClusters, long l1Entries, long snapBytes, long copies)
    {
        var layout = new ClusterLayout(clusterBits, order);
        var plan = RewriteLayout.Plan(layout, fileClusters, l1Entries, snapBytes, copies);
        Assert.Equal(fileClusters, plan.L1Cluster);
        Assert.True(plan.Blocks * layout.RefcountBlockEntries >= plan.EndCluster, "blocks cover every cluster up to the end");
        Assert.True(plan.RefcountTableClusters * layout.ClusterSize / 8 >= plan.Blocks, "the table has an entry per block");
        Assert.True(plan.L1Clusters * layout.ClusterSize >= l1Entries * 8);
        Assert.Equal(plan.FirstBlockCluster + plan.Blocks, plan.FirstCopyCluster);
    }

    [Fact]
    public void Resize_rules_find_data_past_the_new_end_and_refuse_odd_sizes()
    {
        var layout = new ClusterLayout(9, 4);
        var table = new byte[512];
        BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(8 * 3), L2Entry.Data(0x1000, true).ToRaw());
        BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(8 * 5), L2Entry.Zero(0, false).ToRaw());
        Assert.Equal(3 * 512, ResizeRules.FirstAllocatedFrom(table, 0, 1024, new ClusterLayout(9, 4)));
        Assert.Equal(3 * 512, ResizeRules.FirstAllocatedFrom(table, 0, 1025, new ClusterLayout(9, 4)) is var at && at == 3 * 512 ? at : -2);
        Assert.Equal(-1, ResizeRules.FirstAllocatedFrom(table, 0, 3 * 512 + 1, new ClusterLayout(9, 4))); // a cluster straddling the end stays
        Assert.NotNull(ResizeRules.CheckSize(1000, layout));
        Assert.Null(ResizeRules.CheckSize(1 << 20, layout));
        Assert.NotNull(ResizeRules.CheckSize(1L << 50, layout)); // L1 past 32 MiB at 512 B clusters
    }
}
