namespace QcowActors.EndToEnd.Tests;

/// <summary>A write of Length bytes at Offset of the virtual disk.</summary>
internal readonly record struct WriteOp(long Offset, int Length)
{
    public long End => Offset + Length;

    public override string ToString() => $"[{Offset}, {End})";
}

/// <summary>Random write workloads biased towards the places an engine gets wrong.</summary>
internal static class RandomWorkload
{
    /// <summary>
    /// <paramref name="count"/> writes of <paramref name="minLength"/>..<paramref name="maxLength"/> bytes
    /// (log-uniform, half of them at most 64 KiB): a fifth straddle a cluster boundary, a tenth an L2-table
    /// boundary (an L2 table maps clusterSize²/8 bytes), a fifth overlap an earlier write, the rest anywhere.
    /// </summary>
    public static List<WriteOp> Writes(Random rng, long diskSize, int count, int clusterSize, int maxLength, int minLength = 1)
    {
        var l2Coverage = (long)clusterSize * (clusterSize / 8);
        var ops = new List<WriteOp>(count);
        for (var i = 0; i < count; i++)
        {
            var length = (int)Math.Min(PickLength(rng, minLength, maxLength), diskSize);
            long offset;
            var kind = rng.Next(10);
            if (kind < 2 && diskSize > clusterSize)
            {
                offset = Straddle(rng, clusterSize * rng.NextInt64(1, diskSize / clusterSize), length);
            }
            else if (kind == 2 && diskSize > l2Coverage)
            {
                offset = Straddle(rng, l2Coverage * rng.NextInt64(1, (diskSize - 1) / l2Coverage + 1), length);
            }
            else if (kind < 5 && ops.Count > 0)
            {
                var earlier = ops[rng.Next(ops.Count)];
                offset = earlier.Offset + rng.NextInt64(-length + 1, earlier.Length);
            }
            else
            {
                offset = rng.NextInt64(0, diskSize - length + 1);
            }
            ops.Add(new WriteOp(Math.Clamp(offset, 0, diskSize - length), length));
        }
        return ops;
    }

    /// <summary>Random bytes for a write (never all zero, so a lost write cannot pass as a hole).</summary>
    public static byte[] Data(Random rng, int length)
    {
        var data = new byte[length];
        rng.NextBytes(data);
        data[0] |= 1;
        return data;
    }

    private static long Straddle(Random rng, long boundary, int length)
        => length < 2 ? boundary - rng.Next(2) : boundary - rng.NextInt64(1, length);

    private static int PickLength(Random rng, int min, int max)
    {
        var upper = rng.Next(2) == 0 ? Math.Max(min, Math.Min(max, 64 * 1024)) : max;
        var value = Math.Exp(Math.Log(min) + rng.NextDouble() * (Math.Log(upper) - Math.Log(min)));
        return (int)Math.Clamp(Math.Round(value), min, upper);
    }
}
