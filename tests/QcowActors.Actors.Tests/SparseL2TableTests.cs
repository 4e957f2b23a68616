using System.Buffers.Binary;
using QcowActors.Actors.Image;
using Xunit;

namespace QcowActors.Actors.Tests;

/// <summary>
/// Tables with few slots in use are loaded in compact form; reads map them, and the first write
/// turns them dense without a reader ever seeing an acknowledged write undone.
/// </summary>
public sealed class SparseL2TableTests : EngineTestBase
{
    [Fact]
    public void Only_tables_with_at_most_a_sixteenth_of_their_slots_in_use_are_kept_sparse()
    {
        const int slots = 8192;
        var table = new byte[slots * 8];
        var rng = new Random(7);
        var used = new SortedDictionary<int, ulong>();
        while (used.Count < slots / 16)
        {
            int i = rng.Next(slots);
            ulong raw = (ulong)rng.NextInt64(1, long.MaxValue);
            used[i] = raw;
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(i * 8), raw);
        }
        var sparse = SparseL2Table.TryFrom(table, slots);
        Assert.NotNull(sparse);
        Assert.Equal(used.Count, sparse.UsedCount);
        var dense = new byte[slots * 8];
        sparse.WriteDense(dense);
        Assert.Equal(table, dense); // the dense form is the table's on-disk bytes again
        for (int i = 0; i < slots; i++)
            Assert.Equal(used.GetValueOrDefault(i), sparse.Get(i));

        int extra = Enumerable.Range(0, slots).First(i => !used.ContainsKey(i));
        BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(extra * 8), 1UL << 9);
        Assert.Null(SparseL2Table.TryFrom(table, slots)); // one slot more than a sixteenth: dense
    }

    [Fact]
    public async Task A_table_loaded_sparse_serves_reads_then_takes_writes_that_read_back_at_once()
    {
        const string name = "sparse";
        const long size = 1L << 30; // 64 KiB clusters: two tables of 8192 slots
        const int cluster = 64 * 1024;
        Qemu("qemu-img", "create", "-q", "-f", "qcow2", ImagePath(name), size.ToString());
        var model = new byte[size];
        var rng = new Random(99);
        // A few scattered clusters written by QEMU, so the tables on disk are sparse when the engine loads them.
        foreach (long c in new long[] { 3, 700, 8191, 8192, 9000, 16000 })
        {
            byte fill = (byte)rng.Next(1, 255);
            Array.Fill(model, fill, (int)(c * cluster), cluster);
            Qemu("qemu-io", "-f", "qcow2", "-c", $"write -P {fill} {c * cluster} {cluster}", ImagePath(name));
        }

        foreach (long off in new long[] { 3L * cluster, 8191L * cluster - 512, 16000L * cluster + 4096, 12345L * cluster })
            Assert.Equal(model.AsSpan((int)off, 8192).ToArray(), await ReadAsync(name, off, 8192));

        for (int k = 0; k < 200; k++)
        {
            int len = rng.Next(1, 3 * cluster);
            long off = rng.NextInt64(0, size - len);
            var data = new byte[len];
            rng.NextBytes(data);
            await Service.WriteAsync(name, off, data, default);
            data.CopyTo(model, off);
            // Read straight after the acknowledgement: the reader must see the table the write went into.
            Assert.Equal(data, await ReadAsync(name, off, len));
        }
        await Service.FlushAsync(name, default);
        for (long off = 0; off < size; off += 64L << 20)
        {
            var back = await ReadAsync(name, off, 64 << 20);
            Assert.True(model.AsSpan((int)off, 64 << 20).SequenceEqual(back), $"mismatch in the 64 MiB at {off}");
        }
        var (exit, text) = QemuCheck(ImagePath(name));
        Assert.True(exit == 0, text);
    }
}
