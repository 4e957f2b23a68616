using QcowActors.Actors.Image;
using Xunit;

namespace QcowActors.Actors.Tests.Units;

/// <summary>The flush's order and what it touches, with a host that records what it is asked to do.</summary>
public sealed class FlushCoordinatorTests
{
    private static CacheKey Table(long i) => new(CacheKind.L2Table, i);
    private static CacheKey Block(long t) => new(CacheKind.RefcountBlock, t);

    private sealed class RecordingHost : IFlushHost
    {
        public List<string> Calls { get; } = [];
        public FlushMetadata Metadata { get; set; } = new();
        public List<(FlushRun Run, Exception? Failure, IReadOnlyList<long> Freed)> Completions { get; } = [];
        public HashSet<long> Blocks { get; } = [0, 1];

        public void Freeze(CacheKey key, long flushId) => Calls.Add($"freeze {key.Kind} {key.Index}");
        public void Thaw(CacheKey key, long flushId, bool written) => Calls.Add($"thaw {key.Kind} {key.Index} {(written ? "written" : "unwritten")}");
        public FlushMetadata CollectL1() { Calls.Add("collect L1"); return Metadata; }
        public void CollectRefcountMetadata(FlushMetadata metadata) => Calls.Add("collect refcount table and header");
        public void MetadataWritten(FlushMetadata metadata, bool written) => Calls.Add($"metadata {(written ? "written" : "unwritten")}");
        public void ApplyDecrements(long tableIndex, long[] clusters, long flushId) => Calls.Add($"decrement {tableIndex}: {string.Join(",", clusters)}");
        public long BlockIndexOf(long cluster) => cluster / 100;
        public bool HasBlock(long tableIndex) => Blocks.Contains(tableIndex);
        public void WriteEntries(FlushRun run) => Calls.Add($"write {run.L2Tables.Count} tables {run.Blocks.Count} blocks");
        public void WriteBlock(FrozenWrite block, long flushId) => Calls.Add($"write decremented block {block.Key.Index}");
        public void Sync(long flushId) => Calls.Add("fsync");
        public void Completed(FlushRun run, Exception? failure, IReadOnlyList<long> freed) => Completions.Add((run, failure, freed));
    }

    private static Frozen Dirty(long id, CacheKey key) => new(id, key, 0, new byte[8], [(0, 8)]);
    private static Frozen Clean(long id, CacheKey key) => new(id, key, 0, null, []);

    [Fact]
    public void Only_what_is_dirty_is_frozen_L1_before_tables_before_blocks_and_blocks_only_once_every_table_answered()
    {
        var host = new RecordingHost();
        var flush = new FlushCoordinator(host);
        flush.TableDirtied(3);
        flush.TableDirtied(7);
        flush.BlockDirtied(1);
        flush.Request("waiter");
        // L1 first: every table an entry written points to is among those frozen now.
        Assert.Equal(["collect L1", "freeze L2Table 3", "freeze L2Table 7"], host.Calls);

        flush.OnFrozen(Dirty(1, Table(3)));
        Assert.DoesNotContain("collect refcount table and header", host.Calls); // table 7 has not answered
        flush.OnFrozen(Clean(1, Table(7)));
        Assert.Equal(["collect refcount table and header", "freeze RefcountBlock 1"], host.Calls.Skip(3));

        flush.OnFrozen(Dirty(1, Block(1)));
        Assert.Equal("write 1 tables 1 blocks", host.Calls[^1]);
        flush.OnWritten(1);
        Assert.Contains("thaw L2Table 3 written", host.Calls);
        Assert.Contains("thaw RefcountBlock 1 written", host.Calls);
        Assert.DoesNotContain(host.Calls, c => c.Contains("L2Table 7") && c.StartsWith("thaw")); // it was clean: never frozen
        var done = Assert.Single(host.Completions);
        Assert.Null(done.Failure);
        Assert.Equal(["waiter"], done.Run.Waiters);
        Assert.False(flush.Running);
    }

    [Fact]
    public void Decrements_wait_for_the_entries_to_be_durable_then_go_block_by_block_and_free_after_the_fsync()
    {
        var host = new RecordingHost();
        var flush = new FlushCoordinator(host);
        flush.AddDecrements([5, 105, 106, 950]); // blocks 0 and 1; 950 lies under no block (a corrupt reference)
        flush.Request(null);
        Assert.Equal("write 0 tables 0 blocks", host.Calls[^1]);
        Assert.DoesNotContain(host.Calls, c => c.StartsWith("decrement"));
        flush.OnWritten(1);
        Assert.Equal("decrement 0: 5", host.Calls[^1]);
        flush.OnDecrementsApplied(new DecrementsApplied(1, 0, [5]));
        Assert.Equal("freeze RefcountBlock 0", host.Calls[^1]);
        flush.OnFrozen(Dirty(1, Block(0)));
        Assert.Equal("write decremented block 0", host.Calls[^1]);
        flush.OnWritten(1);
        Assert.Equal("decrement 1: 105,106", host.Calls[^1]); // one block at a time
        flush.OnDecrementsApplied(new DecrementsApplied(1, 1, []));
        flush.OnFrozen(Dirty(1, Block(1)));
        flush.OnWritten(1);
        Assert.Equal("fsync", host.Calls[^1]);
        Assert.Empty(host.Completions); // nothing is free before the fsync
        flush.OnWritten(1);
        Assert.Equal([5L], Assert.Single(host.Completions).Freed);
    }

    [Fact]
    public void Decrements_of_a_block_there_is_no_room_for_wait_for_the_next_run_and_the_flush_finishes()
    {
        var host = new RecordingHost();
        var flush = new FlushCoordinator(host);
        flush.AddDecrements([5, 105]);
        flush.Request("first");
        flush.OnWritten(1);
        Assert.Equal("decrement 0: 5", host.Calls[^1]);
        flush.DeferDecrements(1, [5]); // no room to read block 0 in
        Assert.Equal("decrement 1: 105", host.Calls[^1]);
        flush.OnDecrementsApplied(new DecrementsApplied(1, 1, [105]));
        flush.OnFrozen(Dirty(1, Block(1)));
        flush.OnWritten(1);
        flush.OnWritten(1); // the fsync
        var first = Assert.Single(host.Completions);
        Assert.Null(first.Failure);
        Assert.Equal([105L], first.Freed);
        Assert.Equal(1, flush.PendingDecrements);

        flush.Request("second");
        flush.OnWritten(2);
        Assert.Equal("decrement 0: 5", host.Calls[^1]);
    }

    [Fact]
    public void A_failed_write_thaws_everything_dirty_again_and_the_next_run_writes_it_all()
    {
        var host = new RecordingHost();
        var flush = new FlushCoordinator(host);
        flush.TableDirtied(2);
        flush.BlockDirtied(0);
        flush.AddDecrements([7]);
        flush.Request("first");
        flush.OnFrozen(Dirty(1, Table(2)));
        flush.OnFrozen(Dirty(1, Block(0)));
        flush.OnWriteFailed(1, new IOException("EIO"));
        Assert.Contains("thaw L2Table 2 unwritten", host.Calls);
        Assert.Contains("thaw RefcountBlock 0 unwritten", host.Calls);
        Assert.Contains("metadata unwritten", host.Calls);
        Assert.IsType<IOException>(Assert.Single(host.Completions).Failure);

        host.Calls.Clear();
        flush.Request("second");
        Assert.Equal(["collect L1", "freeze L2Table 2"], host.Calls);
        flush.OnFrozen(Dirty(2, Table(2)));
        Assert.Equal("freeze RefcountBlock 0", host.Calls[^1]);
        flush.OnFrozen(Dirty(2, Block(0)));
        flush.OnWritten(2);
        Assert.Equal("decrement 0: 7", host.Calls[^1]); // the decrement was kept for after the entries
    }

    [Fact]
    public void Requests_during_a_run_join_the_next_one()
    {
        var host = new RecordingHost();
        var flush = new FlushCoordinator(host);
        flush.TableDirtied(1);
        flush.Request("a");
        flush.TableDirtied(9); // dirtied after the run froze its tables
        flush.Request("b");
        flush.OnFrozen(Dirty(1, Table(1)));
        flush.OnWritten(1);
        Assert.Equal(["a"], host.Completions[0].Run.Waiters);
        Assert.Equal("freeze L2Table 9", host.Calls[^1]); // the next run started at once, for b
        Assert.True(flush.Running);
        Assert.Equal(["b"], flush.Current!.Waiters);
    }
}
