using System.Diagnostics;
using Xunit.Abstractions;

namespace QcowActors.Format.Tests.Bitmaps;

public sealed class DirtyBitsTests(ITestOutputHelper output)
{
    private const int G64K = 16;
    private const long K64 = 64 * 1024;
    private const int Cluster = 512; // 4096 granules per chunk: small enough to have many chunks

    /// <summary>The model: one bool per granule, set for every granule that [offset, offset+length) touches.</summary>
    private static void MarkModel(bool[] model, long granularity, long diskSize, long offset, long length)
    {
        long end = Math.Min(offset + length, diskSize);
        for (long g = offset / granularity; g * granularity < end; g++)
            model[g] = true;
    }

    private static bool[] Snapshot(DirtyBits bits)
    {
        var result = new bool[bits.Bits];
        for (long g = 0; g < bits.Bits; g++) result[g] = bits.IsSet(g);
        return result;
    }

    private static List<(long, long)> ModelRuns(bool[] model, long granularity, long diskSize, long from, long to)
    {
        var runs = new List<(long, long)>();
        to = Math.Min(to, diskSize);
        long? start = null;
        for (long g = 0; g < model.Length; g++)
        {
            long lo = Math.Max(g * granularity, from), hi = Math.Min((g + 1) * granularity, to);
            bool counts = model[g] && lo < hi;
            if (counts && start is null) start = lo;
            if (!counts && start is { } s) { runs.Add((s, g * granularity - s)); start = null; }
            if (counts && hi == to) { runs.Add((start!.Value, to - start.Value)); start = null; break; }
        }
        return runs;
    }

    [Fact]
    public void Mark_rounds_out_to_whole_granules()
    {
        var bits = new DirtyBits(1L << 30, G64K);
        bits.Mark(65535, 2); // last byte of granule 0, first byte of granule 1
        Assert.True(bits.IsSet(0));
        Assert.True(bits.IsSet(1));
        Assert.False(bits.IsSet(2));
        Assert.Equal(2, bits.CountSet());
        bits.Mark(3 * K64, K64); // exactly granule 3
        Assert.False(bits.IsSet(2));
        Assert.False(bits.IsSet(4));
        Assert.Equal(3, bits.CountSet());
        bits.Mark(10 * K64, 0);
        Assert.Equal(3, bits.CountSet());
    }

    [Fact]
    public void Mark_at_the_last_partial_granule_is_clamped_to_the_disk()
    {
        long disk = 3 * K64 + 100; // 4 granules, the last one 100 bytes
        var bits = new DirtyBits(disk, G64K);
        Assert.Equal(4, bits.Bits);
        bits.Mark(disk - 1, 1_000_000);
        bits.Mark(disk, 10);
        bits.Mark(disk + K64, long.MaxValue - disk - K64);
        Assert.Equal([false, false, false, true], Snapshot(bits));
        bits.Mark(0, long.MaxValue);
        Assert.Equal(4, bits.CountSet());
    }

    [Fact]
    public void Mark_matches_a_model_over_random_ranges()
    {
        const int Seed = 4242;
        var random = new Random(Seed);
        long disk = 5000 * 512L + 77;
        var bits = new DirtyBits(disk, 9);
        var model = new bool[bits.Bits];
        for (int i = 0; i < 300; i++)
        {
            long offset = random.NextInt64(0, disk + 1000);
            long length = random.Next(4) == 0 ? random.NextInt64(0, 200_000) : random.NextInt64(0, 3000);
            bits.Mark(offset, length);
            MarkModel(model, 512, disk, offset, length);
        }
        Assert.True(model.SequenceEqual(Snapshot(bits)), $"seed {Seed}");
        Assert.Equal(model.LongCount(b => b), bits.CountSet());
    }

    [Fact]
    public void Memory_is_one_bit_per_granule_in_whole_words()
    {
        Assert.Equal(2L << 20, new DirtyBits(1L << 40, G64K).MemoryBytes); // 16 Mi bits
        Assert.Equal(16, new DirtyBits(65 * K64, G64K).MemoryBytes);       // 65 bits: two words
        Assert.Equal(0, new DirtyBits(0, G64K).MemoryBytes);
    }

    [Fact]
    public void WriteChunk_stores_granule_8j_plus_i_in_bit_i_of_byte_j()
    {
        const int Seed = 77;
        var random = new Random(Seed);
        long disk = 3 * 4096 * 512L + 1234 * 512L + 5; // three full chunks of 512 bytes and a partial one
        var bits = new DirtyBits(disk, 9);
        for (int i = 0; i < 200; i++) bits.Mark(random.NextInt64(0, disk), random.Next(1, 5000));
        bool[] model = Snapshot(bits);

        Assert.Equal(4, bits.ChunkCount(Cluster));
        for (int chunk = 0; chunk < 4; chunk++)
        {
            var cluster = new byte[Cluster];
            cluster.AsSpan().Fill(0xEE); // must be overwritten, tail included
            bits.WriteChunk(chunk, cluster);
            var expected = new byte[Cluster];
            for (int j = 0; j < Cluster; j++)
            {
                for (int i = 0; i < 8; i++)
                {
                    long granule = (long)chunk * Cluster * 8 + 8 * j + i;
                    if (granule < model.Length && model[granule]) expected[j] |= (byte)(1 << i);
                }
            }
            Assert.True(expected.AsSpan().SequenceEqual(cluster), $"seed {Seed}, chunk {chunk}");
        }
    }

    [Fact]
    public void Granule_9_is_bit_1_of_byte_1()
    {
        var bits = new DirtyBits(1L << 20, 9);
        bits.Mark(9 * 512, 1);
        var cluster = new byte[Cluster];
        bits.WriteChunk(0, cluster);
        Assert.Equal(0b10, cluster[1]);
        Assert.Equal(1, cluster.Count(b => b != 0));
    }

    [Fact]
    public void LoadChunk_is_the_inverse_of_WriteChunk_and_ignores_bits_past_the_disk()
    {
        long disk = 4096 * 512L + 100 * 512L + 1; // chunk 1 holds 101 granules
        var source = new DirtyBits(disk, 9);
        source.Mark(0, 512);
        source.Mark(4000 * 512L, 200 * 512L); // across the chunk boundary
        var target = new DirtyBits(disk, 9);
        var cluster = new byte[Cluster];
        for (int chunk = 0; chunk < source.ChunkCount(Cluster); chunk++)
        {
            source.WriteChunk(chunk, cluster);
            target.LoadChunk(chunk, cluster);
        }
        Assert.Equal(Snapshot(source), Snapshot(target));

        var ones = new byte[Cluster];
        ones.AsSpan().Fill(0xFF);
        var loaded = new DirtyBits(disk, 9);
        loaded.LoadChunk(1, ones);
        Assert.Equal(101, loaded.CountSet());
        loaded.WriteChunk(1, cluster);
        Assert.Equal(12 * 8 + 5, cluster.Sum(b => System.Numerics.BitOperations.PopCount(b))); // 101 bits, then zeros
        Assert.Equal(0b1_1111, cluster[12]);

        var allOnes = new DirtyBits(disk, 9);
        allOnes.LoadChunkAllOnes(0, Cluster);
        Assert.Equal(4096, allOnes.CountSet());
        allOnes.LoadChunkAllOnes(1, Cluster);
        Assert.Equal(4096 + 101, allOnes.CountSet());
    }

    [Fact]
    public void StateOf_tells_zeros_ones_and_mixed_chunks_apart_counting_only_bits_in_the_disk()
    {
        long disk = 2 * 4096 * 512L + 70 * 512L; // chunk 2 holds 70 granules: one full word and 6 bits
        var bits = new DirtyBits(disk, 9);
        Assert.Equal(3, bits.ChunkCount(Cluster));
        Assert.All(Enumerable.Range(0, 3), c => Assert.Equal(ChunkState.Zeros, bits.StateOf(c, Cluster)));

        bits.Mark(4096 * 512L, 4096 * 512L);           // all of chunk 1
        bits.Mark(5, 1);                                // one granule of chunk 0
        Assert.Equal(ChunkState.Mixed, bits.StateOf(0, Cluster));
        Assert.Equal(ChunkState.Ones, bits.StateOf(1, Cluster));
        Assert.Equal(ChunkState.Zeros, bits.StateOf(2, Cluster));

        bits.Mark(2 * 4096 * 512L, 69 * 512L);          // all but the last granule
        Assert.Equal(ChunkState.Mixed, bits.StateOf(2, Cluster));
        bits.Mark(disk - 1, 1);
        Assert.Equal(ChunkState.Ones, bits.StateOf(2, Cluster));

        bits.ClearAll();
        Assert.Equal(0, bits.CountSet());
        bits.SetAll();
        Assert.Equal(bits.Bits, bits.CountSet());
        Assert.All(Enumerable.Range(0, 3), c => Assert.Equal(ChunkState.Ones, bits.StateOf(c, Cluster)));
    }

    [Fact]
    public void DirtyRuns_merges_adjacent_granules_and_stops_at_the_disk_end()
    {
        long disk = 10 * K64 + 1000;
        var bits = new DirtyBits(disk, G64K);
        bits.Mark(2 * K64, 1);
        bits.Mark(3 * K64 + 5, 10);
        bits.Mark(6 * K64, 1);
        bits.Mark(10 * K64 + 999, 1);
        Assert.Equal([(2 * K64, 2 * K64), (6 * K64, K64), (10 * K64, 1000)], bits.DirtyRuns(0, long.MaxValue));
        // Clipped to the range asked for.
        Assert.Equal([(3 * K64 + 7, K64 - 7)], bits.DirtyRuns(3 * K64 + 7, 5 * K64));
        Assert.Equal([(10 * K64 + 500, 500)], bits.DirtyRuns(10 * K64 + 500, disk + 12345));
        Assert.Empty(bits.DirtyRuns(disk, disk + K64));
        Assert.Empty(bits.DirtyRuns(4 * K64, 6 * K64));
    }

    [Fact]
    public void DirtyRuns_matches_a_model_across_word_boundaries()
    {
        const int Seed = 99;
        var random = new Random(Seed);
        long disk = 1000 * 512L + 300;
        var bits = new DirtyBits(disk, 9);
        var model = new bool[bits.Bits];
        for (int i = 0; i < 40; i++)
        {
            long offset = random.NextInt64(0, disk), length = random.NextInt64(1, 80 * 512);
            bits.Mark(offset, length);
            MarkModel(model, 512, disk, offset, length);
        }
        for (int i = 0; i < 200; i++)
        {
            long from = random.NextInt64(0, disk + 600), to = from + random.NextInt64(0, disk);
            Assert.True(ModelRuns(model, 512, disk, from, to).SequenceEqual(bits.DirtyRuns(from, to)), $"seed {Seed}: [{from}, {to})");
        }
    }

    [Fact]
    public void DirtyRuns_over_a_sparse_1_TiB_bitmap_is_fast()
    {
        const int Seed = 1;
        var random = new Random(Seed);
        var bits = new DirtyBits(1L << 40, G64K);
        for (int i = 0; i < 10_000; i++)
            bits.Mark(random.NextInt64(0, 1L << 40), random.NextInt64(1, 4 * K64));
        long best = long.MaxValue;
        int runs = 0;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            var watch = Stopwatch.StartNew();
            runs = bits.DirtyRuns(0, 1L << 40).Count();
            best = Math.Min(best, watch.ElapsedTicks);
        }
        var elapsed = TimeSpan.FromTicks(best * TimeSpan.TicksPerSecond / Stopwatch.Frequency);
        output.WriteLine($"{runs} runs over 16 Mi granules in {elapsed.TotalMilliseconds:0.###} ms");
        Assert.InRange(runs, 9_000, 10_000); // a few random ranges touch or overlap
        Assert.True(elapsed < TimeSpan.FromMilliseconds(50), $"took {elapsed.TotalMilliseconds} ms");
    }

    [Fact]
    public void Concurrent_marks_set_the_union()
    {
        const int Seed = 7;
        long disk = 100_000 * 512L + 11;
        var random = new Random(Seed);
        var ranges = Enumerable.Range(0, 20_000)
            .Select(_ => (Offset: random.NextInt64(0, disk), Length: random.Next(4) == 0 ? random.NextInt64(1, 300_000) : random.NextInt64(1, 5000)))
            .ToArray();
        var bits = new DirtyBits(disk, 9);
        Parallel.For(0, ranges.Length, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(4, Environment.ProcessorCount) },
            i => bits.Mark(ranges[i].Offset, ranges[i].Length));

        var model = new bool[bits.Bits];
        foreach (var (offset, length) in ranges) MarkModel(model, 512, disk, offset, length);
        Assert.True(model.SequenceEqual(Snapshot(bits)), $"seed {Seed}");
    }

    [Fact]
    public void Concurrent_marks_of_neighbouring_granules_in_one_word_are_not_lost()
    {
        // Each round, all threads start together and set interleaved bits of the same 16 words,
        // so a read-modify-write that is not atomic loses bits.
        int threads = Math.Clamp(Environment.ProcessorCount, 2, 8);
        const int Rounds = 2000, Granules = 1024;
        var bitmaps = Enumerable.Range(0, Rounds).Select(_ => new DirtyBits(Granules * 512L, 9)).ToArray();
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            foreach (var bits in bitmaps)
            {
                start.SignalAndWait();
                for (long g = t; g < Granules; g += threads)
                    bits.Mark(g * 512, 1);
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        int incomplete = bitmaps.Count(b => b.CountSet() != Granules);
        Assert.True(incomplete == 0, $"{incomplete} of {Rounds} rounds lost bits with {threads} threads");
    }

    [Fact]
    public void DirtyRuns_ends_a_run_at_a_word_boundary_before_clear_words()
    {
        var bits = new DirtyBits(64 * 6 * 512L, 9); // six words
        bits.Mark(0, 64 * 512);                     // word 0 full, word 1 clear
        bits.Mark(130 * 512, 512);                  // one bit in word 2
        bits.Mark(4 * 64 * 512L, 2 * 64 * 512L);    // words 4 and 5 full, to the end
        Assert.Equal([(0L, 64 * 512L), (130 * 512L, 512L), (256 * 512L, 128 * 512L)], bits.DirtyRuns(0, long.MaxValue));
    }

    [Fact]
    public void Resized_keeps_bits_drops_the_cut_tail_and_can_mark_the_grown_part()
    {
        long disk = 5 * K64 + 100; // 6 granules
        var bits = new DirtyBits(disk, G64K);
        bits.Mark(0, 1);
        bits.Mark(4 * K64, 1);

        var grown = bits.Resized(200 * K64, markGrownDirty: false);
        Assert.Equal(200, grown.Bits);
        Assert.Equal([0L, 4L], Enumerable.Range(0, 200).Where(g => grown.IsSet(g)).Select(g => (long)g));

        var grownDirty = bits.Resized(200 * K64, markGrownDirty: true);
        // Granule 5 held bytes 5·64K..5·64K+100 and now also new bytes up to 6·64K: it is dirty too.
        Assert.Equal([(0L, K64), (4 * K64, 196 * K64)], grownDirty.DirtyRuns(0, long.MaxValue));

        var shrunk = bits.Resized(2 * K64 + 1, markGrownDirty: true); // granule 4 is gone
        Assert.Equal(1, shrunk.CountSet());
        var regrown = shrunk.Resized(disk, markGrownDirty: false);
        Assert.Equal(1, regrown.CountSet());
        Assert.Equal(2, bits.CountSet()); // the original is untouched
    }
}
