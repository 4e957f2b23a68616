using System.Buffers.Binary;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>What a flush writes of the refcount table: bytes [From, To) of Table at file offset Offset + From.</summary>
internal sealed record RefcountTableWrite(byte[] Table, long Offset, int From, int To);

/// <summary>
/// The refcount table: for each stretch of the file, the cluster holding its refcount block. Kept
/// in its on-disk form (big-endian entries), so a flush writes it without a copy: while a flush
/// writes it, it is frozen and new entries wait in an overlay until the write is done. It grows
/// by moving to a larger contiguous run at the end of the file (QEMU allows 8 MiB); the old
/// clusters are then the caller's to release once the header pointing at the new table is durable.
/// Owned by the image supervisor.
/// </summary>
internal sealed class RefcountTable
{
    /// <summary>Bits 9-55: never a negative offset, whatever a corrupt entry holds (the opener reports such entries).</summary>
    private const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00UL;
    private readonly int _clusterSize;
    private byte[] _table;
    private readonly Dictionary<long, long> _pending = [];
    private int _dirtyFrom = int.MaxValue;
    private int _dirtyTo;
    private byte[]? _frozen;

    public RefcountTable(byte[] table, long offset, int clusterSize)
    {
        _table = table;
        Offset = offset;
        _clusterSize = clusterSize;
    }

    public long Offset { get; private set; }
    public int Clusters => _table.Length / _clusterSize;
    public long EntryCount => _table.Length / 8;
    /// <summary>Bytes of the table in memory (and of a frozen predecessor a flush still writes).</summary>
    public long MemoryBytes => _table.Length + (_frozen is not null && !ReferenceEquals(_frozen, _table) ? _frozen.Length : 0);
    public bool IsDirty => _dirtyTo > _dirtyFrom || _pending.Count > 0;

    /// <summary>Host offset of block t, 0 when there is none (or t lies beyond the table).</summary>
    public long BlockOffset(long t)
    {
        if (_pending.TryGetValue(t, out long pending)) return pending;
        if (t >= EntryCount) return 0;
        return (long)(BinaryPrimitives.ReadUInt64BigEndian(_table.AsSpan((int)(t * 8))) & OffsetMask);
    }

    /// <summary>Every (index, offset) of a block the table points to.</summary>
    public IEnumerable<(long Index, long Offset)> Blocks()
    {
        for (long t = 0; t < EntryCount; t++)
            if (BlockOffset(t) is var off and not 0) yield return (t, off);
        foreach (var (t, off) in _pending)
            if (t >= EntryCount) yield return (t, off);
    }

    public void SetBlock(long t, long offset)
    {
        if (t >= EntryCount) throw new ArgumentOutOfRangeException(nameof(t), t, "grow the refcount table first");
        if (_frozen is not null && ReferenceEquals(_frozen, _table))
        {
            _pending[t] = offset;
            return;
        }
        BinaryPrimitives.WriteUInt64BigEndian(_table.AsSpan((int)(t * 8)), (ulong)offset);
        MarkDirty((int)(t * 8), (int)(t * 8) + 8);
    }

    /// <summary>Clusters a table covering index <paramref name="t"/> needs (at least doubling), or throws past QEMU's limit.</summary>
    public int ClustersToCover(long t)
    {
        long need = ((t + 1) * 8 + _clusterSize - 1) / _clusterSize;
        long grown = Math.Max(need, 2L * Clusters);
        if (grown * _clusterSize > QcowLimits.MaxRefcountTableBytes) grown = need;
        if (grown * _clusterSize > QcowLimits.MaxRefcountTableBytes)
            throw new Service.ImageException(Service.ImageError.DiskFull,
                "the image cannot grow: its refcount table would pass QEMU's 8 MiB limit");
        return (int)grown;
    }

    /// <summary>Moves the table to [newOffset, +newClusters): the whole table is written by the next flush, with the header.</summary>
    public void MoveTo(long newOffset, int newClusters)
    {
        var table = new byte[(long)newClusters * _clusterSize];
        _table.CopyTo(table, 0);
        foreach (var (t, off) in _pending)
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(t * 8)), (ulong)off);
        _pending.Clear();
        _table = table;
        Offset = newOffset;
        _dirtyFrom = 0;
        _dirtyTo = table.Length;
    }

    /// <summary>
    /// What a flush must write, or null; from now until <see cref="Thaw"/> the bytes handed out
    /// do not change (new entries wait in the overlay), so the flush writes them as they are.
    /// </summary>
    public RefcountTableWrite? Freeze()
    {
        if (_dirtyTo <= _dirtyFrom) return null;
        _frozen = _table;
        var write = new RefcountTableWrite(_table, Offset, _dirtyFrom, _dirtyTo);
        _dirtyFrom = int.MaxValue;
        _dirtyTo = 0;
        return write;
    }

    /// <summary>The flush is done with the frozen bytes; what it failed to write is dirty again.</summary>
    public void Thaw(RefcountTableWrite? write, bool written)
    {
        _frozen = null;
        if (write is not null && !written && ReferenceEquals(write.Table, _table)) MarkDirty(write.From, write.To);
        foreach (var (t, off) in _pending.ToList())
        {
            _pending.Remove(t);
            SetBlock(t, off);
        }
    }

    private void MarkDirty(int from, int to)
    {
        _dirtyFrom = Math.Min(_dirtyFrom, from);
        _dirtyTo = Math.Max(_dirtyTo, to);
    }
}
