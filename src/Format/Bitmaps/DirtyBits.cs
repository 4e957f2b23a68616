using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace QcowActors.Format;

/// <summary>
/// A dirty bitmap in memory: bit k is granule k, i.e. disk bytes [k·granularity, (k+1)·granularity).
/// Bit k of word w is granule 64w + k, so each word written little-endian is the on-disk data
/// (qcow2.txt "Bitmap data": least significant bit first), and a cluster of data is clusterSize / 8 words.
/// <para>
/// Threads: any number may <see cref="Mark"/> at once (lock-free, Interlocked on words). Readers see
/// each word atomically; a mark racing with a read may or may not be in what it returns.
/// <see cref="ClearAll"/>, <see cref="SetAll"/> and the loads replace bits: a mark racing with them can
/// be lost, so their owner must order them against writes.
/// </para>
/// Invariant: bits past the last granule of the disk are always zero.
/// </summary>
public sealed class DirtyBits
{
    private const int WordShift = 6; // 64 bits per word
    private const int WordMask = 63;
    private readonly ulong[] _words;
    private readonly ulong _lastWordMask;

    public DirtyBits(long diskSize, int granularityBits)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(diskSize);
        if (granularityBits is < BitmapLimits.MinGranularityBits or > BitmapLimits.MaxGranularityBits)
            throw new ArgumentOutOfRangeException(nameof(granularityBits), granularityBits,
                $"granularity_bits must be {BitmapLimits.MinGranularityBits}..{BitmapLimits.MaxGranularityBits}");
        DiskSize = diskSize;
        GranularityBits = granularityBits;
        Bits = BitmapTable.BitsFor(diskSize, granularityBits);
        long words = (Bits >> WordShift) + ((Bits & WordMask) != 0 ? 1 : 0);
        if (words > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(diskSize), diskSize, "the bitmap does not fit in one array: use a larger granularity");
        _words = GC.AllocateArray<ulong>((int)words);
        int tail = (int)(Bits & WordMask);
        _lastWordMask = tail == 0 ? ulong.MaxValue : (1UL << tail) - 1;
    }

    public long DiskSize { get; }
    public int GranularityBits { get; }
    public long Granularity => 1L << GranularityBits;
    /// <summary>Granules of the disk, the last one possibly partial.</summary>
    public long Bits { get; }
    public long MemoryBytes => (long)_words.Length * sizeof(ulong);

    /// <summary>Sets every granule that [offset, offset + length) touches; the part past the disk is ignored.</summary>
    public void Mark(long offset, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length == 0 || offset >= DiskSize)
            return;
        long end = length > DiskSize - offset ? DiskSize : offset + length;
        SetBits(offset >> GranularityBits, ((end - 1) >> GranularityBits) + 1);
    }

    /// <summary>Sets bits [from, to), to ≤ Bits.</summary>
    private void SetBits(long from, long to)
    {
        int first = (int)(from >> WordShift), last = (int)((to - 1) >> WordShift);
        ulong firstMask = ulong.MaxValue << (int)(from & WordMask);
        ulong lastMask = ulong.MaxValue >> (WordMask - (int)((to - 1) & WordMask));
        if (first == last)
        {
            OrWord(first, firstMask & lastMask);
            return;
        }
        OrWord(first, firstMask);
        for (int w = first + 1; w < last; w++)
        {
            if (Volatile.Read(ref _words[w]) != ulong.MaxValue)
                Interlocked.Exchange(ref _words[w], ulong.MaxValue);
        }
        OrWord(last, lastMask);
    }

    private void OrWord(int word, ulong mask)
    {
        // Reading first keeps a word that is already dirty (the common case for hot blocks) from
        // bouncing between cores' caches on every write.
        if ((Volatile.Read(ref _words[word]) & mask) != mask)
            Interlocked.Or(ref _words[word], mask);
    }

    public void ClearAll() => Array.Clear(_words);

    public void SetAll()
    {
        if (_words.Length == 0)
            return;
        Array.Fill(_words, ulong.MaxValue);
        _words[^1] = _lastWordMask;
    }

    public bool IsSet(long granule)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(granule);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(granule, Bits);
        return ((Volatile.Read(ref _words[granule >> WordShift]) >> (int)(granule & WordMask)) & 1) != 0;
    }

    public long CountSet()
    {
        long count = 0;
        foreach (ulong word in _words)
            count += BitOperations.PopCount(word);
        return count;
    }

    /// <summary>
    /// Byte ranges of the maximal runs of set granules that meet [from, to), clipped to [from, to)
    /// and to the disk, in order.
    /// </summary>
    public IEnumerable<(long Offset, long Length)> DirtyRuns(long from, long to)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(from);
        ArgumentOutOfRangeException.ThrowIfLessThan(to, from);
        to = Math.Min(to, DiskSize);
        return from >= to ? [] : Runs(from, to);
    }

    private IEnumerable<(long Offset, long Length)> Runs(long from, long to)
    {
        long bit = from >> GranularityBits;
        long endBit = ((to - 1) >> GranularityBits) + 1;
        while (bit < endBit)
        {
            long start = NextBit(bit, endBit, set: true);
            if (start >= endBit)
                yield break;
            long stop = NextBit(start, endBit, set: false);
            long runStart = Math.Max(start << GranularityBits, from);
            long runEnd = stop >= endBit ? to : Math.Min(stop << GranularityBits, to);
            yield return (runStart, runEnd - runStart);
            bit = stop;
        }
    }

    /// <summary>The first bit in [bit, limit) that is set (or clear, with set false), else limit.</summary>
    private long NextBit(long bit, long limit, bool set)
    {
        ulong flip = set ? 0UL : ulong.MaxValue;
        int lastWord = (int)((limit - 1) >> WordShift);
        int w = (int)(bit >> WordShift);
        ulong word = (Volatile.Read(ref _words[w]) ^ flip) & (ulong.MaxValue << (int)(bit & WordMask));
        while (word == 0)
        {
            if (w >= lastWord)
                return limit;
            // Vectorised skip over words with nothing to find: what keeps a sparse 1 TiB bitmap fast.
            var rest = _words.AsSpan(w + 1, lastWord - w);
            int i = set ? rest.IndexOfAnyExcept(0UL) : rest.IndexOfAnyExcept(ulong.MaxValue);
            if (i < 0)
                return limit;
            w += 1 + i;
            word = Volatile.Read(ref _words[w]) ^ flip; // re-read: a racing mark may have filled it
        }
        return Math.Min(((long)w << WordShift) + BitOperations.TrailingZeroCount(word), limit);
    }

    /// <summary>Clusters of bitmap data: the bitmap_table_size for this disk and granularity.</summary>
    public int ChunkCount(int clusterSize) => BitmapTable.EntriesFor(DiskSize, GranularityBits, ClusterBitsOf(clusterSize));

    public ChunkState StateOf(int chunk, int clusterSize)
    {
        var (first, count) = ChunkWords(chunk, clusterSize);
        var words = _words.AsSpan(first, count);
        if (words.IndexOfAnyExcept(0UL) < 0)
            return ChunkState.Zeros;
        bool holdsLastWord = first + count == _words.Length;
        var whole = holdsLastWord ? words[..^1] : words;
        if (whole.IndexOfAnyExcept(ulong.MaxValue) >= 0)
            return ChunkState.Mixed;
        return !holdsLastWord || Volatile.Read(ref _words[^1]) == _lastWordMask ? ChunkState.Ones : ChunkState.Mixed;
    }

    /// <summary>The chunk's cluster of on-disk data (cluster.Length = cluster size); bytes past the bitmap's end are zeroed, as QEMU writes them.</summary>
    public void WriteChunk(int chunk, Span<byte> cluster)
    {
        var (first, count) = ChunkWords(chunk, cluster.Length);
        var words = _words.AsSpan(first, count);
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(words).CopyTo(cluster);
        }
        else
        {
            for (int i = 0; i < words.Length; i++)
                BinaryPrimitives.WriteUInt64LittleEndian(cluster[(i * sizeof(ulong))..], words[i]);
        }
        cluster[(count * sizeof(ulong))..].Clear();
    }

    /// <summary>Replaces the chunk's bits with a cluster of on-disk data; bits past the disk are ignored.</summary>
    public void LoadChunk(int chunk, ReadOnlySpan<byte> cluster)
    {
        var (first, count) = ChunkWords(chunk, cluster.Length);
        for (int i = 0; i < count; i++)
            _words[first + i] = BinaryPrimitives.ReadUInt64LittleEndian(cluster[(i * sizeof(ulong))..]);
        if (first + count == _words.Length)
            _words[^1] &= _lastWordMask;
    }

    /// <summary>Sets every bit of the chunk inside the disk (a table entry with only the all-ones bit).</summary>
    public void LoadChunkAllOnes(int chunk, int clusterSize)
    {
        var (first, count) = ChunkWords(chunk, clusterSize);
        _words.AsSpan(first, count).Fill(ulong.MaxValue);
        if (first + count == _words.Length)
            _words[^1] = _lastWordMask;
    }

    /// <summary>
    /// A copy for a disk of <paramref name="newDiskSize"/> bytes: bits past the new end dropped, and,
    /// when <paramref name="markGrownDirty"/>, every granule touching a byte past the old end set.
    /// </summary>
    public DirtyBits Resized(long newDiskSize, bool markGrownDirty)
    {
        var resized = new DirtyBits(newDiskSize, GranularityBits);
        int kept = Math.Min(_words.Length, resized._words.Length);
        _words.AsSpan(0, kept).CopyTo(resized._words);
        if (kept > 0 && kept == resized._words.Length)
            resized._words[^1] &= resized._lastWordMask;
        if (markGrownDirty && newDiskSize > DiskSize)
            resized.Mark(DiskSize, newDiskSize - DiskSize);
        return resized;
    }

    /// <summary>The words holding chunk <paramref name="chunk"/>: clusterSize / 8 of them, fewer in the last chunk.</summary>
    private (int First, int Count) ChunkWords(int chunk, int clusterSize)
    {
        int chunks = ChunkCount(clusterSize);
        ArgumentOutOfRangeException.ThrowIfNegative(chunk);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(chunk, chunks);
        int perChunk = clusterSize / sizeof(ulong);
        long first = (long)chunk * perChunk;
        return ((int)first, (int)Math.Min(perChunk, _words.Length - first));
    }

    private static int ClusterBitsOf(int clusterSize)
    {
        if (!BitOperations.IsPow2(clusterSize) || clusterSize < 1 << QcowLimits.MinClusterBits || clusterSize > 1 << QcowLimits.MaxClusterBits)
            throw new ArgumentOutOfRangeException(nameof(clusterSize), clusterSize, "not a qcow2 cluster size (a power of two, 512 B..2 MiB)");
        return BitOperations.Log2((uint)clusterSize);
    }
}
