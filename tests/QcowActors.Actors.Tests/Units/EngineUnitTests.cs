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
    private static readonly ClusterLayout Standard = new(16, 4);
    private static readonly ClusterLayout Extended = new(16, 4, extendedL2: true);
    private const int Sc = 65536 / 32;

    /// <summary>A standard entry's decision for a write of the whole cluster or of 100 bytes in it.</summary>
    private static ClusterDecision Decide(ulong raw, bool whole) => WriteDecision.Decide(raw, default, whole ? 0 : 1000, whole ? 65536 : 100, Standard);

    private static ClusterDecision DecideExtended(ulong raw, ulong bitmap, int from, int length)
        => WriteDecision.Decide(raw, new SubclusterBitmap(bitmap), from, length, Extended);

    [Fact]
    public void A_cluster_this_image_alone_holds_is_written_in_place()
    {
        var d = Decide(L2Entry.Data(Host, copied: true).ToRaw(), whole: false);
        Assert.Equal(ClusterAction.InPlace, d.Action);
        Assert.Equal(Host, d.Host);
        Assert.Equal(ClusterFill.None, d.Fill);
        Assert.Equal(0UL, d.ReplacedEntry);
    }

    [Fact]
    public void A_shared_cluster_is_copied_and_its_reference_released()
    {
        var partial = Decide(L2Entry.Data(Host, copied: false).ToRaw(), whole: false);
        Assert.Equal(ClusterAction.Allocate, partial.Action);
        Assert.Equal(ClusterFill.CopyFrom, partial.Fill);
        Assert.Equal(Host, partial.Source);
        Assert.Equal(L2Entry.Data(Host, copied: false).ToRaw(), partial.ReplacedEntry);
        var whole = Decide(L2Entry.Data(Host, copied: false).ToRaw(), whole: true);
        Assert.Equal(ClusterFill.None, whole.Fill);
        Assert.Equal(L2Entry.Data(Host, copied: false).ToRaw(), whole.ReplacedEntry);
    }

    [Fact]
    public void Zero_and_unallocated_clusters_get_a_new_cluster_filled_with_zeros_unless_it_is_an_owned_preallocated_one()
    {
        var unallocated = Decide(0, whole: false);
        Assert.Equal((ClusterAction.Allocate, ClusterFill.Zeros, 0UL), (unallocated.Action, unallocated.Fill, unallocated.ReplacedEntry));
        var zero = Decide(L2Entry.Zero(0, false).ToRaw(), whole: false);
        Assert.Equal((ClusterAction.Allocate, ClusterFill.Zeros), (zero.Action, zero.Fill));
        var owned = Decide(L2Entry.Zero(Host, copied: true).ToRaw(), whole: false);
        Assert.Equal((ClusterAction.InPlaceAndPublish, Host, ClusterFill.Zeros), (owned.Action, owned.Host, owned.Fill));
        var sharedZero = Decide(L2Entry.Zero(Host, copied: false).ToRaw(), whole: true);
        Assert.Equal((ClusterAction.Allocate, ClusterFill.None, L2Entry.Zero(Host, copied: false).ToRaw()),
            (sharedZero.Action, sharedZero.Fill, sharedZero.ReplacedEntry));
    }

    [Fact]
    public void A_compressed_cluster_gets_a_new_cluster_filled_from_its_inflated_bytes_and_releases_every_host_cluster_it_touches()
    {
        // 64 KiB clusters: x = 54; data at host byte 0x1FF00 plus 2 more sectors runs into the next host cluster.
        const int bits = 16;
        ulong raw = L2Entry.CompressedFlag | (2UL << 54) | 0x1FF00;
        var partial = Decide(raw, whole: false);
        Assert.Equal((ClusterAction.Allocate, 0L, ClusterFill.Inflate, (long)raw, raw),
            (partial.Action, partial.Host, partial.Fill, partial.Source, partial.ReplacedEntry));
        Assert.Equal(ClusterFill.None, Decide(raw, whole: true).Fill);
        var released = new List<long>();
        WriteDecision.AddReferencedClusters(raw, bits, released);
        Assert.Equal([1L, 2L], released);
        released.Clear();
        WriteDecision.AddReferencedClusters(L2Entry.Data(Host, copied: true).ToRaw(), bits, released);
        WriteDecision.AddReferencedClusters(L2Entry.Zero(0, false).ToRaw(), bits, released);
        Assert.Equal([7L], released);
    }

    [Fact]
    public void Extended_a_write_into_allocated_subclusters_of_an_owned_cluster_is_in_place()
    {
        var d = DecideExtended(L2Entry.Data(Host, copied: true).ToRaw(), 0b1110, Sc + 5, 2 * Sc);
        Assert.Equal((ClusterAction.InPlace, Host, ClusterFill.None), (d.Action, d.Host, d.Fill));
    }

    [Fact]
    public void Extended_a_write_into_unallocated_subclusters_of_an_owned_cluster_pads_only_their_uncovered_parts()
    {
        // Subcluster 1 allocated, 2 zero, 3 unallocated; the write covers [Sc + 5, 3 * Sc + 7).
        ulong bitmap = 0b10 | (0b100UL << 32);
        var d = DecideExtended(L2Entry.Data(Host, copied: true).ToRaw(), bitmap, Sc + 5, 2 * Sc + 2);
        Assert.Equal((ClusterAction.InPlaceAndPublish, Host, ClusterFill.Zeros), (d.Action, d.Host, d.Fill));
        Assert.Equal((Sc + 5, 4 * Sc), (d.FillFrom, d.FillTo)); // 1 keeps its bytes; 3 is padded to its end
        Assert.Equal(0b1110UL, d.NewBitmap); // 1..3 allocated, 2 no longer zero
    }

    [Fact]
    public void Extended_a_write_into_an_unallocated_cluster_allocates_only_the_subclusters_it_covers()
    {
        var d = DecideExtended(0, 0, 3 * Sc + 1, 10);
        Assert.Equal((ClusterAction.Allocate, ClusterFill.Zeros, 3 * Sc, 4 * Sc, 0UL), (d.Action, d.Fill, d.FillFrom, d.FillTo, d.ReplacedEntry));
        Assert.Equal(1UL << 3, d.NewBitmap);
        var aligned = DecideExtended(0, SubclusterBitmap.AllZero, 2 * Sc, 2 * Sc);
        Assert.Equal(ClusterFill.None, aligned.Fill);
        Assert.Equal(0b1100UL | (SubclusterBitmap.AllZero & ~(0b1100UL << 32)), aligned.NewBitmap);
    }

    [Fact]
    public void Extended_a_shared_cluster_is_copied_from_its_first_to_its_last_subcluster_holding_data()
    {
        ulong raw = L2Entry.Data(Host, copied: false).ToRaw();
        ulong bitmap = (1UL << 4) | (1UL << 9) | (1UL << 20 << 32);
        var d = DecideExtended(raw, bitmap, 6 * Sc + 3, 100);
        Assert.Equal((ClusterAction.Allocate, ClusterFill.CopyFrom, Host, raw), (d.Action, d.Fill, d.Source, d.ReplacedEntry));
        Assert.Equal((4 * Sc, 10 * Sc, (uint)bitmap), (d.FillFrom, d.FillTo, d.SourceAllocated));
        Assert.Equal(SubclusterBitmap.Range(4, 9) | (1UL << 20 << 32), d.NewBitmap); // the zero subcluster 20 stays zero
    }

    [Fact]
    public void Extended_a_compressed_cluster_becomes_a_whole_allocated_cluster()
    {
        ulong raw = L2Entry.CompressedFlag | 0x30000;
        var d = DecideExtended(raw, 0, 100, 10);
        Assert.Equal((ClusterAction.Allocate, ClusterFill.Inflate, 0, 65536, SubclusterBitmap.AllAllocated),
            (d.Action, d.Fill, d.FillFrom, d.FillTo, d.NewBitmap));
    }

    [Fact]
    public void In_an_overlay_a_partial_write_into_an_unallocated_cluster_copies_the_rest_up_from_the_backing_disk()
    {
        var unallocated = WriteDecision.Decide(0, default, 1000, 100, Standard, hasBacking: true);
        Assert.Equal((ClusterAction.Allocate, ClusterFill.Zeros, uint.MaxValue), (unallocated.Action, unallocated.Fill, unallocated.FromBacking));
        // A zero cluster masks the backing disk: padded with zeros. A whole write needs nothing around it.
        Assert.Equal(0u, WriteDecision.Decide(L2Entry.Zero(0, false).ToRaw(), default, 1000, 100, Standard, hasBacking: true).FromBacking);
        Assert.Equal((ClusterFill.None, 0u), (WriteDecision.Decide(0, default, 0, 65536, Standard, hasBacking: true) is var w ? (w.Fill, w.FromBacking) : default));
        // Without a backing disk the same write is padded with zeros.
        Assert.Equal(0u, WriteDecision.Decide(0, default, 1000, 100, Standard).FromBacking);
    }

    [Fact]
    public void Extended_in_an_overlay_only_the_partly_written_subclusters_that_hold_nothing_come_from_the_backing_disk()
    {
        // Subcluster 3 reads as zeros, 5 is partly written and holds nothing, 4 is wholly written.
        ulong bitmap = 1UL << 3 << 32;
        var d = WriteDecision.Decide(0, new SubclusterBitmap(bitmap), 3 * Sc + 10, 2 * Sc + 20, Extended, hasBacking: true);
        Assert.Equal((3 * Sc, 6 * Sc), (d.FillFrom, d.FillTo));
        Assert.Equal(1u << 5, d.FromBacking);
        Assert.Equal(SubclusterBitmap.Range(3, 5), (uint)d.NewBitmap);
        // A shared cluster's copy: subclusters between its data that hold nothing come from the backing disk too.
        ulong raw = L2Entry.Data(Host, copied: false).ToRaw();
        var shared = WriteDecision.Decide(raw, new SubclusterBitmap((1UL << 2) | (1UL << 8) | (1UL << 5 << 32)), 2 * Sc, 10, Extended, hasBacking: true);
        Assert.Equal((ClusterFill.CopyFrom, 2 * Sc, 9 * Sc), (shared.Fill, shared.FillFrom, shared.FillTo));
        Assert.Equal(SubclusterBitmap.Range(3, 7) & ~(1u << 5), shared.FromBacking);
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

/// <summary>An extended entry and its bitmap are two words: readers without a round trip must never trust a torn pair.</summary>
public sealed class ExtendedEntryPublicationTests
{
    [Fact]
    public async Task Readers_never_accept_an_entry_with_another_entrys_bitmap()
    {
        const int clusterSize = 65536;
        var state = new L2TableState(0, 1L << 20, clusterSize, new ClockBit(), extended: true) { Dense = new byte[clusterSize] };
        var published = new PublishedL2Table(state.Dense, null, state.Clock, state.Version);
        static ulong BitmapFor(ulong entry) => entry * 0x9E37_79B9_7F4A_7C15UL;
        state.Set(5, 512, new SubclusterBitmap(BitmapFor(512)));
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        long accepted = 0, rejected = 0, torn = 0;
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                int seen = published.Version!.BeginRead();
                ulong entry = published.Get(5);
                ulong bitmap = published.GetBitmap(5).Raw;
                if (!published.Version.Unchanged(seen))
                {
                    Interlocked.Increment(ref rejected);
                    continue;
                }
                Interlocked.Increment(ref accepted);
                if (bitmap != BitmapFor(entry)) Interlocked.Increment(ref torn);
            }
        })).ToArray();
        var writer = Task.Run(() =>
        {
            for (ulong k = 2; !stop.IsCancellationRequested; k++)
            {
                state.Set(5, k << 9, new SubclusterBitmap(BitmapFor(k << 9)));
                if (k % 256 == 0) Thread.Sleep(1); // quiet moments, so readers on a busy machine also get clean reads
            }
        });
        await Task.WhenAll([.. readers, writer]);
        Assert.True(torn == 0, $"{torn} torn pairs accepted ({accepted} reads accepted, {rejected} rejected)");
        Assert.True(accepted > 100 && rejected > 0, $"{accepted} reads accepted, {rejected} rejected: the race was not exercised");
    }
}
