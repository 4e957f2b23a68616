using Akka.Actor;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>Tables into memory and out of it, within the budget: the supervisor's half of <see cref="ImageTables"/> and <see cref="MetadataBudget"/>.</summary>
internal sealed partial class ImageSupervisor
{
    private readonly CacheMember _member;
    private readonly Queue<RoomWaiter> _roomWaiters = new();
    private DateTime? _retryingSince;
    /// <summary>Bytes another image asked for that a write-back of ours must free once it is done.</summary>
    private long _reclaimAfterFlush;

    private sealed record RoomWaiter(object Message, IActorRef Sender, DateTime Since, long Bytes, ReserveFor Tier);
    /// <summary>What the last reservation that failed asked for, and in which tier: the room a waiting message needs.</summary>
    private long _lastNeed;
    private ReserveFor _lastTier;
    private sealed record ReclaimCache(long Bytes);
    private sealed record CacheRoomFreed;
    private sealed record ExpireRoomWaiters;

    /// <summary>This image as a member of the process budget: the budget's calls become messages.</summary>
    private sealed class CacheMember(IActorRef self) : ICacheMember
    {
        public long Clean;
        public long Dirty;
        public long CleanBytes => Volatile.Read(ref Clean);
        public long DirtyBytes => Volatile.Read(ref Dirty);
        public void Reclaim(long bytes) => self.Tell(new ReclaimCache(bytes));
        public void RoomFreed() => self.Tell(new CacheRoomFreed());
    }

    private L2TableState NewTableState(long i, long hostOffset) => new(i, hostOffset, _layout.ClusterSize, new ClockBit(), _layout.ExtendedL2);

    /// <summary>Reads table i into memory if a cluster's room can be reserved; its writes wait until it is loaded.</summary>
    private bool TryLoadTable(long i)
    {
        if (!Reserve(_layout.ClusterSize)) return false;
        _tables.StartTable(NewTableState(i, L1Entry.From(_l1[i]).L2Offset), _layout.ClusterSize);
        _loading[i] = [];
        return true;
    }

    /// <summary>A new, empty table for an unallocated L1 slot.</summary>
    private bool TryCreateTable(long i)
    {
        int cs = _layout.ClusterSize;
        if (!Reserve(cs)) return false;
        Allocation? taken;
        try { taken = TryTakeCounted(1); }
        catch
        {
            _cache.Release(cs);
            throw;
        }
        if (taken is not { } table)
        {
            _cache.Release(cs);
            return false;
        }
        long host = table.Clusters[0] << _layout.ClusterBits;
        if (_fences.Add(table.Clusters[0], MetadataKind.L2Table) is { } held)
        {
            _cache.Release(cs);
            throw new FenceViolationException(table.Clusters[0], held, $"the new L2 table's cluster {table.Clusters[0]} already holds {MetadataClusters.Describe(held)}");
        }
        var state = NewTableState(i, host);
        state.Dense = _budget.Pool.Rent(cs, zeroed: true);
        // Past the end of the file the cluster reads as zeros: only what changes needs writing. A
        // reused cluster holds old bytes: the whole table is written.
        if (table.Fresh[0]) state.MarkFresh();
        else state.MarkAllDirty();
        var entry = _tables.StartTable(state, cs);
        _cache.SetDirty(entry, true);
        _flush.TableDirtied(i);
        SetL1(i, L1Entry.Create(host, copied: true));
        return true;
    }

    /// <summary>
    /// A table shared with a snapshot (refcount > 1) gets its own copy before a change: a new
    /// cluster, written whole by the next flush; the old one loses this reference once L1 no
    /// longer points to it durably.
    /// </summary>
    private bool TryRelocate(long i)
    {
        if (TryTakeCounted(1) is not { } taken) return false;
        long cluster = taken.Clusters[0];
        if (_fences.Add(cluster, MetadataKind.L2Table) is { } held)
            throw new FenceViolationException(cluster, held, $"the copied L2 table's cluster {cluster} already holds {MetadataClusters.Describe(held)}");
        var old = L1Entry.From(_l1[i]);
        _fences.Retire(old.L2Offset >> _layout.ClusterBits);
        _flush.AddDecrements([old.L2Offset >> _layout.ClusterBits]);
        SetL1(i, L1Entry.Create(cluster << _layout.ClusterBits, copied: true));
        // Dirty from now, for the flush too: a flush that writes this L1 entry must write the copy
        // (its freeze reaches the actor after RelocateTable).
        _tables.Tell(i, new RelocateTable(cluster << _layout.ClusterBits));
        _flush.TableDirtied(i);
        return true;
    }

    /// <summary>A compact table becomes a dense cluster before its first change: that cluster is reserved first.</summary>
    private bool TryDensify(long i, CacheEntry entry)
    {
        _lastNeed = _layout.ClusterSize - entry.Bytes;
        _lastTier = ReserveFor.Request;
        if (!_cache.TryGrow(entry, _layout.ClusterSize, ReserveFor.Request)) return false;
        _tables.Tell(i, new DensifyL2(_budget.Pool.Rent(_layout.ClusterSize, zeroed: false)));
        return true;
    }

    /// <summary>Reserves for a request (not the flush share); remembers the need when there is no room.</summary>
    private bool Reserve(long bytes)
    {
        _lastNeed = bytes;
        _lastTier = ReserveFor.Request;
        return _cache.TryReserve(bytes, ReserveFor.Request);
    }

    /// <summary>Clusters counted (<see cref="CountedAllocation"/>), or null with the need remembered.</summary>
    private Allocation? TryTakeCounted(int n)
    {
        var taken = _counting.TryTake(n, out long need);
        _lastNeed = need;
        _lastTier = ReserveFor.Counting;
        return taken;
    }

    private void SetL1(long i, L1Entry entry)
    {
        // Readers map from L1 on request threads (L2Directory): one aligned word, written volatile.
        Volatile.Write(ref _l1[i], entry.ToRaw());
        _l1Dirty.Add(i);
    }

    private bool OnTableMessage(object message)
    {
        switch (message)
        {
            case L2Dirtied d:
                _flush.TableDirtied(d.L1Index);
                _tables.MarkDirty(new CacheKey(CacheKind.L2Table, d.L1Index));
                UpdateMemberHints();
                return true;
            case L2Loaded l:
                _tables.Loaded(l.L1Index, l.Bytes);
                if (_loading.Remove(l.L1Index, out var ready))
                    foreach (var (m, sender) in ready) Self.Tell(m, sender);
                UpdateMemberHints();
                return true;
            case L2LoadFailed f:
                if (_loading.Remove(f.L1Index, out var stranded))
                    foreach (var (_, sender) in stranded)
                        sender.Tell(new Status.Failure(new ImageException(ImageError.Unavailable,
                            $"image '{_name}': reading L2 table {f.L1Index} failed; try again")));
                _tables.LoadFailed(f.L1Index, Sender);
                return true;
            case L2Stopped s:
                foreach (var (m, sender) in _tables.Stopped(s.L1Index))
                {
                    // A table stops only when clean: a flush's freeze that waited for it finds nothing to write.
                    if (m is Freeze f) _flush.OnFrozen(new Frozen(f.FlushId, new CacheKey(CacheKind.L2Table, s.L1Index), 0, null, []));
                    else if (m is not Thaw) Self.Tell(m, sender); // routed afresh: a new actor reloads it
                }
                UpdateMemberHints();
                Self.Tell(new CacheRoomFreed());
                return true;
            case L2StayAlive a:
                foreach (var (m, sender) in _tables.StayedAlive(a.L1Index)) _tables.Send(a.L1Index, m, sender);
                return true;
            default:
                return false;
        }
    }

    /// <summary>The message needs memory the budget cannot give now (<see cref="_lastNeed"/>): it waits, in order, and room is made.</summary>
    private void WaitForRoom(object message)
    {
        long need = Math.Max(_lastNeed, _layout.ClusterSize);
        _roomWaiters.Enqueue(new RoomWaiter(message, Sender, _retryingSince ?? DateTime.UtcNow, need, _lastTier));
        if (!Timers.IsTimerActive("room")) Timers.StartPeriodicTimer("room", new ExpireRoomWaiters(), TimeSpan.FromSeconds(1));
        MakeRoom(need, _lastTier);
    }

    /// <summary>
    /// Drops our own clean tables and blocks first. If the image's own budget is what is full, its
    /// dirty ones are written back (then dropped); if the process's is, the budget asks the image
    /// that can give room soonest.
    /// </summary>
    private void MakeRoom(long bytes, ReserveFor tier)
    {
        var (now, pending) = _tables.DropClean(bytes);
        UpdateMemberHints();
        if (now > 0) Self.Tell(new CacheRoomFreed());
        if (now + pending >= bytes) return;
        if (_cache.ImageFull(bytes, tier))
        {
            if (_cache.DirtyBytes > 0 && !_flush.Running) _flush.Request(null);
        }
        else
        {
            _budget.NeedRoom(_member, bytes);
        }
    }

    private bool OnRoomMessage(object message)
    {
        switch (message)
        {
            case CacheRoomFreed:
                RetryRoomWaiters();
                return true;
            case ReclaimCache r:
                var (now, pending) = _tables.DropClean(r.Bytes);
                UpdateMemberHints();
                if (now + pending < r.Bytes && _cache.DirtyBytes > 0)
                {
                    // Over the process budget, the image holding the most dirty tables writes them back first.
                    _reclaimAfterFlush = Math.Max(_reclaimAfterFlush, r.Bytes - now - pending); // asked again while waiting: not more
                    _flush.Request(null);
                }
                return true;
            case ExpireRoomWaiters:
                ExpireWaiters();
                return true;
            default:
                return false;
        }
    }

    private void RetryRoomWaiters()
    {
        if (_roomWaiters.Count == 0) return;
        var waiting = _roomWaiters.ToArray();
        _roomWaiters.Clear();
        foreach (var w in waiting)
        {
            _retryingSince = w.Since;
            try { Dispatch(w.Message, w.Sender); }
            finally { _retryingSince = null; }
        }
    }

    /// <summary>
    /// Handles a waiting message again, in its turn, on behalf of its original requester: the
    /// handlers read <see cref="Sender"/>, which is that requester while this runs (telling the
    /// message to ourselves would put it behind newer ones).
    /// </summary>
    private void Dispatch(object message, IActorRef sender)
    {
        _dispatchSender = sender;
        try { OnReceive(message); }
        finally { _dispatchSender = null; }
    }

    private IActorRef? _dispatchSender;

    private new IActorRef Sender => _dispatchSender ?? base.Sender;

    private void ExpireWaiters()
    {
        var cutoff = DateTime.UtcNow - _waitLimit;
        int count = _roomWaiters.Count;
        for (int k = 0; k < count; k++)
        {
            var w = _roomWaiters.Dequeue();
            if (w.Since > cutoff)
            {
                _roomWaiters.Enqueue(w);
                continue;
            }
            var error = new ImageException(ImageError.Unavailable,
                $"image '{_name}': the metadata cache stayed full for {_waitLimit.TotalSeconds:0.#} s (Storage:MetadataCacheBytesPerImage/Total); try again");
            if (w.Message is AllocateForPlan a) w.Sender.Tell(new AllocationFailed(a.PlanId, error));
            else w.Sender.Tell(new Status.Failure(error));
        }
        if (_roomWaiters.Count == 0) Timers.Cancel("room");
        else MakeRoom(_roomWaiters.Peek().Bytes, _roomWaiters.Peek().Tier);
    }

    /// <summary>What the budget reads of us without a lock (hints for picking whom to ask for room).</summary>
    private void UpdateMemberHints()
    {
        Volatile.Write(ref _member.Clean, _cache.CleanBytes);
        Volatile.Write(ref _member.Dirty, _cache.DirtyBytes);
    }
}
