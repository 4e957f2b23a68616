using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace QcowActors.Cluster.Tests;

/// <summary>A 4 KiB write the load client is trying to get acknowledged.</summary>
internal sealed record PendingWrite(string Image, long Sequence, long Offset, byte[] Data)
{
    public override string ToString() => $"{Image} write #{Sequence} at {Offset}";
}

/// <summary>
/// What one image must contain: the bytes of its acknowledged writes (all within the first
/// <see cref="RegionBytes"/> of the disk; the rest stays zero). Every write has its own content,
/// beginning with a tag naming it, so a block read back wrong says which write it holds. A write
/// given up without an acknowledgement may or may not have reached the disk: its block then
/// accepts either content until an acknowledged write replaces it.
/// </summary>
internal sealed class ImageModel
{
    public const int BlockSize = 4096;
    private const int TagLength = 48;

    private readonly byte[] _expected;
    private readonly Dictionary<int, List<byte[]>> _alternatives = [];
    private readonly Random _random;
    private readonly int _index;
    private long _sequence;

    public ImageModel(string name, int index, long size, int regionBytes, int seed)
    {
        Name = name;
        _index = index;
        Size = size;
        RegionBytes = regionBytes;
        _expected = new byte[regionBytes];
        _random = new Random(seed);
    }

    public string Name { get; }

    public long Size { get; }

    /// <summary>Writes land in [0, RegionBytes); the read-back compares this range.</summary>
    public int RegionBytes { get; }

    public long Acknowledged { get; private set; }

    public long Abandoned { get; private set; }

    /// <summary>The next write: a random block of the region, content unique to this write.</summary>
    public PendingWrite Next()
    {
        lock (_expected)
        {
            var block = _random.Next(RegionBytes / BlockSize);
            var sequence = ++_sequence;
            var offset = (long)block * BlockSize;
            return new PendingWrite(Name, sequence, offset, Content(sequence, offset));
        }
    }

    public void Acknowledge(PendingWrite write)
    {
        lock (_expected)
        {
            write.Data.CopyTo(_expected.AsSpan((int)write.Offset));
            _alternatives.Remove(BlockOf(write.Offset));
            Acknowledged++;
        }
    }

    /// <summary>The write was never acknowledged: its block may hold it or what it held before.</summary>
    public void Abandon(PendingWrite write)
    {
        lock (_expected)
        {
            var block = BlockOf(write.Offset);
            if (!_alternatives.TryGetValue(block, out var list))
            {
                _alternatives[block] = list = [];
            }
            list.Add(write.Data);
            Abandoned++;
        }
    }

    /// <summary>Null when <paramref name="actual"/> (the region read back) matches; else the first mismatching blocks, described.</summary>
    public string? Describe(ReadOnlySpan<byte> actual)
    {
        if (actual.Length != RegionBytes)
        {
            return $"{Name}: read {actual.Length} bytes, expected {RegionBytes}";
        }
        lock (_expected)
        {
            var problems = new List<string>();
            var mismatched = 0;
            for (var block = 0; block < RegionBytes / BlockSize; block++)
            {
                var got = actual.Slice(block * BlockSize, BlockSize);
                var want = _expected.AsSpan(block * BlockSize, BlockSize);
                if (got.SequenceEqual(want))
                {
                    continue;
                }
                if (_alternatives.TryGetValue(block, out var list) && MatchesAny(got, list))
                {
                    continue;
                }
                mismatched++;
                if (problems.Count < 5)
                {
                    problems.Add($"block at {block * BlockSize}: expected {Tag(want)}, found {Tag(got)}");
                }
            }
            return mismatched == 0 ? null : $"{Name}: {mismatched} block(s) differ from the acknowledged writes; {string.Join("; ", problems)}";
        }
    }

    private static bool MatchesAny(ReadOnlySpan<byte> block, List<byte[]> candidates)
    {
        foreach (var candidate in candidates)
        {
            if (block.SequenceEqual(candidate))
            {
                return true;
            }
        }
        return false;
    }

    private static int BlockOf(long offset) => (int)(offset / BlockSize);

    private byte[] Content(long sequence, long offset)
    {
        var data = new byte[BlockSize];
        var tag = Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"[{Name} #{sequence} @{offset}]").PadRight(TagLength, ' '));
        tag.AsSpan(0, TagLength).CopyTo(data);
        var seed = ((ulong)(uint)_index << 40) ^ (ulong)sequence;
        for (var i = TagLength; i + 8 <= BlockSize; i += 8)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(i), SplitMix(seed, (ulong)i));
        }
        return data;
    }

    /// <summary>What a block holds, for messages: the write's tag, "zeros", or its first bytes.</summary>
    private static string Tag(ReadOnlySpan<byte> block)
    {
        if (!block.ContainsAnyExcept((byte)0))
        {
            return "zeros";
        }
        if (block[0] == (byte)'[' && block[..TagLength].IndexOf((byte)']') is > 0 and var end)
        {
            return Encoding.ASCII.GetString(block[..(end + 1)]);
        }
        return "untagged bytes " + Convert.ToHexString(block[..16]);
    }

    private static ulong SplitMix(ulong seed, ulong index)
    {
        var z = seed + (index + 1) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
