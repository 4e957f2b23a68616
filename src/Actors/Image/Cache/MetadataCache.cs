using System.Diagnostics.CodeAnalysis;

namespace QcowActors.Actors.Image;

internal enum CacheKind : byte
{
    L2Table,
    RefcountBlock,
}

/// <summary>
/// Who reserves, from least to most entitled. A request's tables may fill the image's budget up to
/// two clusters short of counting's limit; counting (the refcount blocks new clusters need) up to
/// two clusters short of the flush's. So a write that pinned its L2 table never waits for memory
/// that only other tables could give back — the blocks it waits for are freed by a flush — and a
/// flush, which needs memory only for decrements, always finishes.
/// </summary>
internal enum ReserveFor
{
    Request,
    Counting,
    Flush,
}

/// <summary>An L2 table (by L1 index) or a refcount block (by refcount-table index).</summary>
internal readonly record struct CacheKey(CacheKind Kind, long Index);

/// <summary>
/// "Used since the clock hand last passed": set by whoever uses the entry, request threads
/// included, without a lock. It is only a hint for choosing what to drop — a lost or late
/// update can only make the cache drop a table it later reads again — so plain volatile
/// accesses suffice; the check before the write keeps hot entries' cache line shared.
/// </summary>
internal sealed class ClockBit
{
    private int _referenced = 1;

    public void Touch()
    {
        if (Volatile.Read(ref _referenced) == 0) Volatile.Write(ref _referenced, 1);
    }

    /// <summary>Whether it was used, clearing the bit.</summary>
    public bool Take() => Interlocked.Exchange(ref _referenced, 0) != 0;
}

/// <summary>One table or block in memory. Changed only on the image supervisor's thread.</summary>
internal sealed class CacheEntry(CacheKey key, long bytes, object payload)
{
    public CacheKey Key { get; } = key;
    /// <summary>Bytes reserved for it in the budget.</summary>
    public long Bytes { get; internal set; } = bytes;
    /// <summary>Differs from the file: only a write-back makes it clean.</summary>
    public bool Dirty { get; internal set; }
    /// <summary>Reasons it cannot be dropped now: loading, frozen for a flush, being stopped.</summary>
    public int Pins { get; private set; }
    public ClockBit Clock { get; } = new();
    /// <summary>The state its actor works on (<see cref="L2TableState"/>, <see cref="RefcountBlockState"/>).</summary>
    public object Payload { get; } = payload;
    internal LinkedListNode<CacheEntry>? Node { get; set; }

    public bool Evictable => !Dirty && Pins == 0;
    public void Pin() => Pins++;

    public void Unpin()
    {
        if (Pins == 0) throw new InvalidOperationException($"{Key} is not pinned");
        Pins--;
    }
}

/// <summary>
/// One image's metadata in memory: its L2 tables and refcount blocks as entries, plus the fixed
/// bytes of its L1 and refcount tables, all reserved in a <see cref="MetadataBudget"/> before they
/// are held. Clean entries are dropped by a clock sweep (a use since the hand's last pass spares
/// an entry once); dirty ones only after a write-back. Each <see cref="ReserveFor"/> tier may fill
/// the budget up to its own limit. Single-threaded (the supervisor's), except
/// <see cref="ClockBit"/> and the hints read by the budget.
/// </summary>
internal sealed class MetadataCache
{
    private readonly MetadataBudget _budget;
    /// <summary>Two clusters: the share above each tier that only the tiers above may use.</summary>
    private readonly long _share;
    private readonly Dictionary<CacheKey, CacheEntry> _entries = [];
    private readonly LinkedList<CacheEntry> _ring = new();
    private LinkedListNode<CacheEntry>? _hand;
    private long _used;
    private long _entryBytes;
    private long _dirtyBytes;

    /// <param name="reservedBytes">Bytes already reserved in <paramref name="budget"/> for this image (its L1 and refcount tables).</param>
    public MetadataCache(MetadataBudget budget, int clusterSize, long reservedBytes)
    {
        _budget = budget;
        ClusterSize = clusterSize;
        _share = MetadataBudget.FlushReserveClusters * (long)clusterSize;
        _used = reservedBytes;
    }

    public int ClusterSize { get; }
    public MetadataBudget Budget => _budget;
    /// <summary>Everything this image holds in the budget (tables, entries, bytes reserved ahead).</summary>
    public long UsedBytes => Volatile.Read(ref _used);
    public long DirtyBytes => Volatile.Read(ref _dirtyBytes);
    public long CleanBytes => Volatile.Read(ref _entryBytes) - Volatile.Read(ref _dirtyBytes);
    public int Count => _entries.Count;

    private long Limit(ReserveFor tier) => _budget.PerImageBytes - tier switch
    {
        ReserveFor.Request => 2 * _share,
        ReserveFor.Counting => _share,
        _ => 0,
    };

    /// <summary>Reserves bytes within the image's and the process's budgets for <paramref name="tier"/>; false = no room now.</summary>
    public bool TryReserve(long bytes, ReserveFor tier)
    {
        if (bytes <= 0) return true;
        if (_used + bytes > Limit(tier)) return false;
        if (!_budget.TryReserve(bytes, priority: tier != ReserveFor.Request)) return false;
        Volatile.Write(ref _used, _used + bytes);
        return true;
    }

    /// <summary>Whether the image's own budget (not the process's) is what has no room for <paramref name="bytes"/>.</summary>
    public bool ImageFull(long bytes, ReserveFor tier) => _used + bytes > Limit(tier);

    public void Release(long bytes)
    {
        if (bytes <= 0) return;
        if (bytes > _used) throw new InvalidOperationException($"image releases {bytes} bytes but holds {_used}");
        Volatile.Write(ref _used, _used - bytes);
        _budget.Release(bytes);
    }

    /// <summary>Adds an entry whose <paramref name="bytes"/> the caller has reserved.</summary>
    public CacheEntry Add(CacheKey key, long bytes, object payload)
    {
        var entry = new CacheEntry(key, bytes, payload);
        _entries.Add(key, entry);
        // Just behind the hand: a new entry is the last the sweep looks at.
        entry.Node = _hand is null ? _ring.AddLast(entry) : _ring.AddBefore(_hand, entry);
        Volatile.Write(ref _entryBytes, _entryBytes + bytes);
        return entry;
    }

    public bool TryGet(CacheKey key, [NotNullWhen(true)] out CacheEntry? entry) => _entries.TryGetValue(key, out entry);

    /// <summary>Drops an entry and releases its bytes (the caller has recycled or dropped its buffer).</summary>
    public void Remove(CacheEntry entry)
    {
        if (!_entries.Remove(entry.Key)) return;
        if (_hand == entry.Node) _hand = entry.Node!.Next;
        _ring.Remove(entry.Node!);
        entry.Node = null;
        if (entry.Dirty) Volatile.Write(ref _dirtyBytes, _dirtyBytes - entry.Bytes);
        Volatile.Write(ref _entryBytes, _entryBytes - entry.Bytes);
        Release(entry.Bytes);
    }

    /// <summary>The entry now needs fewer bytes (a table held compact): the rest goes back to the budget.</summary>
    public void Shrink(CacheEntry entry, long bytes)
    {
        long freed = entry.Bytes - bytes;
        if (freed <= 0) return;
        Resize(entry, bytes);
        Release(freed);
    }

    /// <summary>Reserves what the entry needs to grow to <paramref name="bytes"/>; false = no room now.</summary>
    public bool TryGrow(CacheEntry entry, long bytes, ReserveFor tier)
    {
        long more = bytes - entry.Bytes;
        if (more <= 0) return true;
        if (!TryReserve(more, tier)) return false;
        Resize(entry, bytes);
        return true;
    }

    private void Resize(CacheEntry entry, long bytes)
    {
        long delta = bytes - entry.Bytes;
        entry.Bytes = bytes;
        Volatile.Write(ref _entryBytes, _entryBytes + delta);
        if (entry.Dirty) Volatile.Write(ref _dirtyBytes, _dirtyBytes + delta);
    }

    public void SetDirty(CacheEntry entry, bool dirty)
    {
        if (entry.Dirty == dirty || entry.Node is null) return;
        entry.Dirty = dirty;
        Volatile.Write(ref _dirtyBytes, _dirtyBytes + (dirty ? entry.Bytes : -entry.Bytes));
    }

    public IEnumerable<CacheEntry> Entries(CacheKind kind) => _entries.Values.Where(e => e.Key.Kind == kind);

    /// <summary>
    /// Clean, unpinned entries to drop for about <paramref name="bytes"/>, by the clock: the hand
    /// passes entries used since its last pass once (clearing their bit) and takes the first that
    /// were not. Two turns at most; fewer bytes come back when the rest are dirty or pinned.
    /// </summary>
    public List<CacheEntry> ChooseVictims(long bytes)
    {
        var victims = new List<CacheEntry>();
        long found = 0;
        int steps = 2 * _ring.Count;
        _hand ??= _ring.First;
        while (found < bytes && steps-- > 0 && _hand is not null)
        {
            var entry = _hand.Value;
            _hand = _hand.Next ?? _ring.First;
            if (!entry.Evictable || victims.Contains(entry)) continue;
            if (entry.Clock.Take()) continue;
            victims.Add(entry);
            found += entry.Bytes;
        }
        return victims;
    }

    /// <summary>At close: everything this image holds goes back to the budget.</summary>
    public void ReleaseAll()
    {
        _entries.Clear();
        _ring.Clear();
        _hand = null;
        Volatile.Write(ref _entryBytes, 0);
        Volatile.Write(ref _dirtyBytes, 0);
        Release(_used);
    }
}
