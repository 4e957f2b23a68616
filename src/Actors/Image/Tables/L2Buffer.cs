using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// A dense L2 table in memory is its cluster as on disk (big-endian entries), so a flush writes
/// it without a copy. Its owner changes one 64-bit entry at a time while readers on request
/// threads map from it: each entry is read and written as one aligned machine word (array data
/// starts 8-byte aligned), with volatile semantics, so a reader sees an entry's old or new
/// value, never a mix.
/// </summary>
internal static class L2Buffer
{
    public static ulong Get(byte[] table, int index)
    {
        if ((uint)index >= (uint)(table.Length >> 3)) throw new ArgumentOutOfRangeException(nameof(index));
        ulong raw = Volatile.Read(ref Slot(table, index));
        return BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(raw) : raw;
    }

    public static void Set(byte[] table, int index, ulong entry)
    {
        if ((uint)index >= (uint)(table.Length >> 3)) throw new ArgumentOutOfRangeException(nameof(index));
        Volatile.Write(ref Slot(table, index), BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(entry) : entry);
    }

    private static ref ulong Slot(byte[] table, int index)
        => ref Unsafe.As<byte, ulong>(ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(table), index << 3));
}

/// <summary>
/// The change counter of a table with extended (128-bit) entries, a sequence lock: an entry and
/// its bitmap are two words, so a reader could see one old and one new. The table's actor (the
/// only writer) makes the counter odd, writes both words, and makes it even again; a reader that
/// sees the same even value before and after reading trusts what it read, else it asks the actor.
/// Every access is volatile, so the reads of the words happen between the two reads of the
/// counter and the writes between the two writes.
/// </summary>
internal sealed class TableVersion
{
    private int _value;

    public int BeginRead() => Volatile.Read(ref _value);

    /// <summary>True when nothing changed since <see cref="BeginRead"/> returned <paramref name="seen"/>.</summary>
    public bool Unchanged(int seen) => (seen & 1) == 0 && Volatile.Read(ref _value) == seen;

    public void BeginWrite() => Volatile.Write(ref _value, _value + 1);

    public void EndWrite() => Volatile.Write(ref _value, _value + 1);
}

/// <summary>
/// An L2 table as readers without a round trip see it (<see cref="L2Directory"/>): dense or
/// compact, and its clock bit. When its owner replaces or drops it, it is retired first; a reader
/// that mapped from it then checks <see cref="Retired"/> and asks the owner instead, because a
/// dropped dense table's buffer goes back to the pool and may hold another table next. A table of
/// extended entries is always dense; its readers check <see cref="Version"/> as well.
/// </summary>
internal sealed class PublishedL2Table(byte[]? dense, SparseL2Table? sparse, ClockBit clock, TableVersion? version)
{
    private int _retired;

    public byte[]? Dense { get; } = dense;
    public SparseL2Table? Sparse { get; } = sparse;
    public ClockBit Clock { get; } = clock;
    /// <summary>Set for extended entries only.</summary>
    public TableVersion? Version { get; } = version;

    /// <summary>A table read from a file that nothing changes while it is read (a snapshot's, a backing image's).</summary>
    public static PublishedL2Table ReadOnly(byte[] table, QcowActors.Format.ClusterLayout layout)
        => new(table, null, new ClockBit(), layout.ExtendedL2 ? new TableVersion() : null);

    /// <summary>
    /// Read after the entries: a reader's entry loads are volatile (acquire), so they happen before
    /// this load; <see cref="Retire"/> is a full fence before the buffer can be handed on, so a reader
    /// that saw a reused buffer's bytes sees the table retired here.
    /// </summary>
    public bool Retired => Volatile.Read(ref _retired) != 0;

    public void Retire() => Interlocked.Exchange(ref _retired, 1);

    /// <summary>The 64-bit entry of slot <paramref name="index"/> (with extended L2, its first word).</summary>
    public ulong Get(int index) => Dense is { } dense ? L2Buffer.Get(dense, Version is null ? index : 2 * index) : Sparse!.Get(index);

    /// <summary>The subcluster bitmap of slot <paramref name="index"/> (extended L2 only).</summary>
    public SubclusterBitmap GetBitmap(int index) => new(L2Buffer.Get(Dense!, 2 * index + 1));
}
