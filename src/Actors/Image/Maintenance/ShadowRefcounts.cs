using System.Buffers;
using System.Buffers.Binary;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image.Maintenance;

/// <summary>
/// The refcount structure a metadata rewrite builds: one new block per block index, each at its
/// place in the fresh region (<see cref="RewriteLayout"/>), starting as a copy of the old block and
/// changed by the rewrite's deltas. At most <see cref="CachedBlocks"/> blocks are in memory: a block
/// pushed out is written to its new place and read back from there when touched again. That is safe
/// in any order because nothing refers to the new blocks until the header switches to the new
/// refcount table, after <see cref="CompleteAsync"/> wrote every block and the caller's fsync.
/// </summary>
internal sealed class ShadowRefcounts : IAsyncDisposable
{
    internal const int CachedBlocks = 32;
    private readonly IImageFile _file;
    private readonly ClusterLayout _layout;
    private readonly ulong[] _oldTable;
    private readonly RewriteLayout _plan;
    private readonly FreshRegion _region;
    private readonly Dictionary<long, (byte[] Bytes, bool Dirty)> _cached = [];
    private readonly LinkedList<long> _recency = new();
    private readonly bool[] _writtenOnce;
    private readonly ulong _max;

    public ShadowRefcounts(IImageFile file, ClusterLayout layout, ulong[] oldTable, RewriteLayout plan, FreshRegion region)
    {
        _file = file;
        _layout = layout;
        _oldTable = oldTable;
        _plan = plan;
        _region = region;
        _writtenOnce = new bool[plan.Blocks];
        _max = RefcountBlock.MaxValue(layout.RefcountOrder);
    }

    /// <summary>Changes the count of a cluster; a count that would drop below 0 or pass the width's maximum fails the rewrite (before anything refers to it).</summary>
    public async ValueTask AddAsync(long cluster, long delta, CancellationToken ct)
    {
        if (delta == 0) return;
        long t = _layout.RefcountTableIndex(cluster);
        var block = await BlockAsync(t, ct).ConfigureAwait(false);
        long i = _layout.RefcountBlockIndex(cluster);
        ulong now = RefcountBlock.Get(block, i, _layout.RefcountOrder);
        if (delta < 0 && now < (ulong)-delta)
            throw new ImageException(ImageError.Unsupported,
                $"the refcount of cluster {cluster} is {now}, lower than its references; repair the image with qemu-img check -r all", Corruption.Feature);
        ulong next = delta < 0 ? now - (ulong)-delta : now + (ulong)delta;
        if (delta > 0 && (next < now || next > _max))
            throw new ImageException(ImageError.Conflict,
                $"cluster {cluster} would be referenced more than {_max} times, the most {_layout.RefcountBits}-bit refcounts hold");
        RefcountBlock.Set(block, i, _layout.RefcountOrder, next);
        _cached[t] = (block, true);
    }

    /// <summary>Adds delta to every cluster of [offset, offset+bytes) (a table or a compressed cluster's host range).</summary>
    public async ValueTask AddRangeAsync(long offset, long bytes, long delta, CancellationToken ct)
    {
        if (bytes <= 0) return;
        for (long c = offset >> _layout.ClusterBits; c <= (offset + bytes - 1) >> _layout.ClusterBits; c++)
            await AddAsync(c, delta, ct).ConfigureAwait(false);
    }

    public async ValueTask<ulong> GetAsync(long cluster, CancellationToken ct)
    {
        var block = await BlockAsync(_layout.RefcountTableIndex(cluster), ct).ConfigureAwait(false);
        return RefcountBlock.Get(block, _layout.RefcountBlockIndex(cluster), _layout.RefcountOrder);
    }

    /// <summary>Writes every block to its new place (untouched ones copied from the old block, or zeros) and returns the new refcount table's bytes.</summary>
    public async Task<byte[]> CompleteAsync(CancellationToken ct)
    {
        for (long t = 0; t < _plan.Blocks; t++)
        {
            if (_cached.ContainsKey(t) || _writtenOnce[t]) continue;
            var block = await BlockAsync(t, ct).ConfigureAwait(false);
            _cached[t] = (block, true);
        }
        foreach (long t in _recency.ToList()) await EvictAsync(t, ct).ConfigureAwait(false);
        var table = new byte[_plan.RefcountTableClusters * _layout.ClusterSize];
        for (long t = 0; t < _plan.Blocks; t++)
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(t * 8)), (ulong)((_plan.FirstBlockCluster + t) << _layout.ClusterBits));
        return table;
    }

    private async ValueTask<byte[]> BlockAsync(long t, CancellationToken ct)
    {
        // Only a reference past the end of the file (a corrupt entry) counts a cluster no planned block covers.
        if (t >= _plan.Blocks)
            throw new ImageException(ImageError.Unsupported,
                $"the image references a cluster past the end of its file (refcount block {t}, the file needs {_plan.Blocks}); "
                + "repair it with qemu-img check -r all", Corruption.Feature);
        if (_cached.TryGetValue(t, out var hit))
        {
            _recency.Remove(t);
            _recency.AddFirst(t);
            return hit.Bytes;
        }
        if (_cached.Count >= CachedBlocks) await EvictAsync(_recency.Last!.Value, ct).ConfigureAwait(false);
        int cs = _layout.ClusterSize;
        var bytes = ArrayPool<byte>.Shared.Rent(cs);
        var block = bytes.AsMemory(0, cs);
        long old = t < _oldTable.Length ? (long)(_oldTable[t] & ~511UL) : 0;
        if (_writtenOnce[t]) await _file.ReadAsync(block, NewOffset(t), ct).ConfigureAwait(false);
        else if (old != 0) await _file.ReadAsync(block, old, ct).ConfigureAwait(false);
        else block.Span.Clear();
        _cached[t] = (bytes, false);
        _recency.AddFirst(t);
        return bytes;
    }

    private long NewOffset(long t) => (_plan.FirstBlockCluster + t) << _layout.ClusterBits;

    private async ValueTask EvictAsync(long t, CancellationToken ct)
    {
        var (bytes, dirty) = _cached[t];
        if (dirty || !_writtenOnce[t])
        {
            await _region.WriteAsync(bytes.AsMemory(0, _layout.ClusterSize), NewOffset(t), ct).ConfigureAwait(false);
            _writtenOnce[t] = true;
        }
        _cached.Remove(t);
        _recency.Remove(t);
        ArrayPool<byte>.Shared.Return(bytes);
    }

    public ValueTask DisposeAsync()
    {
        foreach (var (bytes, _) in _cached.Values) ArrayPool<byte>.Shared.Return(bytes);
        _cached.Clear();
        _recency.Clear();
        return ValueTask.CompletedTask;
    }
}
