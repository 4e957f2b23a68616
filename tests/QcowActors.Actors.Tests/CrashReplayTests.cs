using QcowActors.Actors.Image;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Actors.Tests;

/// <summary>
/// Power-loss states: every write and fsync at the seam is recorded; a crash keeps everything
/// before an fsync and any subset of the writes after it. Every such state must pass qemu-img
/// check without corruptions (leaks allowed), states at the end of a flush must hold the data
/// acknowledged by it, and reopening a leaky state with the open marker reclaims the leaks.
/// </summary>
public sealed class CrashReplayTests(ITestOutputHelper output) : EngineTestBase(new RecordingFileSystem())
{
    private RecordingFileSystem Recorder => (RecordingFileSystem)FileSystem;

    [Fact]
    public async Task Every_power_loss_state_is_consistent_and_flushed_data_survives()
    {
        const string name = "replay";
        const long size = 8L << 20;
        // 512 B clusters and 64-bit refcounts: a refcount block covers 32 KiB, so the table grows too.
        Qemu("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", ImagePath(name), size.ToString());
        byte[] baseImage = await File.ReadAllBytesAsync(ImagePath(name));
        var model = new byte[size];
        var flushed = new List<(int OpCount, byte[] Model)>();
        var rng = new Random(20261125);
        output.WriteLine("seed 20261125");
        for (int round = 0; round < 12; round++)
        {
            for (int k = 0; k < 6; k++)
            {
                int len = rng.Next(1, 40_000);
                long off = rng.NextInt64(0, size - len);
                var data = new byte[len];
                rng.NextBytes(data);
                await Service.WriteAsync(name, off, data, default);
                data.CopyTo(model, off);
            }
            if (round % 3 == 2)
            {
                long zoff = rng.NextInt64(0, size - 100_000);
                await Service.ZeroAsync(name, zoff, 100_000, default); // releases clusters on the way
                Array.Clear(model, (int)zoff, 100_000);
            }
            await Service.FlushAsync(name, default);
            flushed.Add((Recorder.Ops.Count, (byte[])model.Clone()));
        }

        await AssertEveryCrashStateAsync(baseImage, flushed, rng);
    }

    [Fact]
    public async Task Copy_on_write_out_of_compressed_clusters_survives_every_power_loss_state()
    {
        const string name = "replay-compressed";
        const long size = 2L << 20;
        // 512 B clusters: most compressed clusters share a host cluster with a neighbour, so a
        // replaced one must drop exactly its own references, in the durable order.
        string raw = Path.Combine(StoreDirectory, "replay-compressed.raw");
        var rng = new Random(20261203);
        output.WriteLine("seed 20261203");
        var model = new byte[size];
        for (int i = 0; i < model.Length; i++) model[i] = (byte)(i / 512 % 3 == 0 ? rng.Next(256) : rng.Next(4));
        await File.WriteAllBytesAsync(raw, model);
        Qemu("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=512", raw, ImagePath(name));
        File.Delete(raw);
        byte[] baseImage = await File.ReadAllBytesAsync(ImagePath(name));
        var flushed = new List<(int OpCount, byte[] Model)>();
        for (int round = 0; round < 8; round++)
        {
            for (int k = 0; k < 8; k++)
            {
                // Partial clusters (inflate around the bytes) and whole runs of them (replace).
                int len = k % 2 == 0 ? rng.Next(1, 700) : 512 * rng.Next(1, 8);
                long off = k % 2 == 0 ? rng.NextInt64(0, size - len) : 512 * rng.NextInt64(0, (size - len) / 512);
                var data = new byte[len];
                rng.NextBytes(data);
                await Service.WriteAsync(name, off, data, default);
                data.CopyTo(model, off);
            }
            if (round % 3 == 1)
            {
                long zoff = 512 * rng.NextInt64(0, (size - 20_000) / 512);
                await Service.ZeroAsync(name, zoff, 20_000, default);
                Array.Clear(model, (int)zoff, 20_000);
            }
            await Service.FlushAsync(name, default);
            flushed.Add((Recorder.Ops.Count, (byte[])model.Clone()));
        }
        await AssertEveryCrashStateAsync(baseImage, flushed, rng);
    }

    /// <summary>
    /// Every crash state of the recorded operations passes qemu-img check (leaks allowed), every
    /// flush's state holds what it acknowledged, and a leaky state reopened after an unclean close
    /// comes back clean.
    /// </summary>
    private async Task AssertEveryCrashStateAsync(byte[] baseImage, List<(int OpCount, byte[] Model)> flushed, Random rng)
    {
        var ops = Recorder.Ops;
        int states = 0, leaky = 0;
        string? leakyState = null;
        foreach (var (ops1, state) in CrashStates(ops, rng))
        {
            string path = Path.Combine(StoreDirectory, $"state-{states++}.qcow2");
            await File.WriteAllBytesAsync(path, Apply(baseImage, state));
            var (exit, text) = QemuCheck(path);
            if (exit is not (0 or 3)) File.Copy(path, "/tmp/badstate.qcow2", true);
            Assert.True(exit is 0 or 3, $"state after {ops1} ops: exit {exit}: {text}");
            if (exit == 3) { leaky++; leakyState ??= path; }
            else File.Delete(path);
        }
        output.WriteLine($"{states} crash states checked, {leaky} with leaks only");

        foreach (var (count, expected) in flushed)
        {
            string path = Path.Combine(StoreDirectory, "flushed.qcow2");
            await File.WriteAllBytesAsync(path, Apply(baseImage, ops.Take(count)));
            string raw = Path.Combine(StoreDirectory, "flushed.raw");
            await File.WriteAllBytesAsync(raw, expected);
            Qemu("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", path, raw);
        }

        if (leakyState is not null)
        {
            // Reopen a leaky state as an image that was not closed cleanly: the leaks are reclaimed.
            string image = ImagePath("leaky");
            File.Copy(leakyState, image);
            await File.WriteAllBytesAsync(ImageSupervisor.MarkerPathFor(image), []);
            await Service.GetInfoAsync("leaky", default);
            var (exit, text) = QemuCheck(image);
            Assert.True(exit == 0, text);
        }
    }

    /// <summary>
    /// Snapshot create and delete, and resize (grow past the L1 table's cluster, then shrink), between
    /// writes: every power-loss state passes qemu-img check with no errors (and, as the rewrite
    /// switches with one header write, no leaks either), and each acknowledged state holds its data.
    /// </summary>
    [Fact]
    public async Task Every_power_loss_state_of_snapshots_and_resize_is_consistent()
    {
        const string name = "replay-snap";
        long size = 1L << 20;
        Qemu("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=16", ImagePath(name), size.ToString());
        byte[] baseImage = await File.ReadAllBytesAsync(ImagePath(name));
        var model = new byte[size];
        var acknowledged = new List<(int OpCount, byte[] Model)>();
        var rng = new Random(20261126);
        output.WriteLine("seed 20261126");
        async Task WriteSomeAsync(int count)
        {
            for (int k = 0; k < count; k++)
            {
                int len = rng.Next(1, 20_000);
                long off = rng.NextInt64(0, model.Length - len);
                var data = new byte[len];
                rng.NextBytes(data);
                await Service.WriteAsync(name, off, data, default);
                data.CopyTo(model, off);
            }
            await Service.FlushAsync(name, default);
            acknowledged.Add((Recorder.Ops.Count, (byte[])model.Clone()));
        }

        await WriteSomeAsync(8);
        await Service.CreateSnapshotAsync(name, "one", default);
        acknowledged.Add((Recorder.Ops.Count, (byte[])model.Clone()));
        await WriteSomeAsync(6);
        await Service.CreateSnapshotAsync(name, "two", default);
        await WriteSomeAsync(4);
        // 512 B clusters: one L1 cluster maps 2 MiB, so 8 MiB moves the L1 table to new clusters.
        await Service.ResizeAsync(name, 8L << 20, default);
        Array.Resize(ref model, 8 << 20);
        acknowledged.Add((Recorder.Ops.Count, (byte[])model.Clone()));
        await WriteSomeAsync(4);
        await Service.DeleteSnapshotAsync(name, "one", default);
        acknowledged.Add((Recorder.Ops.Count, (byte[])model.Clone()));
        await WriteSomeAsync(3);
        await Service.DeleteSnapshotAsync(name, "two", default);
        await Service.ResizeAsync(name, 6L << 20, default);
        Array.Resize(ref model, 6 << 20);
        acknowledged.Add((Recorder.Ops.Count, (byte[])model.Clone()));

        var ops = Recorder.Ops;
        int states = 0;
        foreach (var (count, state) in CrashStates(ops, rng))
        {
            string path = Path.Combine(StoreDirectory, $"snap-state-{states++}.qcow2");
            await File.WriteAllBytesAsync(path, Apply(baseImage, state));
            var (exit, text) = QemuCheck(path);
            if (exit is not (0 or 3)) File.Copy(path, "/tmp/badstate-snap.qcow2", true);
            Assert.True(exit is 0 or 3, $"state after {count} ops: exit {exit}: {text}");
            File.Delete(path);
        }
        output.WriteLine($"{states} crash states checked");

        foreach (var (count, expected) in acknowledged)
        {
            string path = Path.Combine(StoreDirectory, "snap-ack.qcow2");
            await File.WriteAllBytesAsync(path, Apply(baseImage, ops.Take(count)));
            string raw = Path.Combine(StoreDirectory, "snap-ack.raw");
            await File.WriteAllBytesAsync(raw, expected);
            Qemu("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", path, raw);
            var (exit, text) = QemuCheck(path);
            Assert.True(exit is 0 or 3, text);
        }
    }

    /// <summary>
    /// Persistent bitmaps through writes, an add, a clear, stores at close, a reopen and a resize: every
    /// power-loss state passes qemu-img check (leaks allowed) and opens in QEMU, and every bitmap QEMU
    /// finds consistent (not in use) holds exactly the bits of one of the points where it was stored —
    /// a crash leaves bitmaps in use (inconsistent), never consistent and wrong.
    /// </summary>
    [Fact]
    public async Task Every_power_loss_state_of_bitmaps_is_consistent_and_never_wrong()
    {
        const string name = "replay-bitmaps";
        long size = 4L << 20;
        Qemu("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=16", ImagePath(name), size.ToString());
        Qemu("qemu-img", "bitmap", "--add", "-g", "4096", ImagePath(name), "b0");
        byte[] baseImage = await File.ReadAllBytesAsync(ImagePath(name));
        var rng = new Random(20261204);
        output.WriteLine("seed 20261204");
        var marks = new Dictionary<string, SortedSet<long>> { ["b0"] = [], ["b1"] = [] };
        // Where each bitmap was stored (op count when the close returned, its bits), and when each write returned and which bitmaps tracked it.
        var stored = new Dictionary<string, List<(int OpCount, string Bits)>> { ["b0"] = [(0, "")], ["b1"] = [] };
        var writes = new List<(int OpCount, string[] Tracked)>();
        var live = new List<string> { "b0" };
        string Describe(SortedSet<long> granules) => string.Join(",", granules);
        async Task WriteSomeAsync(int count)
        {
            for (int k = 0; k < count; k++)
            {
                int len = rng.Next(1, 30_000);
                long off = rng.NextInt64(0, size - len);
                var data = new byte[len];
                rng.NextBytes(data);
                await Service.WriteAsync(name, off, data, default);
                foreach (var bitmap in live)
                    for (long g = off / 4096; g <= (off + len - 1) / 4096; g++) marks[bitmap].Add(g);
                writes.Add((Recorder.Ops.Count, [.. live]));
            }
        }
        async Task CloseAsync()
        {
            await Service.CloseAsync(name, default);
            foreach (var bitmap in live) stored[bitmap].Add((Recorder.Ops.Count, Describe(marks[bitmap])));
        }

        await WriteSomeAsync(5);
        await Service.FlushAsync(name, default);
        await Service.AddBitmapAsync(name, "b1", 4096, enabled: true, checkpoint: false, default);
        live.Add("b1");
        await WriteSomeAsync(5);
        await CloseAsync();
        await WriteSomeAsync(4);
        await Service.ChangeBitmapAsync(name, "b0", enabled: null, clear: true, default);
        marks["b0"].Clear();
        await WriteSomeAsync(3);
        await CloseAsync();
        await Service.ResizeAsync(name, 6L << 20, default); // the bitmaps rewritten for the new size by the shadow commit
        await WriteSomeAsync(3);
        await CloseAsync();
        // A checkpoint: bitmap c1 and snapshot c1 in one shadow commit; c1 starts empty.
        await Service.AddBitmapAsync(name, "c1", 4096, enabled: true, checkpoint: true, default);
        marks["c1"] = [];
        stored["c1"] = [(Recorder.Ops.Count, "")];
        live.Add("c1");
        await WriteSomeAsync(3);
        await CloseAsync();

        var ops = Recorder.Ops;
        var fsyncs = ops.Select((op, i) => (op, i)).Where(x => x.op is RecordingFileSystem.FsyncOp).Select(x => x.i).ToList();
        int states = 0, consistent = 0;
        foreach (var (count, state) in CrashStates(ops, rng))
        {
            string path = Path.Combine(StoreDirectory, $"bitmap-state-{states++}.qcow2");
            await File.WriteAllBytesAsync(path, Apply(baseImage, state));
            var (exit, text) = QemuCheck(path);
            if (exit is not (0 or 3)) File.Copy(path, "/tmp/badstate-bitmaps.qcow2", true);
            Assert.True(exit is 0 or 3, $"state after {count} ops: exit {exit}: {text}");
            // Every op before the last fsync inside the state is in it.
            int durable = fsyncs.Where(f => f < count).DefaultIfEmpty(-1).Max() + 1;
            foreach (var bitmap in QcowActors.Testing.Qemu.Info(path).GetProperty("format-specific").GetProperty("data")
                         .TryGetProperty("bitmaps", out var list) ? list.EnumerateArray() : Enumerable.Empty<System.Text.Json.JsonElement>())
            {
                string bitmapName = bitmap.GetProperty("name").GetString()!;
                if (bitmap.GetProperty("flags").EnumerateArray().Any(f => f.GetString() == "in-use")) continue;
                consistent++;
                string bits = Describe(new SortedSet<long>(QcowActors.Testing.Qemu.DirtyRanges(path, bitmapName)
                    .SelectMany(r => Enumerable.Range(0, (int)((r.Length + 4095) / 4096)).Select(k => r.Offset / 4096 + k))));
                // Consistent means: the bits of a point where it was stored (the close in flight counts: its
                // header may be in), and no write it tracked after that point is in the state.
                int inFlight = stored[bitmapName].Where(p => p.OpCount > count).Select(p => p.OpCount).DefaultIfEmpty(int.MaxValue).Min();
                bool explained = stored[bitmapName].Any(p => p.OpCount <= inFlight && p.Bits == bits
                    && !writes.Any(w => w.OpCount > p.OpCount && w.OpCount <= durable && w.Tracked.Contains(bitmapName)));
                Assert.True(explained, $"state after {count} ops: bitmap {bitmapName} is consistent but holds {bits}, which no store explains");
            }
            File.Delete(path);
        }
        output.WriteLine($"{states} crash states checked, {consistent} consistent bitmaps compared");
        Assert.True(consistent > 0);
    }

    /// <summary>Everything before fsync e, plus subsets of the writes between fsync e and e+1.</summary>
    private static IEnumerable<(int, IEnumerable<RecordingFileSystem.Op>)> CrashStates(IReadOnlyList<RecordingFileSystem.Op> ops, Random rng)
    {
        var fsyncs = ops.Select((op, i) => (op, i)).Where(x => x.op is RecordingFileSystem.FsyncOp).Select(x => x.i).ToList();
        fsyncs.Add(ops.Count);
        int start = 0;
        foreach (int next in fsyncs)
        {
            var epoch = Enumerable.Range(start, next - start).Where(i => ops[i] is RecordingFileSystem.WriteOp).ToList();
            var before = ops.Take(start);
            yield return (start, before);
            if (epoch.Count > 0)
            {
                yield return (next, before.Concat(epoch.Select(i => ops[i])));
                for (int v = 0; v < 3; v++)
                {
                    var subset = epoch.Where(_ => rng.Next(2) == 0).Select(i => ops[i]);
                    yield return (next, before.Concat(subset));
                }
            }
            start = next + 1;
        }
    }

    private static byte[] Apply(byte[] baseImage, IEnumerable<RecordingFileSystem.Op> ops)
    {
        var writes = ops.OfType<RecordingFileSystem.WriteOp>().ToList();
        long length = Math.Max(baseImage.Length, writes.Count == 0 ? 0 : writes.Max(w => w.Offset + w.Bytes.Length));
        var image = new byte[length];
        baseImage.CopyTo(image, 0);
        foreach (var w in writes) w.Bytes.CopyTo(image, w.Offset);
        return image;
    }
}
