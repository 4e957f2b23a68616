using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Persistent dirty bitmaps against QEMU: the bits our writes set are the ones qemu-nbd exports
/// (nbdinfo --map=qemu:dirty-bitmap:B), bitmaps we add are QEMU's to list, check and merge, a
/// kill -9 leaves them inconsistent, and the incremental backup cycle with a checkpoint copies only
/// dirty data yet ends with an exact copy.
/// </summary>
public sealed class DirtyBitmapTests(ITestOutputHelper output) : IDisposable
{
    private const long KiB = 1024, MiB = 1024 * KiB;
    private readonly TempDirectory _scratch = new("e2e-bitmaps");

    /// <summary>What QEMU marks for a write or zeroing: every granule the byte range touches.</summary>
    private sealed class BitmapModel(long diskSize, long granularity)
    {
        private readonly SortedSet<long> _granules = [];

        public void Mark(long offset, long length)
        {
            for (long g = offset / granularity; g <= (offset + length - 1) / granularity; g++) _granules.Add(g);
        }

        /// <summary>Maximal dirty byte ranges, the last clamped to the disk.</summary>
        public List<(long Offset, long Length)> Ranges()
        {
            var ranges = new List<(long, long)>();
            long start = -1, previous = -2;
            foreach (long g in _granules.Append(long.MaxValue))
            {
                if (g == previous + 1)
                {
                    previous = g;
                    continue;
                }
                if (start >= 0) ranges.Add((start * granularity, Math.Min((previous + 1) * granularity, diskSize) - start * granularity));
                start = previous = g;
            }
            return ranges;
        }
    }

    private static List<(long Offset, long Length)> DirtyOf(IReadOnlyList<DirtyExtentDto> extents)
    {
        var ranges = new List<(long Offset, long Length)>();
        foreach (var e in extents.Where(e => e.Dirty))
        {
            if (ranges.Count > 0 && ranges[^1].Offset + ranges[^1].Length == e.Start) ranges[^1] = (ranges[^1].Offset, ranges[^1].Length + e.Length);
            else ranges.Add((e.Start, e.Length));
        }
        return ranges;
    }

    private static void AssertCovers(IReadOnlyList<DirtyExtentDto> extents, long size)
    {
        long position = 0;
        foreach (var e in extents)
        {
            Assert.Equal(position, e.Start);
            Assert.True(e.Length > 0, $"empty extent at {e.Start}");
            position += e.Length;
        }
        Assert.Equal(size, position);
    }

    [Fact]
    public async Task Writes_through_the_API_set_exactly_the_bits_QEMU_would_for_bitmaps_qemu_img_added()
    {
        await using var server = await ServerProcess.StartAsync();
        const string name = "qemu-made";
        long size = 100 * MiB + 3 * 512; // the last granule is partial
        string path = server.ImagePath(name);
        Qemu.CreateQcow2(path, size);
        Qemu.AddBitmap(path, "g64k");
        Qemu.AddBitmap(path, "g4k", granularity: 4096);
        Qemu.AddBitmap(path, "off", disabled: true);

        var listed = await server.Api.ListBitmapsAsync(name);
        Assert.Equal(["g64k", "g4k", "off"], listed.Select(b => b.Name));
        Assert.Equal([65536L, 4096, 65536], listed.Select(b => b.Granularity));
        Assert.Equal([true, true, false], listed.Select(b => b.Enabled));
        Assert.All(listed, b => Assert.True(b.Consistent));

        var models = new Dictionary<string, BitmapModel> { ["g64k"] = new(size, 64 * KiB), ["g4k"] = new(size, 4 * KiB) };
        var random = TestSeed.Create(output, 1501, "bitmap writes");
        for (int i = 0; i < 60; i++)
        {
            long length = random.Next(1, 300_000);
            long offset = random.NextInt64(0, size - length);
            if (i % 5 == 4) await server.Api.ZeroAsync(name, offset, length);
            else await server.Api.PutAsync(name, offset, Bytes(length, seed: i), flush: i % 7 == 0);
            foreach (var m in models.Values) m.Mark(offset, length);
        }
        // The disk's last byte: its granule is the partial one.
        await server.Api.PutAsync(name, size - 1, new byte[] { 0x5a });
        foreach (var m in models.Values) m.Mark(size - 1, 1);

        foreach (var (bitmap, model) in models)
        {
            var extents = await server.Api.GetDirtyExtentsAsync($"images/{name}/data/extents?context=dirty&bitmap={bitmap}");
            AssertCovers(extents, size);
            Assert.Equal(model.Ranges(), DirtyOf(extents));
        }
        Assert.DoesNotContain(await server.Api.GetDirtyExtentsAsync($"images/{name}/data/extents?context=dirty&bitmap=off"), e => e.Dirty);

        await server.Api.CloseAsync(name);
        var check = Qemu.Check(path);
        Assert.True(check.IsClean, check.ToString());
        foreach (var (bitmap, model) in models)
            Assert.Equal(model.Ranges(), Qemu.DirtyRanges(path, bitmap));
        Assert.Empty(Qemu.DirtyRanges(path, "off"));

        // And reopened by us: the stored bits come back.
        var again = await server.Api.GetDirtyExtentsAsync($"images/{name}/data/extents?context=dirty&bitmap=g4k");
        Assert.Equal(models["g4k"].Ranges(), DirtyOf(again));
    }

    [Fact]
    public async Task Bitmaps_added_through_the_API_are_QEMUs_to_list_check_and_merge_and_survive_a_restart()
    {
        using var store = new TempDirectory("e2e-bitmaps-store");
        const string name = "api-made";
        long size = 256 * MiB;
        var model = new BitmapModel(size, 128 * KiB);
        await using (var server = await ServerProcess.StartAsync(new ServerOptions { StoreDirectory = store.Path }))
        {
            await server.Api.CreateAsync(name, size);
            await server.Api.PutAsync(name, 0, Bytes(1 * MiB, seed: 1)); // before the bitmap: not marked
            var added = await server.Api.AddBitmapAsync(name, "backup-1", granularity: 128 * KiB);
            Assert.Equal(new BitmapDto("backup-1", 128 * KiB, true, true, 0), added);
            await server.Api.AddBitmapAsync(name, "paused", enabled: false);
            // While open, QEMU sees them in use (the directory naming them is durable before the answer).
            var inUse = Qemu.Info(server.ImagePath(name)).GetProperty("format-specific").GetProperty("data").GetProperty("bitmaps");
            Assert.All(inUse.EnumerateArray(), b => Assert.Contains("in-use", b.GetProperty("flags").EnumerateArray().Select(f => f.GetString())));

            foreach (var (offset, length) in new[] { (5 * MiB + 17, 4096L), (100 * MiB, 3 * MiB), (size - 512, 512L) })
            {
                await server.Api.PutAsync(name, offset, Bytes(length, seed: (int)length));
                model.Mark(offset, length);
            }
            var listed = await server.Api.ListBitmapsAsync(name);
            Assert.Equal(model.Ranges().Sum(r => r.Length), listed.Single(b => b.Name == "backup-1").DirtyBytes);
            Assert.Equal(0, listed.Single(b => b.Name == "paused").DirtyBytes);
            Assert.Equal(0, await server.StopAsync()); // a clean stop stores the bitmaps
        }

        string path = Path.Combine(store.Path, name + ".qcow2");
        var check = Qemu.Check(path);
        Assert.True(check.IsClean, check.ToString());
        var bitmaps = Qemu.Info(path).GetProperty("format-specific").GetProperty("data").GetProperty("bitmaps").EnumerateArray().ToList();
        Assert.Equal(["backup-1", "paused"], bitmaps.Select(b => b.GetProperty("name").GetString()));
        Assert.Equal([131072, 65536], bitmaps.Select(b => b.GetProperty("granularity").GetInt64()));
        Assert.Equal(["auto"], bitmaps[0].GetProperty("flags").EnumerateArray().Select(f => f.GetString()));
        Assert.Empty(bitmaps[1].GetProperty("flags").EnumerateArray());
        Assert.Equal(model.Ranges(), Qemu.DirtyRanges(path, "backup-1"));

        // qemu-img bitmap --merge works on what we wrote: "paused" gets backup-1's bits.
        ProcessRunner.RunChecked(Qemu.QemuImg, ["bitmap", "--merge", "backup-1", "-f", "qcow2", path, "paused"]);
        Assert.Equal(model.Ranges(), Qemu.DirtyRanges(path, "paused"));
        Assert.True(Qemu.Check(path).IsClean);

        await using (var server = await ServerProcess.StartAsync(new ServerOptions { StoreDirectory = store.Path }))
        {
            var listed = await server.Api.ListBitmapsAsync(name);
            Assert.Equal(["backup-1", "paused"], listed.Select(b => b.Name));
            Assert.All(listed, b => Assert.True(b.Consistent));
            Assert.Equal(model.Ranges(), DirtyOf(await server.Api.GetDirtyExtentsAsync($"images/{name}/bitmaps/paused/data/extents?context=dirty")));

            // Clear, disable, remove: each as asked, and the image stays clean for QEMU.
            Assert.Equal(0, (await server.Api.PatchBitmapAsync(name, "backup-1", new { op = "clear" })).DirtyBytes);
            Assert.False((await server.Api.PatchBitmapAsync(name, "backup-1", new { enabled = false })).Enabled);
            await server.Api.PutAsync(name, 50 * MiB, Bytes(4096, seed: 9));
            Assert.Equal(0, (await server.Api.ListBitmapsAsync(name)).Single(b => b.Name == "backup-1").DirtyBytes);
            await server.Api.DeleteBitmapAsync(name, "paused");
            await server.Api.CloseAsync(name);
        }
        check = Qemu.Check(path);
        Assert.True(check.IsClean, check.ToString());
        var left = Qemu.Info(path).GetProperty("format-specific").GetProperty("data").GetProperty("bitmaps").EnumerateArray().ToList();
        Assert.Equal(["backup-1"], left.Select(b => b.GetProperty("name").GetString()));
        Assert.Empty(left[0].GetProperty("flags").EnumerateArray()); // disabled, consistent
        Assert.Empty(Qemu.DirtyRanges(path, "backup-1"));
    }

    [Fact]
    public async Task A_kill_9_leaves_the_bitmaps_inconsistent_never_wrong()
    {
        using var store = new TempDirectory("e2e-bitmaps-kill");
        const string name = "killed";
        string path = Path.Combine(store.Path, name + ".qcow2");
        await using (var server = await ServerProcess.StartAsync(new ServerOptions { StoreDirectory = store.Path }))
        {
            await server.Api.CreateAsync(name, 64 * MiB);
            await server.Api.AddBitmapAsync(name, "b1");
            await server.Api.PutAsync(name, 3 * MiB, Bytes(70_000, seed: 3));
            server.Kill();
        }
        var flags = Qemu.Info(path).GetProperty("format-specific").GetProperty("data").GetProperty("bitmaps")[0].GetProperty("flags");
        Assert.Contains("in-use", flags.EnumerateArray().Select(f => f.GetString()));
        var nbd = ProcessRunner.Run("nbdinfo", ["--map=qemu:dirty-bitmap:b1", "--", "[", "qemu-nbd", "-r", "-B", "b1", "-f", "qcow2", path, "]"]);
        Assert.NotEqual(0, nbd.ExitCode); // QEMU refuses to export an inconsistent bitmap
        Assert.Contains("inconsistent", nbd.Stderr);
        Assert.Equal(0, Qemu.Check(path).Corruptions);

        await using (var server = await ServerProcess.StartAsync(new ServerOptions { StoreDirectory = store.Path }))
        {
            var listed = await server.Api.ListBitmapsAsync(name);
            Assert.False(listed.Single().Consistent);
            using var response = await server.Client.GetAsync($"images/{name}/data/extents?context=dirty&bitmap=b1");
            Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
            Assert.Contains("inconsistent", await response.Content.ReadAsStringAsync());
            // Writes go on; the inconsistent bitmap stays so until it is deleted, and a new one starts clean.
            await server.Api.PutAsync(name, 0, Bytes(4096, seed: 4));
            await server.Api.DeleteBitmapAsync(name, "b1");
            await server.Api.AddBitmapAsync(name, "b2");
            await server.Api.CloseAsync(name);
        }
        var check = Qemu.Check(path);
        Assert.True(check.IsClean, check.ToString()); // the leaks of the kill were reclaimed at the reopen
        Assert.Empty(Qemu.DirtyRanges(path, "b2"));
    }

    [Fact]
    public async Task The_backup_cycle_with_checkpoints_copies_only_dirty_data_while_writers_go_on()
    {
        await using var server = await ServerProcess.StartAsync();
        const string name = "backed-up";
        long size = 512 * MiB;
        await server.Api.CreateAsync(name, size);
        var random = TestSeed.Create(output, 1503, "backup cycle");
        for (int i = 0; i < 16; i++)
            await server.Api.PutAsync(name, random.NextInt64(0, size / 4096 - 64) * 4096, Bytes(256 * KiB, seed: 100 + i), flush: false);

        // Full backup: checkpoint B1, copy the checkpoint's disk.
        await server.Api.AddBitmapAsync(name, "B1", checkpoint: true);
        string copy = _scratch.File("copy.raw");
        await DownloadAllAsync(server, $"images/{name}/snapshots/B1/data", copy);

        // Writers run while the incremental backup is taken: every write after B1's checkpoint is in
        // the all model; those done before B2 was asked for must be in B1's dirty extents.
        using var stop = new CancellationTokenSource();
        long written = 0;
        var all = new BitmapModel(size, 64 * KiB);
        var beforeB2 = new BitmapModel(size, 64 * KiB);
        bool b2Asked = false;
        var writers = Enumerable.Range(0, 3).Select(w => Task.Run(async () =>
        {
            var r = new Random(1503 + w);
            while (!stop.IsCancellationRequested)
            {
                long length = r.Next(1, 64) * 1024;
                long offset = r.NextInt64(0, size - length);
                lock (all) all.Mark(offset, length);
                await server.Api.PutAsync(name, offset, Bytes(length, seed: r.Next()), flush: false);
                lock (all) if (!Volatile.Read(ref b2Asked)) beforeB2.Mark(offset, length);
                Interlocked.Add(ref written, length);
                await Task.Delay(10);
            }
        })).ToList();
        await Task.Delay(1500);
        Volatile.Write(ref b2Asked, true);
        await server.Api.AddBitmapAsync(name, "B2", checkpoint: true);
        await Task.Delay(500);

        // An imageio-style client on the bitmap's transfer URL: OPTIONS, extents?context=dirty, ranged GETs.
        string transfer = $"images/{name}/bitmaps/B1/data";
        using (var options = new HttpRequestMessage(HttpMethod.Options, transfer + "?snapshot=B2"))
        using (var answer = await server.Client.SendAsync(options))
        {
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            Assert.Contains("extents", JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement.GetProperty("features").EnumerateArray().Select(f => f.GetString()));
        }
        var extents = await server.Api.GetDirtyExtentsAsync(transfer + "/extents?context=dirty&snapshot=B2");
        AssertCovers(extents, size);
        long copied = 0;
        await using (var file = new FileStream(copy, FileMode.Open, FileAccess.Write))
        {
            foreach (var e in extents.Where(e => e.Dirty))
            {
                byte[] bytes = e.Zero ? new byte[e.Length] : await GetRangeAsync(server, transfer + "?snapshot=B2", e.Start, e.Length);
                file.Position = e.Start;
                await file.WriteAsync(bytes);
                if (!e.Zero) copied += e.Length;
            }
        }
        stop.Cancel();
        await Task.WhenAll(writers);
        output.WriteLine($"copied {copied} bytes of a {size}-byte disk; writers wrote {written} bytes");
        var dirty = DirtyOf(extents);
        long dirtyBytes = dirty.Sum(r => r.Length);
        Assert.All(beforeB2.Ranges(), r => Assert.Contains(dirty, d => d.Offset <= r.Offset && r.Offset + r.Length <= d.Offset + d.Length));
        Assert.True(dirtyBytes <= all.Ranges().Sum(r => r.Length), $"{dirtyBytes} dirty bytes, more than the writes touched");
        Assert.True(copied > 0 && copied <= dirtyBytes);
        Assert.True(copied < size / 8, $"copied {copied} bytes: not incremental");

        // The copy is the checkpoint B2, byte for byte; the transfer URL's checksum (imageio's) says so too.
        string b2 = _scratch.File("b2.raw");
        Qemu.ConvertToRaw(server.ImagePath(name), b2, snapshotName: "B2");
        var compare = Qemu.Compare(copy, b2, "-f", "raw", "-F", "raw");
        Assert.True(compare.Identical, compare.ToString());
        using (var sum = await server.Client.GetAsync(transfer + "/checksum?snapshot=B2"))
        {
            Assert.Equal(HttpStatusCode.OK, sum.StatusCode);
            string checksum = JsonDocument.Parse(await sum.Content.ReadAsStringAsync()).RootElement.GetProperty("checksum").GetString()!;
            Assert.Equal(ChecksumTests.Expected(copy, "blake2b", 4 * 1024 * 1024), checksum);
        }

        // The same extents through a read ticket for B1 at checkpoint B2 (what an imageio client is handed).
        var ticket = await server.Api.CreateTicketAsync(name, "read", bitmap: "B1", snapshot: "B2");
        var viaTicket = await server.Api.GetDirtyExtentsAsync(ticket.Url.TrimStart('/') + "/extents?context=dirty");
        Assert.Equal(await server.Api.GetDirtyExtentsAsync(transfer + "/extents?context=dirty&snapshot=B2"), viaTicket); // the writers have stopped
        Assert.Equal(await GetRangeAsync(server, transfer + "?snapshot=B2", 0, 1 * MiB), await GetRangeAsync(server, ticket.Url.TrimStart('/'), 0, 1 * MiB));
        using (var viaTicketSum = await server.Client.GetAsync(ticket.Url.TrimStart('/') + "/checksum"))
        using (var direct = await server.Client.GetAsync(transfer + "/checksum?snapshot=B2"))
            Assert.Equal(await direct.Content.ReadAsStringAsync(), await viaTicketSum.Content.ReadAsStringAsync());
        using (var put = new HttpRequestMessage(HttpMethod.Put, ticket.Url.TrimStart('/')) { Content = new ByteArrayContent(new byte[512]) })
        using (var refused = await server.Client.SendAsync(put))
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);

        // The same extents through the image's transfer URL with bitmap= (the disk's zero flags now, the same dirty bits).
        var viaQuery = await server.Api.GetDirtyExtentsAsync($"images/{name}/data/extents?context=dirty&bitmap=B1");
        AssertCovers(viaQuery, size);

        // The cycle's end: the checkpoint snapshots and B1 go; B2 tracks from its checkpoint on.
        using (var deleted = await server.Client.DeleteAsync($"images/{name}/snapshots/B1")) Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        using (var deleted = await server.Client.DeleteAsync($"images/{name}/snapshots/B2")) Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        await server.Api.DeleteBitmapAsync(name, "B1");
        Assert.Equal(["B2"], (await server.Api.ListBitmapsAsync(name)).Select(b => b.Name));
        await server.Api.CloseAsync(name);
        var check = Qemu.Check(server.ImagePath(name));
        Assert.True(check.IsClean, check.ToString());
    }

    [Fact]
    public async Task Resize_carries_the_bitmaps_to_the_new_size_and_revert_makes_them_all_dirty()
    {
        await using var server = await ServerProcess.StartAsync();
        const string name = "resized";
        string path = server.ImagePath(name);
        await server.Api.CreateAsync(name, 64 * MiB);
        await server.Api.AddBitmapAsync(name, "b");
        var model = new BitmapModel(64 * MiB, 64 * KiB);
        foreach (var (offset, length) in new[] { (1 * MiB, 4096L), (20 * MiB + 100, 200_000L), (64 * MiB - 10, 10L) })
        {
            await server.Api.PutAsync(name, offset, Bytes(length, seed: (int)length));
            model.Mark(offset, length);
        }

        // Grown: the bits kept, the new part clean (as QEMU grows a bitmap).
        using (var grow = await server.Client.PatchAsJsonAsync($"images/{name}", new { size = "200M" }))
            Assert.Equal(HttpStatusCode.OK, grow.StatusCode);
        await server.Api.CloseAsync(name);
        var check = Qemu.Check(path);
        Assert.True(check.IsClean, check.ToString());
        Assert.Equal(model.Ranges(), Qemu.DirtyRanges(path, "b"));
        await server.Api.PutAsync(name, 150 * MiB, Bytes(4096, seed: 5));
        var grownModel = new BitmapModel(200 * MiB, 64 * KiB);
        foreach (var r in model.Ranges()) grownModel.Mark(r.Offset, r.Length);
        grownModel.Mark(150 * MiB, 4096);
        Assert.Equal(grownModel.Ranges(), DirtyOf(await server.Api.GetDirtyExtentsAsync($"images/{name}/data/extents?context=dirty&bitmap=b")));

        // Shrunk below the written data at 150 MiB is refused; to 100 MiB (zeroed past it first) the bits past the end go.
        await server.Api.ZeroAsync(name, 100 * MiB, 100 * MiB, flush: true);
        using (var shrink = await server.Client.PatchAsJsonAsync($"images/{name}", new { size = "100M" }))
            Assert.Equal(HttpStatusCode.OK, shrink.StatusCode);
        await server.Api.CloseAsync(name);
        Assert.True(Qemu.Check(path).IsClean, Qemu.Check(path).ToString());
        Assert.Equal(model.Ranges(), Qemu.DirtyRanges(path, "b"));

        // A revert may change any block: every bit set, for the snapshot's size.
        using (var snap = await server.Client.PostAsJsonAsync($"images/{name}/snapshots", new { name = "s" })) Assert.Equal(HttpStatusCode.Created, snap.StatusCode);
        using (var grow = await server.Client.PatchAsJsonAsync($"images/{name}", new { size = "120M" })) Assert.Equal(HttpStatusCode.OK, grow.StatusCode);
        using (var revert = await server.Client.PostAsync($"images/{name}/snapshots/s/revert", null)) Assert.Equal(HttpStatusCode.OK, revert.StatusCode);
        await server.Api.CloseAsync(name);
        Assert.True(Qemu.Check(path).IsClean, Qemu.Check(path).ToString());
        Assert.Equal([(0L, 100 * MiB)], Qemu.DirtyRanges(path, "b"));
        Assert.Equal(100 * MiB, (await server.Api.ListBitmapsAsync(name)).Single().DirtyBytes);
    }

    [Fact]
    public async Task A_bitmap_too_large_for_the_memory_budget_is_refused_clearly_and_its_image_stays_readable()
    {
        await using var server = await ServerProcess.StartAsync(new ServerOptions
        {
            Environment = new Dictionary<string, string> { ["Storage__MetadataCacheBytesPerImage"] = (16 * MiB).ToString() },
        });
        const string name = "huge";
        long size = 2L << 40; // 2 TiB: 64 MiB of bits at 4 KiB, 4 MiB at 64 KiB
        await server.Api.CreateAsync(name, size);
        using (var refused = await server.Client.PostAsJsonAsync($"images/{name}/bitmaps", new { name = "fine", granularity = 4096 }))
        {
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            Assert.Contains("Storage:MetadataCacheBytesPerImage", await refused.Content.ReadAsStringAsync());
        }
        Assert.Equal(64 * KiB, (await server.Api.AddBitmapAsync(name, "coarse")).Granularity);
        await server.Api.CloseAsync(name);

        // One QEMU made, too large to keep here: the image is read, writes are refused (422) and QEMU's bitmap stays valid.
        string path = server.ImagePath(name);
        Qemu.AddBitmap(path, "qemu-fine", granularity: 4096);
        Assert.Equal(new byte[4096], await server.Api.GetRangeAsync(name, 1 * MiB, 4096));
        using (var put = new HttpRequestMessage(HttpMethod.Put, $"images/{name}/data") { Content = new ByteArrayContent(new byte[512]) })
        {
            put.Content.Headers.ContentRange = new ContentRangeHeaderValue(0, 511);
            using var refused = await server.Client.SendAsync(put);
            Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
            Assert.Contains("bitmaps need", await refused.Content.ReadAsStringAsync());
        }
        await server.Api.CloseAsync(name);
        Assert.True(Qemu.Check(path).IsClean);
        var flags = Qemu.Info(path).GetProperty("format-specific").GetProperty("data").GetProperty("bitmaps").EnumerateArray()
            .Select(b => b.GetProperty("flags").EnumerateArray().Select(f => f.GetString()).ToList()).ToList();
        Assert.All(flags, f => Assert.DoesNotContain("in-use", f));
    }

    [Fact]
    public async Task Bad_bitmap_requests_get_clear_problems_and_the_image_stays_served()
    {
        await using var server = await ServerProcess.StartAsync();
        Qemu.CreateQcow2(server.ImagePath("old"), 16 * MiB, compat: "0.10");
        await server.Api.CreateAsync("img", 16 * MiB);
        await server.Api.AddBitmapAsync("img", "taken");

        async Task ExpectAsync(HttpResponseMessage response, HttpStatusCode status, string detail)
        {
            using (response)
            {
                string body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == status, $"{(int)response.StatusCode} {body}");
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                Assert.Contains(detail, body);
            }
        }
        await ExpectAsync(await server.Client.PostAsJsonAsync("images/old/bitmaps", new { name = "b" }), HttpStatusCode.Conflict, "compat=1.1");
        await ExpectAsync(await server.Client.PostAsJsonAsync("images/img/bitmaps", new { name = "taken" }), HttpStatusCode.Conflict, "already has a bitmap");
        await ExpectAsync(await server.Client.PostAsJsonAsync("images/img/bitmaps", new { name = "a/b" }), HttpStatusCode.BadRequest, "'/'");
        await ExpectAsync(await server.Client.PostAsJsonAsync("images/img/bitmaps", new { name = new string('x', 1024) }), HttpStatusCode.BadRequest, "1023");
        await ExpectAsync(await server.Client.PostAsJsonAsync("images/img/bitmaps", new { name = "g", granularity = 3000 }), HttpStatusCode.BadRequest, "power of two");
        await ExpectAsync(await server.Client.PostAsJsonAsync("images/img/bitmaps", new { name = "g", granularity = 4L << 20 }), HttpStatusCode.BadRequest, "2 MiB");
        await ExpectAsync(await server.Client.PostAsJsonAsync("images/img/bitmaps", new { name = "g", enabled = "yes" }), HttpStatusCode.BadRequest, "enabled");
        await ExpectAsync(await server.Client.PostAsJsonAsync("images/img/bitmaps", new { name = "g", colour = 1 }), HttpStatusCode.BadRequest, "colour");
        await ExpectAsync(await server.Client.DeleteAsync("images/img/bitmaps/missing"), HttpStatusCode.NotFound, "no bitmap named 'missing'");
        await ExpectAsync(await server.Client.PatchAsJsonAsync("images/img/bitmaps/taken", new { op = "merge" }), HttpStatusCode.BadRequest, "clear");
        await ExpectAsync(await server.Client.PatchAsJsonAsync("images/img/bitmaps/taken", new { }), HttpStatusCode.BadRequest, "nothing to change");
        await ExpectAsync(await server.Client.GetAsync("images/img/data/extents?context=dirty&bitmap=missing"), HttpStatusCode.NotFound, "missing");
        await ExpectAsync(await server.Client.GetAsync("images/img/data/extents?context=dirty"), HttpStatusCode.NotFound, "bitmap=NAME");
        await ExpectAsync(await server.Client.GetAsync("images/img/bitmaps/taken/data/extents?context=dirty&snapshot=nope"), HttpStatusCode.NotFound, "nope");
        await ExpectAsync(await server.Client.GetAsync("images/img/bitmaps/taken/data/extents?context=other"), HttpStatusCode.BadRequest, "context");
        await ExpectAsync(await server.Client.PostAsJsonAsync("images/img/tickets", new { scope = "write", bitmap = "taken" }), HttpStatusCode.BadRequest, "read");
        await ExpectAsync(await server.Client.PostAsJsonAsync("images/img/tickets", new { scope = "read", bitmap = "missing" }), HttpStatusCode.NotFound, "missing");

        // A name with a space and non-ASCII letters: one path segment, escaped.
        var odd = await server.Api.AddBitmapAsync("img", "nightly backup é");
        Assert.Equal("nightly backup é", odd.Name);
        Assert.Equal(0, (await server.Api.GetDirtyExtentsAsync($"images/img/bitmaps/{Uri.EscapeDataString(odd.Name)}/data/extents?context=dirty")).Count(e => e.Dirty));
        Assert.Equal(new byte[512], await server.Api.GetRangeAsync("img", 0, 512));
        await server.Api.CloseAsync("img");
        Assert.True(Qemu.Check(server.ImagePath("img")).IsClean);
    }

    [Fact]
    public async Task An_in_use_bitmap_claiming_a_gigabyte_table_is_refused_without_reading_it_and_other_images_are_served()
    {
        await using var server = await ServerProcess.StartAsync();
        string path = server.ImagePath("claims");
        Qemu.CreateQcow2(path, 64 * MiB);
        Qemu.AddBitmap(path, "b");
        // The first directory entry: in use (QEMU does not size-check those) with a table of 2^27 - 1 entries (1 GiB).
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            var header = new byte[4096];
            file.ReadExactly(header);
            int at = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(100)); // header_length
            long directory = -1;
            while (System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(at)) is var type and not 0)
            {
                int length = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(at + 4));
                if (type == 0x23852875) directory = (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(at + 8 + 16));
                at += 8 + (length + 7) / 8 * 8;
            }
            Assert.True(directory > 0, "no bitmaps extension found");
            var patch = new byte[8];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(patch, 0x07FF_FFFF);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(patch.AsSpan(4), 3); // in_use | auto
            file.Position = directory + 8;
            file.Write(patch);
        }
        await server.Api.CreateAsync("neighbour", 1 * MiB);

        using (var response = await server.Client.GetAsync("images/claims/bitmaps"))
        {
            string body = await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
            Assert.Contains("bitmap_table_size", body); // QEMU's limit on one table; the sum of all is checked against the file and the budget too
        }
        Assert.Equal(new byte[4096], await server.Api.GetRangeAsync("neighbour", 0, 4096));
        Assert.True(server.PeakRssBytes() < 600L * 1024 * 1024, $"peak RSS {server.PeakRssBytes() >> 20} MiB: the claimed table was read");
    }

    private static byte[] Bytes(long length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static async Task<byte[]> GetRangeAsync(ServerProcess server, string url, long offset, long length)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Range = new RangeHeaderValue(offset, offset + length - 1);
        using var response = await server.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(length, bytes.Length);
        return bytes;
    }

    private static async Task DownloadAllAsync(ServerProcess server, string url, string destination)
    {
        using var response = await server.Client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var file = File.Create(destination);
        await response.Content.CopyToAsync(file);
    }

    public void Dispose() => _scratch.Dispose();
}
