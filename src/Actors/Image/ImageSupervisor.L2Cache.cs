using Akka.Actor;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// The L2 tables in memory, bounded: each live table is an actor; beyond the per-image budget (or
/// when the whole process is over its budget) the least recently used clean ones are stopped.
/// A table asked to stop decides itself (only when clean and idle) and messages for it wait here
/// meanwhile, so nothing is lost in the hand-over. Tables are never evicted while a flush may
/// still be writing their snapshot: a clean table is then exactly what the file holds.
/// </summary>
internal sealed partial class ImageSupervisor
{
    private readonly LinkedList<long> _lru = new();
    private readonly Dictionary<long, LinkedListNode<long>> _lruNodes = [];
    /// <summary>Tables asked to stop, with the messages that arrived for them meanwhile.</summary>
    private readonly Dictionary<long, List<(object Message, IActorRef Sender)>> _l2Stopping = [];
    private long _l2Generation;
    /// <summary>Tables whose entries are in memory (fresh, or read from the file).</summary>
    private readonly HashSet<long> _l2Loaded = [];
    /// <summary>Writes to a shared table waiting for it to load: it is copied only once its entries are known.</summary>
    private readonly Dictionary<long, List<(object Message, IActorRef Sender)>> _awaitingLoad = [];

    /// <summary>
    /// A write to a table shared with a snapshot moves the table; that must not happen before its
    /// entries are in memory, or a failed load would leave L1 pointing at a table never written.
    /// </summary>
    private bool HeldUntilLoaded(long i, object message)
    {
        var e = L1Entry.From(_l1[i]);
        if (e.IsUnallocated || e.Copied || _l2Loaded.Contains(i)) return false;
        EnsureL2ForRead(i);
        if (!_awaitingLoad.TryGetValue(i, out var waiting)) _awaitingLoad[i] = waiting = [];
        waiting.Add((message, Sender));
        return true;
    }

    private void SendToL2(long i, object message, IActorRef sender)
    {
        if (_l2Stopping.TryGetValue(i, out var waiting))
        {
            waiting.Add((message, sender));
            return;
        }
        _l2Actors[i].Tell(message, sender);
        if (_lruNodes.TryGetValue(i, out var node))
        {
            _lru.Remove(node);
            _lru.AddFirst(node);
        }
    }

    /// <summary>True when table i exists (its actor started if needed); false for an unallocated slot.</summary>
    private bool EnsureL2ForRead(long i)
    {
        if (_l2Actors.ContainsKey(i)) return true;
        var e = L1Entry.From(_l1[i]);
        if (e.IsUnallocated) return false;
        StartL2(new L2TableState(i, e.L2Offset, null));
        return true;
    }

    /// <summary>The table for a write: allocated for an empty slot, copied when shared with a snapshot.</summary>
    private void EnsureL2ForWrite(long i)
    {
        var e = L1Entry.From(_l1[i]);
        if (e.IsUnallocated)
        {
            long host = AllocateCounted(1)[0] << _layout.ClusterBits;
            Volatile.Write(ref _l1[i], L1Entry.Create(host, copied: true).ToRaw());
            _l1Dirty.Add(i);
            StartL2(new L2TableState(i, host, new ulong[_layout.L2Entries]));
            return;
        }
        EnsureL2ForRead(i);
        if (!e.Copied)
        {
            // Shared (refcount > 1): the active image gets its own copy; the old table loses a
            // reference once L1 no longer points to it durably.
            long host = AllocateCounted(1)[0] << _layout.ClusterBits;
            _pendingDecrements.Add(e.L2Offset >> _layout.ClusterBits);
            Volatile.Write(ref _l1[i], L1Entry.Create(host, copied: true).ToRaw());
            _l1Dirty.Add(i);
            SendToL2(i, new RelocateTable(host), Self);
        }
    }

    private void StartL2(L2TableState state)
    {
        long i = state.L1Index;
        _l2States[i] = state;
        if (state.IsLoaded)
        {
            // Published before its actor exists; from then on only the actor publishes it (on load, or when it turns dense).
            _l2Loaded.Add(i);
            _directory.Publish(state);
        }
        // A fresh name each time: a stopped table's name is reserved until it has terminated.
        _l2Actors[i] = Context.ActorOf(L2TableActor.Props(state, _layout, _file, _header.Version >= 3, _directory), $"l2-{i}-{++_l2Generation}");
        _lruNodes[i] = _lru.AddFirst(i);
        _cacheBudget.Add(_layout.ClusterSize);
        EvictIfOverBudget(i);
    }

    private void EvictIfOverBudget(long keep)
    {
        if (_flush is not null || _failedRun is not null) return;
        long live = (_l2Actors.Count - _l2Stopping.Count) * (long)_layout.ClusterSize;
        var node = _lru.Last;
        while (node is not null && (live > _cacheBudget.PerImageBytes || _cacheBudget.OverTotal))
        {
            var previous = node.Previous;
            long i = node.Value;
            if (i != keep && !_l2Stopping.ContainsKey(i))
            {
                _l2Stopping[i] = [];
                _l2Actors[i].Tell(new StopL2Table(i));
                live -= _layout.ClusterSize;
                if (_cacheBudget.OverTotal && live <= _cacheBudget.PerImageBytes / 2) break; // share the global cut
            }
            node = previous;
        }
    }

    private bool OnL2CacheMessage(object message)
    {
        switch (message)
        {
            case L2Stopped s:
                _l2Actors.Remove(s.L1Index);
                _l2States.Remove(s.L1Index);
                _l2Loaded.Remove(s.L1Index);
                _directory.Withdraw(s.L1Index);
                if (_lruNodes.Remove(s.L1Index, out var node)) _lru.Remove(node);
                _cacheBudget.Add(-_layout.ClusterSize);
                ReplayStopped(s.L1Index, stopped: true);
                return true;
            case L2Loaded l:
                _l2Loaded.Add(l.L1Index);
                if (_awaitingLoad.Remove(l.L1Index, out var ready))
                    foreach (var (message2, sender) in ready) Self.Tell(message2, sender);
                return true;
            case L2LoadFailed f:
                if (_awaitingLoad.Remove(f.L1Index, out var stranded))
                    foreach (var (_, sender) in stranded)
                        sender.Tell(new Status.Failure(new Service.ImageException(Service.ImageError.Unavailable,
                            $"image '{_name}': reading L2 table {f.L1Index} failed; try again")));
                if (_l2Actors.TryGetValue(f.L1Index, out var failed) && failed.Equals(Sender) && !_l2Stopping.ContainsKey(f.L1Index))
                {
                    _l2Stopping[f.L1Index] = [];
                    failed.Tell(new StopL2Table(f.L1Index));
                }
                return true;
            case L2StayAlive a:
                ReplayStopped(a.L1Index, stopped: false);
                // Dirty tables over budget: write them back so the next round can drop them.
                if (_flush is null && !_closing) RequestFlush(null);
                return true;
            default:
                return false;
        }
    }

    private void ReplayStopped(long i, bool stopped)
    {
        if (!_l2Stopping.Remove(i, out var waiting)) return;
        foreach (var (message, sender) in waiting)
        {
            if (!stopped) SendToL2(i, message, sender);
            else if (message is CollectL2 c) Self.Tell(new L2Snapshot(c.FlushId, i, 0, null)); // it was clean
            else if (message is RelocateTable) { } // only sent to a table that exists; cannot be stopped with it pending
            else Self.Tell(message, sender); // routed again: a fresh actor reloads the table
        }
    }
}
