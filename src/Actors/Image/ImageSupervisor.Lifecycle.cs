using Akka.Actor;
using Akka.Event;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>The supervisor's half of flushing (<see cref="IFlushHost"/>), marking the image corrupt, and closing.</summary>
internal sealed partial class ImageSupervisor
{
    private bool _markerWritten;
    private bool _corrupt;
    /// <summary>Set after a failed fsync: what every request answers until the image is reopened.</summary>
    private ImageException? _recovering;
    private bool _closing;
    private bool _fileClosed;

    private sealed record FlushIoDone(long FlushId);
    private sealed record FlushIoFailed(long FlushId, Exception Cause);
    private sealed record GateDrained;
    private sealed record FileClosed(bool Clean);
    /// <summary>Waiters of flushes that are the supervisor's own steps rather than requests.</summary>
    private sealed record FinalFlush;
    private sealed record CorruptionRecorded;

    private bool OnFlushMessage(object message)
    {
        switch (message)
        {
            case Frozen f when f.Buffer is not null && _flush.Current?.Id != f.FlushId:
                // No run waits for it (cannot happen while runs wait for every answer): let it go at once.
                _tables.TellForFlush(f.Key, new Thaw(f.FlushId, Written: false));
                return true;
            case Frozen f:
                if (f.Buffer is not null) _tables.Pin(f.Key); // until thawed: not dropped while a flush writes its buffer
                _flush.OnFrozen(f);
                return true;
            case DecrementsApplied d:
                _flush.OnDecrementsApplied(d);
                return true;
            case FlushIoDone d:
                _flush.OnWritten(d.FlushId);
                return true;
            case FlushIoFailed f:
                _flush.OnWriteFailed(f.FlushId, f.Cause);
                return true;
            default:
                return false;
        }
    }

    /// <summary>The flush's side effects on this image: actors told, metadata collected, I/O run as tasks.</summary>
    private sealed class FlushHost(ImageSupervisor s) : IFlushHost
    {
        public void Freeze(CacheKey key, long flushId) => s._tables.TellForFlush(key, new Freeze(flushId));

        public void Thaw(CacheKey key, long flushId, bool written)
        {
            s._tables.Unpin(key);
            // A change sent to a block while frozen keeps it dirty; a table reports its own (L2Dirtied).
            if (written && !s._flush.IsDirty(key)) s._tables.MarkClean(key);
            s._tables.TellForFlush(key, new Thaw(flushId, written));
        }

        public FlushMetadata CollectL1()
        {
            var metadata = new FlushMetadata { L1Offset = s._header.L1TableOffset };
            foreach (long i in s._l1Dirty) metadata.L1Entries[i] = s._l1[i];
            s._l1Dirty.Clear();
            return metadata;
        }

        public void CollectRefcountMetadata(FlushMetadata metadata)
        {
            metadata.RefcountTable = s._refcountTable.Freeze();
            if (s._counting.HeaderDirty)
            {
                metadata.HeaderArea = s._headerAreaDirty;
                metadata.Header = s._headerAreaDirty ? ImageOpener.HeaderCluster(s._header) : s._header.FixedFields();
            }
            s._counting.HeaderDirty = false;
            s._headerAreaDirty = false;
        }

        public void MetadataWritten(FlushMetadata metadata, bool written)
        {
            long before = s._refcountTable.MemoryBytes;
            s._refcountTable.Thaw(metadata.RefcountTable, written);
            s._cache.Release(before - s._refcountTable.MemoryBytes); // a table that moved meanwhile: the old one is gone now
            if (written) return;
            foreach (long i in metadata.L1Entries.Keys) s._l1Dirty.Add(i);
            if (metadata.Header is not null) s._counting.HeaderDirty = true;
            if (metadata.HeaderArea) s._headerAreaDirty = true;
        }

        public void ApplyDecrements(long tableIndex, long[] clusters, long flushId)
        {
            var key = new CacheKey(CacheKind.RefcountBlock, tableIndex);
            if (!s._tables.HasBlock(tableIndex))
            {
                // The flush's share of the budget, which nothing else takes; a clean block dropped makes
                // room too. Without it the decrements wait for the next run: a flush never waits for memory.
                int cs = s._layout.ClusterSize;
                if (!s._cache.TryReserve(cs, ReserveFor.Flush) && (s._tables.DropClean(cs).Now < cs || !s._cache.TryReserve(cs, ReserveFor.Flush)))
                {
                    s._flush.DeferDecrements(flushId, clusters);
                    return;
                }
                s._tables.AddBlock(new RefcountBlockState(tableIndex, s._refcountTable.BlockOffset(tableIndex), cs, null));
            }
            s._tables.MarkDirty(key);
            s._tables.Block(tableIndex).Tell(new ApplyDecrements(flushId, clusters), s.Self);
        }

        public long BlockIndexOf(long cluster) => s._layout.RefcountTableIndex(cluster);

        public bool HasBlock(long tableIndex) => s._refcountTable.BlockOffset(tableIndex) != 0;

        public void WriteEntries(FlushRun run)
        {
            run.NeedsMarker = !s._markerWritten && run.HasMetadata;
            if (run.NeedsMarker) s._markerWritten = true;
            long id = run.Id;
            string marker = s._markerPath;
            var fs = s._fs;
            FlushWriter.WriteEntriesAsync(s._file, run, s._fences, async ct =>
                {
                    await Task.Run(() => fs.CreateMarker(marker), ct).ConfigureAwait(false);
                    fs.SyncDirectory(Path.GetDirectoryName(marker)!);
                })
                .PipeTo(s.Self, success: () => new FlushIoDone(id), failure: e => new FlushIoFailed(id, e));
        }

        public void WriteBlock(FrozenWrite block, long flushId)
            => FlushWriter.WriteBlockAsync(s._file, block, s._fences)
                .PipeTo(s.Self, success: () => new FlushIoDone(flushId), failure: e => new FlushIoFailed(flushId, e));

        public void Sync(long flushId)
            => s._file.FsyncAsync(CancellationToken.None).AsTask()
                .PipeTo(s.Self, success: () => new FlushIoDone(flushId), failure: e => new FlushIoFailed(flushId, e));

        public void Completed(FlushRun run, Exception? failure, IReadOnlyList<long> freed)
        {
            var reusable = new List<long>(freed.Count);
            foreach (long c in freed)
            {
                // A live table or block whose count reached 0 was miscounted: never reused, and the image is corrupt.
                if (s._fences.Freed(c) is { } kind) s.MarkCorrupt($"the refcount of cluster {c}, which holds {MetadataClusters.Describe(kind)}, dropped to 0");
                else reusable.Add(c);
            }
            s._allocator.Freed(reusable);
            if (failure is FenceViolationException v) s.MarkCorrupt(v.Message);
            else if (failure is FsyncFailedException f) s.Recover(f);
            else if (failure is not null) s._log.Error(failure, "Flush of image {0} failed", s._name);
            if (s._recovering is { } recovering) failure = recovering;
            var error = failure is null ? null : IoErrors.Map(failure is FenceViolationException ? new ImageException(ImageError.Unsupported,
                Corruption.WriteRefused(s._name, failure.Message).Message, Corruption.Feature) : failure, s._name);
            foreach (var waiter in run.Waiters)
            {
                switch (waiter)
                {
                    case IActorRef requester: requester.Tell(error is null ? new Flushed() : new Status.Failure(error)); break;
                    case FinalFlush: s.AfterFinalFlush(failure is null); break;
                    case ReplyAfterFlush r:
                        s._cache.Release(r.ReleasedMemory);
                        r.Requester.Tell(error is null ? r.Reply : new Status.Failure(error));
                        break;
                    case CorruptionRecorded: s.AskToBeClosed(); break;
                }
            }
            if (s._reclaimAfterFlush > 0)
            {
                s._tables.DropClean(s._reclaimAfterFlush);
                s._reclaimAfterFlush = 0;
            }
            s.UpdateMemberHints();
            s.Self.Tell(new CacheRoomFreed()); // what the flush wrote can be dropped now
        }
    }

    /// <summary>
    /// A write was about to land on metadata, or counts say metadata is free: QEMU's answer —
    /// mark the image corrupt (incompatible bit 1, written once, by the next flush so it cannot
    /// race another header write), refuse every write from now on, and close the image so
    /// <c>qemu-img check -r all</c> can repair it. Reads work again on the next open.
    /// </summary>
    private void MarkCorrupt(string detail)
    {
        if (_corrupt) return;
        _corrupt = true;
        _violation = null;
        _log.Error("Image {0} is corrupt: {1}; writes are refused and the image is closed for repair", _name, detail);
        _handle.RefuseWrites(Corruption.Refusal(detail));
        if (_header.Version >= 3 && (_header.IncompatibleFeatures & FeatureBits.IncompatibleCorrupt) == 0)
        {
            _header.IncompatibleFeatures |= FeatureBits.IncompatibleCorrupt;
            _counting.HeaderDirty = true;
        }
        _flush.Request(new CorruptionRecorded());
    }

    /// <summary>
    /// After a failed fsync nothing this incarnation wrote since the last good one can be called
    /// durable, and a retried fsync would not say so. Every request answers 503 from now on, the
    /// image closes without a final flush, keeping its open marker, and the next open repairs it.
    /// </summary>
    private void Recover(FsyncFailedException failure)
    {
        if (_recovering is not null) return;
        _log.Error(failure, "Image {0}: an fsync failed; closing it for recovery (the next open repairs it)", _name);
        _recovering = new ImageException(ImageError.Unavailable,
            $"image '{_name}' is being recovered after a failed fsync (its writes since the last successful flush may be lost); try again", null, failure);
        _handle.Fail(_recovering);
        AskToBeClosed();
    }

    /// <summary>The store closes us as it closes any image (requests inside drain first).</summary>
    private void AskToBeClosed() => Context.Parent.Tell(new Store.Passivate(_name));

    private void BeginClose()
    {
        if (_closing) return;
        _closing = true;
        _gate.CloseAsync().PipeTo(Self, success: () => new GateDrained());
    }

    private bool OnCloseMessage(object message)
    {
        switch (message)
        {
            case GateDrained:
                if (_recovering is not null) AfterFinalFlush(false); // no flush can be trusted: close unclean, the marker stays
                else StoreBitmapsAndClose();
                return true;
            case FileClosed c:
                _fileClosed = true;
                if (!c.Clean) _log.Warning("Image {0} closed with unflushed metadata; it will be repaired on next open", _name);
                HandOver();
                return true;
            default:
                return false;
        }
    }

    private void AfterFinalFlush(bool clean)
    {
        clean &= _flush.PendingDecrements == 0 && _flush.DirtyTables == 0 && _flush.DirtyBlocks == 0;
        CloseFileAsync(clean).PipeTo(Self, success: () => new FileClosed(clean));
    }

    private async Task CloseFileAsync(bool clean)
    {
        await _file.DisposeAsync().ConfigureAwait(false);
        if (Interlocked.Exchange(ref _backing, null) is { } backing) await _chains.ReleaseAsync(backing).ConfigureAwait(false);
        if (clean && FileKind.Of(_markerPath) != FileKindValue.Missing)
        {
            File.Delete(_markerPath);
            _fs.SyncDirectory(Path.GetDirectoryName(_markerPath)!);
        }
    }

    /// <summary>
    /// The store keeps routing to us until it has our ReadyToStop; whatever reaches us after it goes
    /// back to the store, which holds it for the next incarnation. Its StopNow comes after every
    /// message it sent us, so nothing is dropped.
    /// </summary>
    private void HandOver()
    {
        Timers.CancelAll();
        foreach (var w in _roomWaiters)
            if (w.Message is IImageMessage) Context.Parent.Tell(w.Message, w.Sender);
        _roomWaiters.Clear();
        foreach (var (message, sender) in _bitmapQueue)
            if (message is IImageMessage) Context.Parent.Tell(message, sender);
        _bitmapQueue.Clear();
        Context.Parent.Tell(new Store.ImageReadyToStop(_name));
        Become(message =>
        {
            if (message is Store.StopNow) Context.Stop(Self);
            else if (message is IImageMessage) Context.Parent.Forward(message);
        });
    }

    protected override void PostStop()
    {
        // Children have stopped by now: their buffers go back to the pool, every reserved byte to the budget.
        _tables?.ReleaseAll();
        _budget.Leave(_member);
        if (Interlocked.Exchange(ref _backing, null) is { } backing) _ = _chains.ReleaseAsync(backing);
        if (_file is null || _fileClosed) return;
        // Stopped without a clean close (a failure): release the handle; the marker stays, so the next open repairs.
        _log.Warning("Image {0} stopped without a clean close; it will be checked for leaks on next open", _name);
        _ = _file.DisposeAsync(); // closing a handle completes synchronously; nothing to await in PostStop
    }
}
