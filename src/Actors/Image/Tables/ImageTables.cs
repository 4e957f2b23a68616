using Akka.Actor;
using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// The L2 tables and refcount blocks an image holds in memory, each an entry of the image's
/// <see cref="MetadataCache"/> and a child actor of its supervisor. Every entry's bytes are
/// reserved before it is added. Dropping a clean L2 table is a hand-shake (its actor may still
/// have writes in flight, and only it knows): messages for it wait here meanwhile and go to the
/// next incarnation. A clean refcount block is dropped at once: the supervisor sends every change
/// it gets, so it knows the block has nothing queued. Used on the supervisor's thread only.
/// </summary>
internal sealed class ImageTables(
    IUntypedActorContext context,
    string image,
    ClusterLayout layout,
    IImageFile file,
    bool zeroFlagAllowed,
    L2Directory directory,
    MetadataClusters fences,
    MetadataCache cache)
{
    private readonly Dictionary<long, IActorRef> _l2Actors = [];
    /// <summary>Tables asked to stop, with the messages that arrived for them meanwhile.</summary>
    private readonly Dictionary<long, List<(object Message, IActorRef Sender)>> _stopping = [];
    private readonly Dictionary<long, IActorRef> _blockActors = [];
    private long _generation;

    public int L2Count => _l2Actors.Count;
    public int BlockCount => _blockActors.Count;

    private static CacheKey TableKey(long i) => new(CacheKind.L2Table, i);
    private static CacheKey BlockKey(long t) => new(CacheKind.RefcountBlock, t);

    public bool TryGetTable(long i, out CacheEntry entry, out L2TableState state)
    {
        if (cache.TryGet(TableKey(i), out var e) && _l2Actors.ContainsKey(i))
        {
            entry = e;
            state = (L2TableState)e.Payload;
            return true;
        }
        entry = null!;
        state = null!;
        return false;
    }

    public bool IsStopping(long i) => _stopping.ContainsKey(i);

    /// <summary>
    /// Starts the actor of a table whose <paramref name="bytes"/> are reserved. A loaded (new) table
    /// is published before its actor exists; from then on only the actor publishes it.
    /// </summary>
    public CacheEntry StartTable(L2TableState state, long bytes)
    {
        var entry = cache.Add(TableKey(state.L1Index), bytes, state);
        if (state.IsLoaded) directory.Publish(state);
        else entry.Pin(); // loading: unpinned by L2Loaded
        Spawn(state);
        return entry;
    }

    private void Spawn(L2TableState state)
    {
        // A fresh name each time: a stopped table's name is reserved until it has terminated.
        _l2Actors[state.L1Index] = context.ActorOf(
            L2TableActor.Props(image, state, layout, file, zeroFlagAllowed, directory, fences, cache.Budget),
            $"l2-{state.L1Index}-{++_generation}");
    }

    /// <summary>A loaded table's real size is known: a compact one gives back most of its reservation.</summary>
    public void Loaded(long i, long bytes)
    {
        if (!cache.TryGet(TableKey(i), out var entry)) return;
        entry.Unpin();
        cache.Shrink(entry, bytes);
    }

    /// <summary>The table could not be read: its actor is replaced on the next request (held messages go there).</summary>
    public void LoadFailed(long i, IActorRef sender)
    {
        if (_l2Actors.TryGetValue(i, out var failed) && failed.Equals(sender) && !_stopping.ContainsKey(i))
        {
            _stopping[i] = [];
            failed.Tell(new StopL2Table(i));
        }
    }

    /// <summary>Sends to the table's actor (held while it is being stopped); counts as a use for the clock.</summary>
    public void Send(long i, object message, IActorRef sender)
    {
        if (_stopping.TryGetValue(i, out var waiting))
        {
            waiting.Add((message, sender));
            return;
        }
        if (cache.TryGet(TableKey(i), out var entry)) entry.Clock.Touch();
        _l2Actors[i].Tell(message, sender);
    }

    public bool Hold(long i, object message, IActorRef sender)
    {
        if (!_stopping.TryGetValue(i, out var waiting)) return false;
        waiting.Add((message, sender));
        return true;
    }

    public void Tell(long i, object message) => _l2Actors[i].Tell(message, context.Self);

    /// <summary>Asks a clean table's actor to stop; its bytes come back with <see cref="Stopped"/>.</summary>
    public void BeginStop(CacheEntry entry)
    {
        long i = entry.Key.Index;
        if (_stopping.ContainsKey(i) || !_l2Actors.TryGetValue(i, out var actor)) return;
        entry.Pin();
        _stopping[i] = [];
        actor.Tell(new StopL2Table(i), context.Self);
    }

    /// <summary>
    /// The actor stopped: the table leaves memory. Its last access to the buffer happened before
    /// it sent L2Stopped, so the buffer can go back to the pool once readers were told (retired).
    /// Returns what waited for it, to be routed afresh.
    /// </summary>
    public List<(object Message, IActorRef Sender)> Stopped(long i)
    {
        _stopping.Remove(i, out var waiting);
        _l2Actors.Remove(i);
        if (cache.TryGet(TableKey(i), out var entry))
        {
            var state = (L2TableState)entry.Payload;
            directory.Withdraw(state);
            if (state.Dense is { } buffer) cache.Budget.Recycle(buffer);
            state.Dense = null;
            cache.Remove(entry);
        }
        return waiting ?? [];
    }

    /// <summary>The actor stays (dirty or busy): what waited goes to it.</summary>
    public List<(object Message, IActorRef Sender)> StayedAlive(long i)
    {
        _stopping.Remove(i, out var waiting);
        if (cache.TryGet(TableKey(i), out var entry)) entry.Unpin();
        return waiting ?? [];
    }

    // ---- refcount blocks ----

    public bool HasBlock(long t) => cache.TryGet(BlockKey(t), out _);

    /// <summary>Adds a block whose bytes are reserved: a new one (zeroed) or one to read from the file.</summary>
    public CacheEntry AddBlock(RefcountBlockState state)
    {
        var entry = cache.Add(BlockKey(state.TableIndex), layout.ClusterSize, state);
        if (state.Dirty) cache.SetDirty(entry, true);
        return entry;
    }

    /// <summary>The block's actor (started on first need; a block not in memory reads itself in first).</summary>
    public IActorRef Block(long t)
    {
        if (_blockActors.TryGetValue(t, out var actor)) return actor;
        if (!cache.TryGet(BlockKey(t), out var entry)) throw new InvalidOperationException($"refcount block {t} has no cache entry");
        var state = (RefcountBlockState)entry.Payload;
        actor = context.ActorOf(RefcountBlockActor.Props(state, layout, file, cache.Budget), $"rc-{t}-{++_generation}");
        _blockActors[t] = actor;
        return actor;
    }

    /// <summary>Sends a change (it makes the block dirty until a flush writes it).</summary>
    public void ChangeBlock(long t, object change)
    {
        if (cache.TryGet(BlockKey(t), out var entry))
        {
            entry.Clock.Touch();
            cache.SetDirty(entry, true);
        }
        Block(t).Tell(change, context.Self);
    }

    public void MarkClean(CacheKey key)
    {
        if (cache.TryGet(key, out var entry)) cache.SetDirty(entry, false);
    }

    public void MarkDirty(CacheKey key)
    {
        if (cache.TryGet(key, out var entry)) cache.SetDirty(entry, true);
    }

    public void Pin(CacheKey key)
    {
        if (cache.TryGet(key, out var entry)) entry.Pin();
    }

    public void Unpin(CacheKey key)
    {
        if (cache.TryGet(key, out var entry)) entry.Unpin();
    }

    /// <summary>Sends a flush message to the table or block (a block not in memory was clean: nothing to do).</summary>
    public void TellForFlush(CacheKey key, object message)
    {
        if (key.Kind == CacheKind.L2Table)
        {
            if (_stopping.TryGetValue(key.Index, out var waiting)) waiting.Add((message, context.Self));
            else if (_l2Actors.TryGetValue(key.Index, out var actor)) actor.Tell(message, context.Self);
            else if (message is Freeze f) context.Self.Tell(new Frozen(f.FlushId, key, 0, null, []));
            return;
        }
        if (HasBlock(key.Index)) Block(key.Index).Tell(message, context.Self);
        else if (message is Freeze f) context.Self.Tell(new Frozen(f.FlushId, key, 0, null, []));
    }

    /// <summary>
    /// Drops clean entries for about <paramref name="bytes"/>, chosen by the clock. Blocks go at
    /// once; tables are asked to stop (their bytes return with <see cref="Stopped"/>). Returns the
    /// bytes released now and the bytes that will be once the tables have stopped.
    /// </summary>
    public (long Now, long Pending) DropClean(long bytes)
    {
        long now = 0, pending = 0;
        foreach (var victim in cache.ChooseVictims(bytes))
        {
            if (victim.Key.Kind == CacheKind.RefcountBlock)
            {
                now += victim.Bytes;
                DropBlock(victim);
            }
            else
            {
                pending += victim.Bytes;
                BeginStop(victim);
            }
        }
        return (now, pending);
    }

    private void DropBlock(CacheEntry entry)
    {
        long t = entry.Key.Index;
        if (_blockActors.Remove(t, out var actor)) context.Stop(actor);
        var state = (RefcountBlockState)entry.Payload;
        if (state.Bytes is { } bytes) cache.Budget.Recycle(bytes);
        state.Bytes = null;
        cache.Remove(entry);
    }

    /// <summary>At close: every child is stopped by the actor system; buffers go back to the pool.</summary>
    public void ReleaseAll()
    {
        foreach (var kind in new[] { CacheKind.L2Table, CacheKind.RefcountBlock })
        {
            foreach (var entry in cache.Entries(kind).ToList())
            {
                byte[]? buffer = entry.Payload switch
                {
                    L2TableState s => s.Dense,
                    RefcountBlockState b => b.Bytes,
                    _ => null,
                };
                if (buffer is not null) cache.Budget.Recycle(buffer);
            }
        }
        directory.Clear();
        cache.ReleaseAll();
    }
}
