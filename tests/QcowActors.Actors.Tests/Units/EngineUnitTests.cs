using System.Buffers.Binary;
using QcowActors.Actors.Image;
using QcowActors.Format;
using Xunit;

namespace QcowActors.Actors.Tests.Units;

/// <summary>The I/O gate's epochs and its close.</summary>
public sealed class IoEpochGateTests
{
    [Fact]
    public void The_oldest_active_epoch_follows_requests_in_flight()
    {
        var gate = new IoEpochGate();
        Assert.Equal(1, gate.OldestActive());
        var first = gate.TryEnter()!;
        long tag = gate.Advance();
        var second = gate.TryEnter()!;
        Assert.Equal(first.Epoch, gate.OldestActive());
        Assert.True(tag > gate.OldestActive());
        first.Dispose();
        first.Dispose(); // leaving twice counts once
        Assert.Equal(second.Epoch, gate.OldestActive());
        Assert.True(tag <= gate.OldestActive());
        second.Dispose();
        Assert.True(gate.IsIdle);
    }

    [Fact]
    public async Task Closing_refuses_new_entries_and_completes_when_the_last_request_leaves()
    {
        var gate = new IoEpochGate();
        var inside = gate.TryEnter()!;
        var closed = gate.CloseAsync();
        Assert.True(gate.Closing.IsCancellationRequested);
        Assert.Null(gate.TryEnter());
        await Task.Delay(50);
        Assert.False(closed.IsCompleted);
        inside.Dispose();
        await closed.WaitAsync(TimeSpan.FromSeconds(5));
    }
}

/// <summary>The one rule for how a write lands in a cluster.</summary>
public sealed class WriteDecisionTests
{
    private const long Host = 7L << 16;

    [Fact]
    public void A_cluster_this_image_alone_holds_is_written_in_place()
    {
        var d = WriteDecision.Decide(L2Entry.Data(Host, copied: true).ToRaw(), whole: false);
        Assert.Equal(ClusterAction.InPlace, d.Action);
        Assert.Equal(Host, d.Host);
        Assert.Equal(ClusterFill.None, d.Fill);
        Assert.Equal(0UL, d.ReplacedEntry);
    }

    [Fact]
    public void A_shared_cluster_is_copied_and_its_reference_released()
    {
        var partial = WriteDecision.Decide(L2Entry.Data(Host, copied: false).ToRaw(), whole: false);
        Assert.Equal(ClusterAction.Allocate, partial.Action);
        Assert.Equal(ClusterFill.CopyFrom, partial.Fill);
        Assert.Equal(Host, partial.Source);
        Assert.Equal(L2Entry.Data(Host, copied: false).ToRaw(), partial.ReplacedEntry);
        var whole = WriteDecision.Decide(L2Entry.Data(Host, copied: false).ToRaw(), whole: true);
        Assert.Equal(ClusterFill.None, whole.Fill);
        Assert.Equal(L2Entry.Data(Host, copied: false).ToRaw(), whole.ReplacedEntry);
    }

    [Fact]
    public void Zero_and_unallocated_clusters_get_a_new_cluster_filled_with_zeros_unless_it_is_an_owned_preallocated_one()
    {
        var unallocated = WriteDecision.Decide(0, whole: false);
        Assert.Equal((ClusterAction.Allocate, ClusterFill.Zeros, 0UL), (unallocated.Action, unallocated.Fill, unallocated.ReplacedEntry));
        var zero = WriteDecision.Decide(L2Entry.Zero(0, false).ToRaw(), whole: false);
        Assert.Equal((ClusterAction.Allocate, ClusterFill.Zeros), (zero.Action, zero.Fill));
        var owned = WriteDecision.Decide(L2Entry.Zero(Host, copied: true).ToRaw(), whole: false);
        Assert.Equal((ClusterAction.ReuseZeroCluster, Host, ClusterFill.Zeros), (owned.Action, owned.Host, owned.Fill));
        var sharedZero = WriteDecision.Decide(L2Entry.Zero(Host, copied: false).ToRaw(), whole: true);
        Assert.Equal((ClusterAction.Allocate, ClusterFill.None, L2Entry.Zero(Host, copied: false).ToRaw()),
            (sharedZero.Action, sharedZero.Fill, sharedZero.ReplacedEntry));
    }

    [Fact]
    public void A_compressed_cluster_gets_a_new_cluster_filled_from_its_inflated_bytes_and_releases_every_host_cluster_it_touches()
    {
        // 64 KiB clusters: x = 54; data at host byte 0x1FF00 plus 2 more sectors runs into the next host cluster.
        const int bits = 16;
        ulong raw = L2Entry.CompressedFlag | (2UL << 54) | 0x1FF00;
        var partial = WriteDecision.Decide(raw, whole: false);
        Assert.Equal((ClusterAction.Allocate, 0L, ClusterFill.Inflate, (long)raw, raw),
            (partial.Action, partial.Host, partial.Fill, partial.Source, partial.ReplacedEntry));
        Assert.Equal(ClusterFill.None, WriteDecision.Decide(raw, whole: true).Fill);
        var released = new List<long>();
        WriteDecision.AddReferencedClusters(raw, bits, released);
        Assert.Equal([1L, 2L], released);
        released.Clear();
        WriteDecision.AddReferencedClusters(L2Entry.Data(Host, copied: true).ToRaw(), bits, released);
        WriteDecision.AddReferencedClusters(L2Entry.Zero(0, false).ToRaw(), bits, released);
        Assert.Equal([7L], released);
    }

    [Fact]
    public void A_target_that_holds_metadata_is_refused_naming_it()
    {
        var fences = new MetadataClusters(16);
        fences.Add(7, MetadataKind.L1Table);
        var e = Assert.Throws<FenceViolationException>(() => WriteDecision.CheckTarget(fences, Host, 123 << 16, 16));
        Assert.Contains("the L1 table", e.Message);
        WriteDecision.CheckTarget(fences, 8L << 16, 0, 16);
    }
}

/// <summary>The refcount table: entries, growth, and what a flush writes of it.</summary>
public sealed class RefcountTableTests
{
    private const int Cluster = 512;

    [Fact]
    public void Changed_entries_are_written_from_the_table_itself_and_new_ones_wait_while_it_is_frozen()
    {
        var table = new RefcountTable(new byte[Cluster], 3 * Cluster, Cluster);
        table.SetBlock(5, 9 * Cluster);
        var write = table.Freeze();
        Assert.NotNull(write);
        Assert.Equal((40, 48), (write.From, write.To));
        Assert.Equal(9 * Cluster, (long)BinaryPrimitives.ReadUInt64BigEndian(write.Table.AsSpan(40)));
        table.SetBlock(6, 10 * Cluster); // while the flush writes: held aside
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64BigEndian(write.Table.AsSpan(48)));
        Assert.Equal(10 * Cluster, table.BlockOffset(6));
        table.Thaw(write, written: true);
        var next = table.Freeze();
        Assert.Equal((48, 56), (next!.From, next.To));
    }

    [Fact]
    public void Moving_to_a_larger_table_keeps_every_entry_and_writes_all_of_it()
    {
        var table = new RefcountTable(new byte[Cluster], 3 * Cluster, Cluster);
        table.SetBlock(1, 4 * Cluster);
        Assert.Equal(2, table.ClustersToCover(70)); // entry 70 needs a second cluster: at least double
        table.MoveTo(20 * Cluster, 2);
        Assert.Equal(4 * Cluster, table.BlockOffset(1));
        Assert.Equal(128, table.EntryCount);
        var write = table.Freeze()!;
        Assert.Equal((0, 2 * Cluster), (write.From, write.To));
        Assert.Equal(20 * Cluster, write.Offset);
        Assert.Throws<QcowActors.Actors.Service.ImageException>(() => table.ClustersToCover(QcowLimits.MaxRefcountTableBytes / 8));
    }
}
