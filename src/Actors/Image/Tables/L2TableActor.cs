using Akka.Actor;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// Owns one L2 table: decides per cluster how a write lands (<see cref="WriteDecision"/>),
/// publishes entries when the data is in the file, and answers mappings for reads. It never
/// waits for data I/O or an fsync: the bytes move in the request, and the table is written by
/// the supervisor's flush straight from its buffer, while this actor holds changes (frozen).
/// </summary>
internal sealed class L2TableActor : UntypedActor, IWithStash, IWithTimers
{
    private static readonly TimeSpan PlanLifetime = TimeSpan.FromMinutes(10);
    private readonly L2TableState _state;
    private readonly ClusterLayout _layout;
    private readonly IImageFile _file;
    private readonly bool _zeroFlagAllowed;
    private readonly L2Directory _directory;
    private readonly MetadataClusters _fences;
    private readonly MetadataBudget _budget;
    private readonly string _image;

    private sealed record ExpirePlan(long PlanId);

    public L2TableActor(string image, L2TableState state, ClusterLayout layout, IImageFile file, bool zeroFlagAllowed,
        L2Directory directory, MetadataClusters fences, MetadataBudget budget)
    {
        _image = image;
        _state = state;
        _layout = layout;
        _file = file;
        _zeroFlagAllowed = zeroFlagAllowed;
        _directory = directory;
        _fences = fences;
        _budget = budget;
    }

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string image, L2TableState state, ClusterLayout layout, IImageFile file, bool zeroFlagAllowed,
        L2Directory directory, MetadataClusters fences, MetadataBudget budget)
        => Akka.Actor.Props.Create(() => new L2TableActor(image, state, layout, file, zeroFlagAllowed, directory, fences, budget));

    private long TableStart => _layout.L2TableStart(_state.L1Index);

    protected override void PreStart()
    {
        if (!_state.IsLoaded)
        {
            Become(Loading);
            LoadAsync().PipeTo(Self);
        }
    }

    /// <summary>
    /// The table from the file into a buffer the supervisor reserved (a cluster): kept as it is, or
    /// as a <see cref="SparseL2Table"/> when few slots are used (the buffer then goes back to the pool).
    /// </summary>
    private async Task<object> LoadAsync()
    {
        byte[] buffer = _budget.Pool.Rent(_layout.ClusterSize, zeroed: false);
        try
        {
            await _file.ReadAsync(buffer, _state.HostOffset, CancellationToken.None).ConfigureAwait(false);
        }
        catch
        {
            _budget.Recycle(buffer);
            throw;
        }
        // Extended entries stay dense: their readers check one sequence lock over the buffer.
        if (!_layout.ExtendedL2 && SparseL2Table.TryFrom(buffer, _layout.L2Entries) is { } sparse)
        {
            _budget.Recycle(buffer);
            return sparse;
        }
        return buffer;
    }

    private void Loading(object message)
    {
        switch (message)
        {
            case byte[] or SparseL2Table:
                _state.Dense = message as byte[];
                _state.Sparse = message as SparseL2Table;
                _directory.Publish(_state);
                Context.Parent.Tell(new L2Loaded(_state.L1Index, _state.Sparse?.MemoryBytes ?? _layout.ClusterSize));
                Become(OnReceive);
                Stash.UnstashAll();
                break;
            case Status.Failure f:
                // Nothing was loaded, so nothing can be lost: answer what waits with 503 and let the
                // supervisor replace this actor; the next request tries the read again.
                Become(m => LoadFailed(m, f.Cause));
                Stash.UnstashAll();
                Context.Parent.Tell(new L2LoadFailed(_state.L1Index));
                break;
            default:
                Stash.Stash();
                break;
        }
    }

    private void LoadFailed(object message, Exception cause)
    {
        switch (message)
        {
            case StopL2Table s:
                Sender.Tell(new L2Stopped(s.L1Index));
                Context.Stop(Self);
                break;
            case Freeze f:
                Sender.Tell(new Frozen(f.FlushId, Key, _state.HostOffset, null, []));
                break;
            case DensifyL2 d:
                _budget.Recycle(d.Buffer);
                break;
            case IImageMessage m:
                Sender.Tell(new Status.Failure(new ImageException(ImageError.Unavailable,
                    $"image '{m.Image}': reading L2 table {_state.L1Index} failed; try again", null, cause)));
                break;
        }
    }

    private CacheKey Key => new(CacheKind.L2Table, _state.L1Index);

    protected override void OnReceive(object message)
    {
        if (_state.IsFrozen && message is CommitWrite or ZeroClusters or DensifyL2 or RelocateTable)
        {
            Stash.Stash(); // the flush is writing the buffer; changes wait for Thaw
            return;
        }
        switch (message)
        {
            case MapRange m: Sender.Tell(Map(m)); break;
            case PrepareWrite w: Prepare(w, Sender); break;
            case ClustersAllocated a: HostsAllocated(a); break;
            case AllocationFailed f: AllocationFailed(f); break;
            case CommitWrite c: Commit(c); break;
            case AbortWrite a: Abort(a.PlanId); break;
            case ExpirePlan e: Abort(e.PlanId); break;
            case ZeroClusters z: Zero(z, Sender); break;
            case GetL2Extents: Sender.Tell(new ExtentRuns(L2Directory.ExtentsOf(_state.Published!, _layout, TableStart))); break;
            case DensifyL2 d: Densify(d.Buffer); break;
            case RelocateTable r:
                // The supervisor makes a table dense before it copies it: a copy is written whole at its new place.
                if (_state.Dense is null) throw new InvalidOperationException($"L2 table {_state.L1Index} is copied while compact");
                _state.HostOffset = r.NewOffset;
                Changed(() => _state.MarkAllDirty());
                break;
            case Freeze f: FreezeForFlush(f); break;
            case Thaw t:
                _state.IsFrozen = false;
                if (!t.Written) Changed(() => _state.MarkAllDirty());
                Stash.UnstashAll();
                break;
            case StopL2Table s:
                if (_state.Dirty || _state.IsFrozen || !_state.Idle)
                {
                    Sender.Tell(new L2StayAlive(s.L1Index));
                }
                else
                {
                    Sender.Tell(new L2Stopped(s.L1Index));
                    Context.Stop(Self);
                }
                break;
            case CrashL2Table: throw new InvalidOperationException($"L2 table {_state.L1Index} crashed on request (test hook)");
            default: Unhandled(message); break;
        }
    }

    private void FreezeForFlush(Freeze f)
    {
        if (!_state.Dirty)
        {
            Sender.Tell(new Frozen(f.FlushId, Key, _state.HostOffset, null, []));
            return;
        }
        // Until Thaw nothing changes the buffer; the flush writes these ranges straight from it.
        _state.IsFrozen = true;
        Sender.Tell(new Frozen(f.FlushId, Key, _state.HostOffset, _state.Dense!, _state.TakeDirty()));
    }

    /// <summary>Applies a change and tells the supervisor when the table goes from clean to dirty.</summary>
    private void Changed(Action change)
    {
        bool wasDirty = _state.Dirty;
        change();
        if (!wasDirty && _state.Dirty) Context.Parent.Tell(new L2Dirtied(_state.L1Index));
    }

    /// <summary>The compact table becomes dense in a buffer the supervisor reserved, and readers are switched to it.</summary>
    private void Densify(byte[] buffer)
    {
        if (_state.Dense is not null)
        {
            _budget.Recycle(buffer); // already dense: the supervisor keeps the reservation accounting right
            return;
        }
        _state.Sparse!.WriteDense(buffer);
        _state.Dense = buffer;
        _state.Sparse = null;
        _directory.Publish(_state);
    }

    private object Map(MapRange m)
    {
        var runs = new List<MappedRun>();
        try
        {
            L2Directory.MapEntries(_state.Published!, _layout, m.Offset, m.Length, runs);
        }
        catch (ImageException e)
        {
            return new Status.Failure(e);
        }
        return new RangeMapping(runs);
    }

    private (int First, int Last) Slots(long offset, long length)
        => (_layout.L2Index(offset), _layout.L2Index(offset + length - 1));

    private bool Busy(int first, int last)
    {
        if (_state.InFlight.Count == 0) return false;
        for (int i = first; i <= last; i++)
            if (_state.InFlight.ContainsKey(i)) return true;
        return false;
    }

    private void Prepare(PrepareWrite w, IActorRef replyTo)
    {
        var (first, last) = Slots(w.Offset, w.Length);
        if (Busy(first, last))
        {
            _state.Waiting.Add((w, replyTo));
            return;
        }
        int cs = _layout.ClusterSize;
        var clusters = new ClusterWrite[last - first + 1];
        PendingPlan? plan = null;
        long end = w.Offset + w.Length;
        try
        {
            for (int i = first; i <= last; i++)
            {
                long clusterStart = TableStart + (long)i * cs;
                long from = Math.Max(w.Offset, clusterStart);
                int len = (int)(Math.Min(end, clusterStart + cs) - from);
                int inCluster = (int)(from - clusterStart);
                int slot = i - first;
                var d = WriteDecision.Decide(_state.Get(i), _state.Extended ? _state.GetBitmap(i) : default, inCluster, len, _layout, _directory.HasBacking);
                clusters[slot] = d.ToWrite(from, len, inCluster);
                switch (d.Action)
                {
                    case ClusterAction.InPlace:
                        WriteDecision.CheckTarget(_fences, d.Host, from, _layout.ClusterBits);
                        continue;
                    case ClusterAction.InPlaceAndPublish:
                        WriteDecision.CheckTarget(_fences, d.Host, from, _layout.ClusterBits);
                        plan ??= new PendingPlan(replyTo, clusters);
                        plan.Publish.Add((i, slot, d.NewBitmap));
                        continue;
                    default:
                        plan ??= new PendingPlan(replyTo, clusters);
                        plan.NeedHost.Add((slot, i));
                        plan.Publish.Add((i, slot, d.NewBitmap));
                        WriteDecision.AddReferencedClusters(d.ReplacedEntry, _layout.ClusterBits, plan.Replaced);
                        continue;
                }
            }
        }
        catch (FenceViolationException e)
        {
            Context.Parent.Tell(new ReportCorruption(_image, e.Message));
            replyTo.Tell(new Status.Failure(Corruption.WriteRefused(_image, e.Message)));
            return;
        }

        if (plan is null)
        {
            replyTo.Tell(new WritePlan(0, _state.L1Index, clusters));
            return;
        }
        long id = _state.NextPlanId++;
        _state.Plans[id] = plan;
        // A plan whose writer vanished (ask timed out) must not hold its clusters forever.
        Timers.StartSingleTimer(id, new ExpirePlan(id), PlanLifetime);
        foreach (var (l2Index, _, _) in plan.Publish) _state.InFlight[l2Index] = id;
        if (plan.NeedHost.Count == 0)
        {
            plan.HostsAssigned = true;
            replyTo.Tell(new WritePlan(id, _state.L1Index, clusters));
        }
        else
        {
            Context.Parent.Tell(new AllocateForPlan(_state.L1Index, id, plan.NeedHost.Count));
        }
    }

    private void HostsAllocated(ClustersAllocated a)
    {
        if (!_state.Plans.TryGetValue(a.PlanId, out var plan)) return;
        for (int k = 0; k < plan.NeedHost.Count; k++)
        {
            int slot = plan.NeedHost[k].Slot;
            var c = plan.Clusters[slot] with { HostCluster = a.HostOffsets[k] };
            // Past the end of everything written, the file reads as zeros already: skip the fill.
            if (a.Fresh[k] && c.Fill == ClusterFill.Zeros && c.FromBacking == 0) c = c with { Fill = ClusterFill.None };
            plan.Clusters[slot] = c;
        }
        plan.HostsAssigned = true;
        plan.ReplyTo.Tell(new WritePlan(a.PlanId, _state.L1Index, plan.Clusters));
    }

    private void AllocationFailed(AllocationFailed f)
    {
        if (!_state.Plans.TryGetValue(f.PlanId, out var plan)) return;
        Finish(f.PlanId, plan);
        plan.ReplyTo.Tell(new Status.Failure(f.Cause));
        RetryWaiting();
    }

    private void Commit(CommitWrite c)
    {
        if (!_state.Plans.TryGetValue(c.PlanId, out var plan) || _state.Dense is null)
        {
            // The supervisor makes a compact table dense before routing a write to it.
            Sender.Tell(new Status.Failure(new InvalidOperationException($"write plan {c.PlanId} is unknown or table {_state.L1Index} is not dense")));
            return;
        }
        Changed(() =>
        {
            foreach (var (l2Index, slot, bitmap) in plan.Publish)
            {
                ulong entry = L2Entry.Data(plan.Clusters[slot].HostCluster, copied: true).ToRaw();
                if (_state.Extended) _state.Set(l2Index, entry, new SubclusterBitmap(bitmap));
                else _state.Set(l2Index, entry);
            }
        });
        Timers.Cancel(c.PlanId);
        if (plan.Replaced.Count > 0) Context.Parent.Tell(new ReleaseClusters([.. plan.Replaced]));
        Finish(c.PlanId, plan);
        Sender.Tell(new WriteCommitted());
        RetryWaiting();
    }

    private void Abort(long planId)
    {
        if (!_state.Plans.TryGetValue(planId, out var plan)) return;
        Timers.Cancel(planId);
        if (plan.HostsAssigned)
        {
            // The new clusters were counted; nothing points to them: give them back through the flush.
            var fresh = plan.NeedHost.Select(n => plan.Clusters[n.Slot].HostCluster >> _layout.ClusterBits).ToArray();
            if (fresh.Length > 0) Context.Parent.Tell(new ReleaseClusters(fresh));
        }
        Finish(planId, plan);
        RetryWaiting();
    }

    private void Finish(long planId, PendingPlan plan)
    {
        foreach (var (l2Index, _, _) in plan.Publish)
            if (_state.InFlight.TryGetValue(l2Index, out long owner) && owner == planId)
                _state.InFlight.Remove(l2Index);
        _state.Plans.Remove(planId);
    }

    /// <summary>Retries waiting requests after a plan finished; those still blocked wait again.</summary>
    private void RetryWaiting()
    {
        if (_state.Waiting.Count == 0) return;
        var waiting = _state.Waiting.ToArray();
        _state.Waiting.Clear();
        foreach (var (msg, sender) in waiting)
        {
            switch (msg)
            {
                case PrepareWrite w: Prepare(w, sender); break;
                case ZeroClusters z: Self.Tell(z, sender); break; // may have to wait for a flush to thaw the table
            }
        }
    }

    /// <summary>Whole clusters read as zero: v3 keeps an owned cluster preallocated, otherwise the reference goes.</summary>
    private void Zero(ZeroClusters z, IActorRef replyTo)
    {
        var (first, last) = Slots(z.Offset, z.Length);
        if (Busy(first, last))
        {
            _state.Waiting.Add((z, replyTo));
            return;
        }
        if (_state.Dense is null)
        {
            replyTo.Tell(new Status.Failure(new InvalidOperationException($"table {_state.L1Index} is not dense")));
            return;
        }
        var released = new List<long>();
        Changed(() =>
        {
            for (int i = first; i <= last; i++)
            {
                ulong raw = _state.Get(i);
                if (_state.Extended)
                {
                    var (entry, bitmap) = ZeroedExtendedEntry(raw, released);
                    if (entry != raw || bitmap.Raw != _state.GetBitmap(i).Raw) _state.Set(i, entry, bitmap);
                    continue;
                }
                ulong next = ZeroedEntry(raw, released);
                if (next != raw) _state.Set(i, next); // readers map without a round trip (L2Directory)
            }
        });
        if (released.Count > 0) Context.Parent.Tell(new ReleaseClusters([.. released]));
        replyTo.Tell(new ZeroDone());
    }

    /// <summary>Extended L2 has no zero flag: every subcluster is marked zero (which also masks a backing disk); an owned host cluster stays preallocated.</summary>
    private (ulong Entry, SubclusterBitmap Bitmap) ZeroedExtendedEntry(ulong raw, List<long> released)
    {
        var e = L2Entry.From(raw);
        var zero = new SubclusterBitmap(SubclusterBitmap.AllZero);
        if (!e.IsCompressed && e.HostOffset != 0 && e.Copied) return (L2Entry.Data(e.HostOffset, copied: true).ToRaw(), zero);
        WriteDecision.AddReferencedClusters(raw, _layout.ClusterBits, released);
        return (0, zero);
    }

    private ulong ZeroedEntry(ulong raw, List<long> released)
    {
        var e = L2Entry.From(raw);
        if (e.IsCompressed)
        {
            WriteDecision.AddReferencedClusters(raw, _layout.ClusterBits, released);
            return _zeroFlagAllowed ? L2Entry.Zero(0, false).ToRaw() : 0;
        }
        if (!_zeroFlagAllowed)
        {
            if (e.HostOffset != 0) released.Add(e.HostOffset >> _layout.ClusterBits);
            return 0;
        }
        if (e.HostOffset != 0 && e.Copied) return L2Entry.Zero(e.HostOffset, copied: true).ToRaw();
        if (e.HostOffset != 0)
        {
            released.Add(e.HostOffset >> _layout.ClusterBits);
            return L2Entry.Zero(0, false).ToRaw();
        }
        // Unallocated reads as zeros without a backing disk; an overlay's must mask its backing.
        return e.IsUnallocated && _directory.HasBacking ? L2Entry.Zero(0, false).ToRaw() : raw;
    }
}
