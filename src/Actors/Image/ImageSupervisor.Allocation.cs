using Akka.Actor;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>Allocation: clusters are taken and counted here; refcount blocks and the table grow here.</summary>
internal sealed partial class ImageSupervisor
{
    private const ulong RefcountTableOffsetMask = ~511UL;
    private ulong[] _refTable = [];
    private bool _refTableDirty;
    private bool _headerDirty;
    /// <summary>Refcount blocks in memory (or being read), by refcount table index; bounded by _rcBudget.</summary>
    private readonly Dictionary<long, RefcountBlockState> _rcStates = [];
    private readonly Dictionary<long, IActorRef> _rcActors = [];
    private readonly CacheBudget _rcBudget;
    /// <summary>Blocks sent a change since the last flush collected them: never dropped from memory.</summary>
    private readonly HashSet<long> _rcChanged = [];
    private readonly LinkedList<long> _rcLru = new();
    private readonly Dictionary<long, LinkedListNode<long>> _rcLruNodes = [];
    private long _rcGeneration;
    private ClusterAllocator _allocator = null!;
    /// <summary>Host clusters whose pointing entry was replaced in memory; decremented by the next flush, after that entry is durable.</summary>
    private readonly List<long> _pendingDecrements = [];

    private void AllocateForPlan(AllocateForPlan a)
    {
        try
        {
            long end = _allocator.EndCluster;
            var clusters = AllocateCounted(a.Count);
            Sender.Tell(new ClustersAllocated(a.PlanId,
                clusters.Select(c => c << _layout.ClusterBits).ToArray(),
                clusters.Select(c => c >= end).ToArray()));
        }
        catch (ImageException e)
        {
            Sender.Tell(new AllocationFailed(a.PlanId, e));
        }
    }

    /// <summary>Takes n clusters and counts them (creating refcount blocks, growing the table, as needed).</summary>
    private long[] AllocateCounted(int n)
    {
        var clusters = _allocator.Take(n);
        CountNew(clusters);
        return clusters;
    }

    /// <summary>
    /// Sends increments for newly taken clusters. A missing refcount block is created first (it
    /// counts itself, possibly in another block); a table too small moves to the end of the file.
    /// The increments reach the block actors before any flush collects them, so a block is always
    /// written before the L2/L1 entries that rely on it.
    /// </summary>
    private void CountNew(IEnumerable<long> clusters)
    {
        var pending = new Queue<long>(clusters);
        var byBlock = new Dictionary<long, List<long>>();
        while (pending.TryDequeue(out long c))
        {
            long t = _layout.RefcountTableIndex(c);
            if (t >= _refTable.Length) GrowRefcountTable(t, pending);
            if ((_refTable[t] & RefcountTableOffsetMask) == 0)
            {
                long b = _allocator.Take(1)[0];
                long offset = b << _layout.ClusterBits;
                AddRefcountState(new RefcountBlockState(t, offset, new byte[_layout.ClusterSize], dirty: true));
                _refTable[t] = (ulong)offset;
                _refTableDirty = true;
                pending.Enqueue(b);
            }
            if (!byBlock.TryGetValue(t, out var list)) byBlock[t] = list = [];
            list.Add(c);
        }
        foreach (var (t, list) in byBlock) ChangeRefcounts(t, new IncrementRefcounts([.. list]));
    }

    private void GrowRefcountTable(long neededIndex, Queue<long> pending)
    {
        int cs = _layout.ClusterSize;
        long oldClusters = _header.RefcountTableClusters;
        long needClusters = ((neededIndex + 1) * 8 + cs - 1) / cs;
        long newClusters = Math.Max(needClusters, oldClusters * 2);
        if (newClusters * cs > QcowLimits.MaxRefcountTableBytes)
        {
            newClusters = needClusters;
            if (newClusters * cs > QcowLimits.MaxRefcountTableBytes)
                throw new ImageException(ImageError.DiskFull,
                    $"image '{_name}' cannot grow: its refcount table would pass QEMU's 8 MiB limit");
        }
        long first = _allocator.TakeContiguousAtEnd((int)newClusters);
        var table = new ulong[newClusters * cs / 8];
        Array.Copy(_refTable, table, _refTable.Length);
        long oldFirst = _header.RefcountTableOffset >> _layout.ClusterBits;
        for (long k = 0; k < oldClusters; k++) _pendingDecrements.Add(oldFirst + k);
        _refTable = table;
        _header.RefcountTableOffset = first << _layout.ClusterBits;
        _header.RefcountTableClusters = (uint)newClusters;
        _headerDirty = true;
        _refTableDirty = true;
        for (long k = 0; k < newClusters; k++) pending.Enqueue(first + k);
    }

    /// <summary>Sends a change to block t (read back into memory first if it was dropped) and keeps the block in memory until a flush has written it.</summary>
    private void ChangeRefcounts(long t, object change)
    {
        _rcChanged.Add(t);
        RefcountActor(t).Tell(change);
    }

    private void AddRefcountState(RefcountBlockState state)
    {
        _rcStates[state.TableIndex] = state;
        _rcBudget.Add(_layout.ClusterSize);
    }

    private IActorRef RefcountActor(long t)
    {
        if (_rcLruNodes.TryGetValue(t, out var node)) _rcLru.Remove(node);
        _rcLruNodes[t] = _rcLru.AddFirst(t);
        if (_rcActors.TryGetValue(t, out var actor)) return actor;
        if (!_rcStates.TryGetValue(t, out var state))
            AddRefcountState(state = new RefcountBlockState(t, (long)(_refTable[t] & RefcountTableOffsetMask), null, dirty: false));
        // A fresh name each time: a dropped block's name is reserved until that actor has terminated.
        actor = Context.ActorOf(RefcountBlockActor.Props(state, _layout, _file), $"rc-{t}-{++_rcGeneration}");
        _rcActors[t] = actor;
        return actor;
    }

    /// <summary>
    /// After a flush that wrote everything it collected: drops the least recently used blocks beyond
    /// the budget. Only blocks without a change since that collection go; their actors have nothing
    /// queued (the flush's collect was their last message), so stopping them loses nothing, and the
    /// file holds exactly their bytes for the next read.
    /// </summary>
    private void EvictRefcountBlocks()
    {
        if (_flush is not null || _failedRun is not null) return;
        long live = (long)_rcStates.Count * _layout.ClusterSize;
        var node = _rcLru.Last;
        while (node is not null && (live > _rcBudget.PerImageBytes || _rcBudget.OverTotal))
        {
            var previous = node.Previous;
            long t = node.Value;
            if (!_rcChanged.Contains(t) && _rcStates.TryGetValue(t, out var state) && !state.Dirty)
            {
                if (_rcActors.Remove(t, out var actor)) Context.Stop(actor);
                _rcStates.Remove(t);
                _rcLru.Remove(node);
                _rcLruNodes.Remove(t);
                _rcBudget.Add(-_layout.ClusterSize);
                live -= _layout.ClusterSize;
                if (_rcBudget.OverTotal && live <= _rcBudget.PerImageBytes / 2) break; // share the global cut
            }
            node = previous;
        }
    }
}
