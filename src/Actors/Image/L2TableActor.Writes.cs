using Akka.Actor;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

internal sealed partial class L2TableActor
{
    private static readonly TimeSpan PlanLifetime = TimeSpan.FromMinutes(10);

    private sealed record ExpirePlan(long PlanId);

    private void Prepare(PrepareWrite w, IActorRef replyTo)
    {
        var (first, last) = Slots(w.Offset, w.Length);
        if (Busy(first, last))
        {
            _state.Waiting.Add((w, replyTo));
            return;
        }

        // Planning only reads: a sparse table stays sparse until a plan commits (in-place writes never change it).
        int cs = _layout.ClusterSize;
        var clusters = new ClusterWrite[last - first + 1];
        PendingPlan? plan = null;
        long end = w.Offset + w.Length;
        for (int i = first; i <= last; i++)
        {
            long clusterStart = TableStart + (long)i * cs;
            long from = Math.Max(w.Offset, clusterStart);
            int len = (int)(Math.Min(end, clusterStart + cs) - from);
            int inCluster = (int)(from - clusterStart);
            bool whole = len == cs;
            var e = L2Entry.From(_state.Entries is { } dense ? dense[i] : _state.Sparse!.Get(i));
            int slot = i - first;
            if (e.IsCompressed)
            {
                replyTo.Tell(new Status.Failure(Compressed(clusterStart)));
                return;
            }
            if (e.IsData && e.Copied)
            {
                // Refcount 1 (COPIED): overwrite in place; the mapping does not change.
                clusters[slot] = new ClusterWrite(from, len, e.HostOffset, inCluster, ClusterFill.None, 0);
                continue;
            }
            plan ??= new PendingPlan(replyTo, clusters);
            if (e.IsZero && e.HostOffset != 0 && e.Copied)
            {
                // Preallocated zero cluster we own: reuse it, but the bytes around the write must read as zeros.
                clusters[slot] = new ClusterWrite(from, len, e.HostOffset, inCluster, whole ? ClusterFill.None : ClusterFill.Zeros, 0);
                plan.Publish.Add((i, slot, false));
                continue;
            }
            // Unallocated, zero, or shared with a snapshot (refcount > 1): a new cluster, copy-on-write.
            var fill = whole ? ClusterFill.None : e.IsData ? ClusterFill.CopyFrom : ClusterFill.Zeros;
            clusters[slot] = new ClusterWrite(from, len, 0, inCluster, fill, e.IsData ? e.HostOffset : 0);
            plan.NeedHost.Add((slot, i));
            plan.Publish.Add((i, slot, true));
            if (e.HostOffset != 0) plan.Replaced.Add(e.HostOffset >> _layout.ClusterBits);
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
            if (a.Fresh[k] && c.Fill == ClusterFill.Zeros) c = c with { Fill = ClusterFill.None };
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
        if (!_state.Plans.TryGetValue(c.PlanId, out var plan))
        {
            Sender.Tell(new Status.Failure(new InvalidOperationException($"write plan {c.PlanId} is unknown")));
            return;
        }
        var entries = DenseEntries();
        foreach (var (l2Index, slot, _) in plan.Publish)
            Volatile.Write(ref entries[l2Index], L2Entry.Data(plan.Clusters[slot].HostCluster, copied: true).ToRaw());
        _state.Dirty = true;
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

    /// <summary>Whole clusters read as zero: v3 keeps an owned cluster preallocated, otherwise the reference goes.</summary>
    private void Zero(ZeroClusters z, IActorRef replyTo)
    {
        var (first, last) = Slots(z.Offset, z.Length);
        if (Busy(first, last))
        {
            _state.Waiting.Add((z, replyTo));
            return;
        }
        var entries = DenseEntries();
        var released = new List<long>();
        for (int i = first; i <= last; i++)
        {
            var e = L2Entry.From(entries[i]);
            ulong next;
            if (e.IsCompressed)
            {
                var d = CompressedDescriptor.From(e.Raw, _layout.ClusterBits);
                var (firstHost, lastHost) = d.HostClusters(_layout.ClusterBits);
                for (long h = firstHost; h <= lastHost; h++) released.Add(h);
                next = _zeroFlagAllowed ? L2Entry.Zero(0, false).ToRaw() : 0;
            }
            else if (!_zeroFlagAllowed)
            {
                if (e.HostOffset != 0) released.Add(e.HostOffset >> _layout.ClusterBits);
                next = 0;
            }
            else if (e.HostOffset != 0 && e.Copied)
            {
                next = L2Entry.Zero(e.HostOffset, copied: true).ToRaw();
            }
            else if (e.HostOffset != 0)
            {
                released.Add(e.HostOffset >> _layout.ClusterBits);
                next = L2Entry.Zero(0, false).ToRaw();
            }
            else
            {
                next = e.Raw; // unallocated or already zero: reads as zeros without a backing file
            }
            if (next != entries[i])
            {
                Volatile.Write(ref entries[i], next); // readers map without a round trip (L2Directory)
                _state.Dirty = true;
            }
        }
        if (released.Count > 0) Context.Parent.Tell(new ReleaseClusters([.. released]));
        replyTo.Tell(new ZeroDone());
    }
}
