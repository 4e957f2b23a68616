using Akka.Event;
using System.Buffers.Binary;
using Akka.Actor;
using QcowActors.Actors.Service;

namespace QcowActors.Actors.Image;

/// <summary>
/// Flush ordering. Snapshots are taken L1 first, then L2 tables, then refcount blocks: any entry
/// in a collected L2 table was committed after its clusters' increments were sent to the block
/// actors, and those increments precede our collect message in their mailboxes. The I/O then runs
/// outside the mailbox (<see cref="FlushWriter"/>); decrements are applied only after the entries
/// that dropped the references are durable. Requests arriving during a flush join the next one.
/// </summary>
internal sealed partial class ImageSupervisor
{
    private List<IActorRef> _flushWaiters = [];
    private FlushRun? _flush;
    private FlushRun? _failedRun;
    private long _flushSeq;
    private bool _markerWritten;

    private void RequestFlush(IActorRef? requester)
    {
        if (requester is not null && !requester.IsNobody()) _flushWaiters.Add(requester);
        else _flushWaiters.Add(ActorRefs.Nobody);
        if (_flush is null) StartFlush();
    }

    private void StartFlush()
    {
        var run = new FlushRun(++_flushSeq, _flushWaiters) { L1Offset = _header.L1TableOffset };
        _flushWaiters = [];
        _flush = run;
        foreach (long i in _l1Dirty) run.L1Entries[i] = _l1[i];
        _l1Dirty.Clear();
        run.Decrements = [.. _pendingDecrements];
        _pendingDecrements.Clear();
        run.Outstanding = _l2Actors.Count;
        foreach (long i in _l2Actors.Keys.ToList()) SendToL2(i, new CollectL2(run.Id), Self);
        if (run.Outstanding == 0) CollectRefcounts(run);
    }

    private void CollectRefcounts(FlushRun run)
    {
        run.RefcountBlocks.Clear();
        if (run.Phase == 1)
        {
            if (_headerDirty)
            {
                var cluster = new byte[_layout.ClusterSize];
                _header.WriteTo(cluster);
                run.Header = cluster; // whole cluster: no stale extension bytes after a shorter header
                _headerDirty = false;
            }
            if (_refTableDirty)
            {
                var bytes = new byte[_refTable.Length * 8];
                for (int k = 0; k < _refTable.Length; k++) BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(k * 8), _refTable[k]);
                run.RefcountTable = bytes;
                run.RefcountTableOffset = _header.RefcountTableOffset;
                _refTableDirty = false;
            }
        }
        // Blocks created since the last flush have states but maybe no actor yet. What they hold now
        // is collected here; changes sent from now on keep them in memory until the next flush.
        foreach (long t in _rcStates.Keys.ToList()) RefcountActor(t);
        _rcChanged.Clear();
        run.Outstanding = _rcActors.Count;
        foreach (var actor in _rcActors.Values) actor.Tell(new CollectRefcounts(run.Id));
        if (run.Outstanding == 0) StartIo(run);
    }

    private void StartIo(FlushRun run)
    {
        if (_failedRun is not null)
        {
            // An earlier flush failed after its snapshots were taken: write them first, ours overwrite them.
            Prepend(run, _failedRun);
            _failedRun = null;
        }
        run.NeedsMarker = run.Phase == 1 && !_markerWritten && run.HasMetadata;
        if (run.NeedsMarker) _markerWritten = true;
        long id = run.Id;
        FlushWriter.WriteAsync(_file, run, _markerPath, _fs.SyncDirectory)
            .PipeTo(Self, success: () => new FlushIoDone(id), failure: e => new FlushIoFailed(id, e));
    }

    private static void Prepend(FlushRun run, FlushRun failed)
    {
        foreach (var (i, v) in failed.L1Entries) run.L1Entries.TryAdd(i, v);
        run.L2Tables.InsertRange(0, failed.L2Tables.Where(o => !run.L2Tables.Any(n => n.L1Index == o.L1Index)));
        run.RefcountBlocks.InsertRange(0, failed.RefcountBlocks.Where(o => !run.RefcountBlocks.Any(n => n.TableIndex == o.TableIndex)));
        run.Header ??= failed.Header;
        if (run.RefcountTable is null && failed.RefcountTable is not null)
        {
            run.RefcountTable = failed.RefcountTable;
            run.RefcountTableOffset = failed.RefcountTableOffset;
        }
    }

    private bool OnFlushMessage(object message)
    {
        switch (message)
        {
            case L2Snapshot s when _flush is { } run && s.FlushId == run.Id:
                if (s.Bytes is not null) run.L2Tables.Add(s);
                if (--run.Outstanding == 0) CollectRefcounts(run);
                return true;
            case RefcountSnapshot r when _flush is { } run && r.FlushId == run.Id:
                if (r.Bytes is not null) run.RefcountBlocks.Add(r);
                if (--run.Outstanding == 0) StartIo(run);
                return true;
            case FlushIoDone d when _flush is { } run && d.FlushId == run.Id:
                if (run.Phase == 1 && run.Decrements.Length > 0) ApplyDecrements(run);
                else FinishFlush(run, null);
                return true;
            case DecrementsApplied a when _flush is { } run && a.FlushId == run.Id:
                run.Freed.AddRange(a.Freed);
                if (--run.Outstanding == 0)
                {
                    run.Phase = 2;
                    CollectRefcounts(run);
                }
                return true;
            case FlushIoFailed f when _flush is { } run && f.FlushId == run.Id:
                FinishFlush(run, f.Cause);
                return true;
            default:
                return false;
        }
    }

    private void ApplyDecrements(FlushRun run)
    {
        // A reference to a cluster no block covers can only come from a corrupt image: nothing to decrement.
        var byBlock = run.Decrements.GroupBy(c => _layout.RefcountTableIndex(c)).Where(g => HasRefcountBlock(g.Key)).ToList();
        run.Outstanding = byBlock.Count;
        foreach (var group in byBlock) ChangeRefcounts(group.Key, new ApplyDecrements(run.Id, [.. group]));
        if (byBlock.Count == 0) FinishFlush(run, null);
    }

    private bool HasRefcountBlock(long t) => t < _refTable.Length && (_refTable[t] & RefcountTableOffsetMask) != 0;

    private void FinishFlush(FlushRun run, Exception? failure)
    {
        _flush = null;
        if (failure is null)
        {
            _allocator.Freed(run.Freed);
            foreach (var w in run.Waiters) if (!w.IsNobody()) w.Tell(new Flushed());
        }
        else
        {
            _log.Error(failure, "Flush of image {0} failed", _name);
            if (run.Phase == 1)
            {
                _failedRun = run;
                _pendingDecrements.AddRange(run.Decrements);
            }
            else
            {
                _failedRun = new FlushRun(0, []);
                _failedRun.RefcountBlocks.AddRange(run.RefcountBlocks);
            }
            var error = IoErrors.Map(failure, _name);
            foreach (var w in run.Waiters) if (!w.IsNobody()) w.Tell(new Status.Failure(error));
        }
        if (_flushWaiters.Count > 0) StartFlush();
        else if (!_closing)
        {
            EvictIfOverBudget(-1);
            EvictRefcountBlocks();
        }
        AfterFlush();
    }
}
