using System.Buffers.Binary;

namespace QcowActors.Actors.Image;

/// <summary>
/// A clean L2 table with few entries in use, kept as its used slots only. A terabyte disk with
/// data scattered over it has thousands of tables with a few dozen entries each: dense they cost
/// 64 KiB apiece (128 MiB for 1 TiB), this way about a kilobyte. Immutable: the table's actor
/// makes it dense (<see cref="WriteDense"/>, into a buffer its supervisor reserved) before its first change.
/// </summary>
internal sealed class SparseL2Table
{
    /// <summary>Tables with at most 1/16 of their slots in use are kept sparse (12 bytes a slot vs 8 a slot dense).</summary>
    private const int DensityDivisor = 16;

    private readonly int[] _slots;
    private readonly ulong[] _values;

    private SparseL2Table(int length, int[] slots, ulong[] values)
    {
        Length = length;
        _slots = slots;
        _values = values;
    }

    /// <summary>Slots in the table (used or not).</summary>
    public int Length { get; }
    public int UsedCount => _slots.Length;
    /// <summary>Bytes this table holds: its two arrays and itself, headers included.</summary>
    public long MemoryBytes => 96 + _slots.Length * 12L;

    public int SlotAt(int k) => _slots[k];
    public ulong ValueAt(int k) => _values[k];

    /// <summary>The table from its on-disk bytes when sparse enough, else null (keep it dense).</summary>
    public static SparseL2Table? TryFrom(ReadOnlySpan<byte> table, int length)
    {
        int used = 0;
        for (int i = 0; i < length; i++)
            if (BinaryPrimitives.ReadUInt64BigEndian(table[(i * 8)..]) != 0 && ++used > length / DensityDivisor)
                return null;
        var slots = new int[used];
        var values = new ulong[used];
        for (int i = 0, k = 0; i < length; i++)
        {
            ulong raw = BinaryPrimitives.ReadUInt64BigEndian(table[(i * 8)..]);
            if (raw == 0) continue;
            slots[k] = i;
            values[k++] = raw;
        }
        return new SparseL2Table(length, slots, values);
    }

    /// <summary>The raw entry of slot i (0 when unused).</summary>
    public ulong Get(int i)
    {
        int k = Array.BinarySearch(_slots, i);
        return k >= 0 ? _values[k] : 0;
    }

    /// <summary>The table in its on-disk form (big-endian entries) into <paramref name="table"/> (Length * 8 bytes).</summary>
    public void WriteDense(Span<byte> table)
    {
        table[..(Length * 8)].Clear();
        for (int k = 0; k < _slots.Length; k++) BinaryPrimitives.WriteUInt64BigEndian(table[(_slots[k] * 8)..], _values[k]);
    }
}
