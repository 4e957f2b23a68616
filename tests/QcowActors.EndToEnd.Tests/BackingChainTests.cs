using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Backing chains served as QEMU resolves them, QEMU as the oracle: chains made by qemu-img read as
/// qemu-img convert reads them, writes and zeroing land in the top only, overlays made through the
/// API are QEMU's to rebase and commit, and a backing name that leads outside the store is refused
/// without opening anything.
/// </summary>
public sealed class BackingChainTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>
{
    private const int MiB = 1024 * 1024;
    private const long DiskSize = 24L * MiB;
    private ServerProcess Server => fixture.Server;
    private string Store => Server.StoreDirectory;

    public static TheoryData<string, string, string> Chains => new()
    {
        // base kind, middle options, top options
        { "raw", "cluster_size=65536", "cluster_size=65536" },
        { "qcow2", "cluster_size=65536", "extended_l2=on,cluster_size=131072" },
        { "qcow2-compressed", "compat=0.10,cluster_size=65536", "cluster_size=32768" },
        { "raw", "extended_l2=on,cluster_size=65536", "compat=0.10,cluster_size=65536" },
    };

    /// <summary>Base ← middle ← top, each written by qemu-io where the level above leaves clusters unallocated.</summary>
    private string MakeChain(string prefix, string baseKind, string middleOptions, string topOptions)
    {
        string baseFile = baseKind == "raw" ? $"{prefix}-base.raw" : $"{prefix}-base.qcow2";
        string basePath = Path.Combine(Store, baseFile);
        string baseFormat = baseKind == "raw" ? "raw" : "qcow2";
        var pattern = new List<string>();
        for (int k = 0; k < 24; k++) pattern.Add($"write -P 0x{0x10 + k:x2} {k * MiB} {MiB - 4096}");
        if (baseKind == "raw")
        {
            File.WriteAllBytes(basePath, []);
            ProcessRunner.RunChecked(Qemu.QemuImg, ["resize", "-q", "-f", "raw", basePath, DiskSize.ToString()]);
            ProcessRunner.RunChecked(Qemu.QemuIo, ["-f", "raw", .. pattern.SelectMany(c => new[] { "-c", c }), basePath]);
        }
        else
        {
            Qemu.Create(basePath, DiskSize);
            Qemu.IoCommands(basePath, pattern);
            if (baseKind == "qcow2-compressed")
            {
                var compressed = Path.Combine(Store, $"{prefix}-tmp.qcow2");
                ProcessRunner.RunChecked(Qemu.QemuImg, ["convert", "-c", "-f", "qcow2", "-O", "qcow2", basePath, compressed]);
                File.Move(compressed, basePath, overwrite: true);
            }
        }
        string middle = Path.Combine(Store, $"{prefix}-mid.qcow2");
        Qemu.Create(middle, DiskSize, "-o", middleOptions, "-b", baseFile, "-F", baseFormat);
        // The middle holds every third MiB (shifted), a zeroed range over base data, and a few small writes.
        var mid = new List<string>();
        for (int k = 1; k < 24; k += 3) mid.Add($"write -P 0x{0x40 + k:x2} {k * MiB + 8192} {MiB / 2}");
        mid.Add($"write -z {5 * MiB + 4096} {3 * MiB / 2}");
        mid.Add($"write -P 0x7e {20 * MiB + 513} 3000");
        Qemu.IoCommands(middle, mid);
        string top = Path.Combine(Store, $"{prefix}-top.qcow2");
        Qemu.Create(top, DiskSize, "-o", topOptions, "-b", $"{prefix}-mid.qcow2", "-F", "qcow2");
        var upper = new List<string>();
        for (int k = 2; k < 24; k += 3) upper.Add($"write -P 0x{0x80 + k:x2} {k * MiB + 100_000} {MiB / 3}");
        upper.Add($"write -z {11 * MiB} {MiB + 12288}");
        upper.Add($"write -P 0x9a {1 * MiB + 4096} 5000");
        Qemu.IoCommands(top, upper);
        return top;
    }

    /// <summary>By sha256sum: a .NET open takes a shared flock, which an image the server holds refuses.</summary>
    private static string Sha256(string path) => ProcessRunner.RunChecked("sha256sum", [path]).Stdout.Split(' ')[0];

    [Theory]
    [MemberData(nameof(Chains))]
    public async Task A_depth_3_chain_reads_as_qemu_converts_it_and_takes_writes_and_zeroing_in_the_top_only(string baseKind, string middle, string top)
    {
        string prefix = $"c{Math.Abs((baseKind + middle + top).GetHashCode()) % 100000}";
        string topPath = MakeChain(prefix, baseKind, middle, top);
        string name = $"{prefix}-top";
        using var scratch = new TempDirectory("chain");
        string expected = scratch.File("expected.raw");
        ProcessRunner.RunChecked(Qemu.QemuImg, ["convert", "-U", "-f", "qcow2", "-O", "raw", topPath, expected]);
        var below = Directory.EnumerateFiles(Store, prefix + "-*").Where(p => p != topPath).ToDictionary(p => p, Sha256);
        Assert.Equal(2, below.Count);

        using var model = DiskModel.FromRawFile(expected, scratch.Path);
        await DiskAssert.ServedDiskMatchesAsync(Server.Api, name, model);
        Assert.Equal(File.ReadAllBytes(expected), await Server.Api.GetAllAsync(name));

        // Extents: every zero extent reads as zeros, the base's data under unallocated clusters is
        // data, and byte for byte they say what qemu-img map says of the chain (zero; hole = no data).
        var extents = await Server.Api.GetExtentsAsync(name);
        Assert.Equal(DiskSize, extents.Sum(e => e.Length));
        foreach (var e in extents.Where(e => e.Zero))
            Assert.True(model.Read(e.Start, (int)e.Length).All(b => b == 0), $"extent {e} says zero");
        Assert.Contains(extents, e => !e.Zero && e.Start <= 3 * MiB + 4096 && e.Start + e.Length > 3 * MiB + 4096);
        foreach (var m in Qemu.Map(topPath))
            foreach (var e in extents.Where(e => e.Start < m.Start + m.Length && m.Start < e.Start + e.Length))
                Assert.True(e.Zero == m.Zero && e.Hole == !m.Data, $"extent {e} vs qemu-img map {m}");

        var rng = TestSeed.Create(output, 1212, $"writes into {name}");
        var ops = RandomWorkload.Writes(rng, DiskSize, 120, 65536, 300_000);
        await InteropWriteTests.ApplyAsync(Server.Api, name, model, ops, rng, flushEvery: 40);
        for (int z = 0; z < 12; z++)
        {
            long offset = rng.NextInt64(0, DiskSize - 1);
            long size = Math.Min(rng.NextInt64(1, 3 * MiB), DiskSize - offset);
            await Server.Api.ZeroAsync(name, offset, size);
            model.Zero(offset, size);
        }
        await Server.Api.FlushAsync(name);
        await DiskAssert.ServedDiskMatchesAsync(Server.Api, name, model);
        DiskAssert.CheckIsClean(topPath);
        DiskAssert.FileMatchesModel(topPath, model, scratch);
        foreach (var (path, hash) in below) Assert.True(hash == Sha256(path), $"{Path.GetFileName(path)} changed");
    }

    private async Task<HttpResponseMessage> CreateAsync(object body) => await Server.Client.PostAsJsonAsync("images", body);

    [Fact]
    public async Task Overlays_made_through_the_api_are_qemus_to_inspect_rebase_and_commit()
    {
        await Server.Api.CreateAsync("api-base", 8L * MiB);
        var baseBytes = RandomWorkload.Data(new Random(7), 8 * MiB);
        await Server.Api.PutAsync("api-base", 0, baseBytes);
        using (var created = await CreateAsync(new { name = "api-top", backing = "api-base" }))
            Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var info = await Server.Api.GetInfoAsync("api-top");
        Assert.Equal(8L * MiB, info.VirtualSize); // the size defaults to the backing's
        Assert.Equal("api-base.qcow2", info.Backing);

        var topData = RandomWorkload.Data(new Random(8), 100_000);
        await Server.Api.PutAsync("api-top", 1_000_000, topData);
        await Server.Api.ZeroAsync("api-top", 4 * MiB, MiB, flush: true);
        var expected = (byte[])baseBytes.Clone();
        topData.CopyTo(expected, 1_000_000);
        Array.Clear(expected, 4 * MiB, MiB);
        Assert.Equal(expected, await Server.Api.GetAllAsync("api-top"));

        // Writing the base now would change what the overlay reads: 409 naming the overlay.
        using (var put = new HttpRequestMessage(HttpMethod.Put, Server.DataUrl("api-base")) { Content = new ByteArrayContent([1]) })
        {
            put.Content.Headers.ContentRange = new System.Net.Http.Headers.ContentRangeHeaderValue(0, 0);
            using var refused = await Server.Client.SendAsync(put);
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            Assert.Contains("api-top", await refused.Content.ReadAsStringAsync());
        }
        using (var refused = await Server.Client.DeleteAsync("images/api-base"))
        {
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            Assert.Contains("api-top", await refused.Content.ReadAsStringAsync());
        }
        using (var refused = await Server.Client.PatchAsync("images/api-base", JsonContent.Create(new { size = 16 * MiB })))
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);

        string top = Server.ImagePath("api-top"), basePath = Server.ImagePath("api-base");
        foreach (var image in new[] { "api-top", "api-base" })
            using (var close = await Server.Client.PostAsync($"images/{image}/close", null))
                Assert.Equal(HttpStatusCode.NoContent, close.StatusCode);

        // QEMU sees the chain the header records (name and format), without -U: nothing is held any more.
        var chain = ProcessRunner.RunChecked(Qemu.QemuImg, ["info", "--backing-chain", "--output=json", top]);
        using (var doc = JsonDocument.Parse(chain.Stdout))
        {
            var levels = doc.RootElement.EnumerateArray().ToList();
            Assert.Equal(2, levels.Count);
            Assert.Equal("api-base.qcow2", levels[0].GetProperty("backing-filename").GetString());
            Assert.Equal("qcow2", levels[0].GetProperty("backing-filename-format").GetString());
        }
        Assert.True(ProcessRunner.Run(Qemu.QemuImg, ["check", top]).ExitCode == 0);

        // Rebase onto a copy (safe mode: QEMU copies what differs), then commit into the copy.
        string copy = Path.Combine(Store, "api-copy.qcow2");
        File.Copy(basePath, copy);
        ProcessRunner.RunChecked(Qemu.QemuImg, ["rebase", "-f", "qcow2", "-b", "api-copy.qcow2", "-F", "qcow2", top]);
        Assert.Equal(expected, await Server.Api.GetAllAsync("api-top"));
        using (var close = await Server.Client.PostAsync("images/api-top/close", null))
            Assert.Equal(HttpStatusCode.NoContent, close.StatusCode);
        ProcessRunner.RunChecked(Qemu.QemuImg, ["commit", "-f", "qcow2", top]);
        Assert.Equal(expected, await Server.Api.GetAllAsync("api-copy"));
        Assert.Equal(baseBytes, await Server.Api.GetAllAsync("api-base")); // the old base is no longer under it
    }

    [Fact]
    public async Task A_raw_image_of_the_store_is_listed_read_and_used_as_a_backing_image()
    {
        var bytes = RandomWorkload.Data(new Random(9), 3 * MiB + 512);
        File.WriteAllBytes(Path.Combine(Store, "plain.raw"), bytes);
        // A hole in the middle of the file: the raw image's extents show it, as qemu-img map does.
        using (var f = new FileStream(Path.Combine(Store, "plain.raw"), FileMode.Open, FileAccess.Write))
            f.SetLength(bytes.Length);
        ProcessRunner.RunChecked("fallocate", ["--punch-hole", "--offset", (1 * MiB).ToString(), "--length", MiB.ToString(), Path.Combine(Store, "plain.raw")]);
        Array.Clear(bytes, MiB, MiB);
        var rawExtents = await Server.Api.GetExtentsAsync("plain");
        Assert.Contains(new DiskExtentDto(MiB, MiB, true, true), rawExtents);
        Assert.Equal(bytes.Length, rawExtents.Sum(e => e.Length));
        var listed = (await Server.Api.ListAsync()).Single(i => i.Name == "plain");
        Assert.Equal("raw", listed.Format);
        Assert.Equal(bytes.Length, listed.VirtualSize);
        Assert.Equal(bytes[1000..5000], await Server.Api.GetRangeAsync("plain", 1000, 4000));
        using (var created = await CreateAsync(new { name = "on-raw", backing = "plain" }))
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        await Server.Api.PutAsync("on-raw", 65536 + 100, new byte[] { 1, 2, 3 });
        var expected = (byte[])bytes.Clone();
        new byte[] { 1, 2, 3 }.CopyTo(expected, 65536 + 100);
        Assert.Equal(expected, await Server.Api.GetAllAsync("on-raw"));
        Assert.Equal("raw", (await Server.Api.GetInfoAsync("on-raw")).BackingFormat);
        using var write = new HttpRequestMessage(HttpMethod.Put, Server.DataUrl("plain")) { Content = new ByteArrayContent([1]) };
        write.Content.Headers.ContentRange = new System.Net.Http.Headers.ContentRangeHeaderValue(0, 0);
        using var refused = await Server.Client.SendAsync(write);
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        DiskAssert.CheckIsClean(Server.ImagePath("on-raw"));
    }

    public static TheoryData<string, string> HostileNames => new()
    {
        { "/etc/passwd", "outside the store" },
        { "../outside.qcow2", "outside the store" },
        { "link-out.raw", "symbolic link" },
        { "cycle-b.qcow2", "cycle" },
        { "deep-0.qcow2", "deep" },
        { "noformat.qcow2", "no backing format" },
        { "missing.qcow2", "does not exist" },
    };

    [Theory]
    [MemberData(nameof(HostileNames))]
    public async Task A_backing_name_that_leads_outside_the_store_or_nowhere_is_refused_and_nothing_is_opened(string backing, string reason)
    {
        string name = "hostile-" + Math.Abs(backing.GetHashCode() % 100000);
        string path = Server.ImagePath(name);
        string format = backing.EndsWith(".raw") || backing == "/etc/passwd" ? "raw" : "qcow2";
        using var outside = new TempDirectory("outside");
        string outsideFile = outside.File("secret.raw");
        File.WriteAllBytes(outsideFile, new byte[65536]);
        switch (backing)
        {
            case "link-out.raw":
                if (!File.Exists(Path.Combine(Store, backing))) File.CreateSymbolicLink(Path.Combine(Store, backing), outsideFile);
                break;
            case "cycle-b.qcow2":
                Qemu.Create(Path.Combine(Store, "cycle-a.qcow2"), MiB, "-u", "-b", "cycle-b.qcow2", "-F", "qcow2");
                Qemu.Create(Path.Combine(Store, "cycle-b.qcow2"), MiB, "-u", "-b", "cycle-a.qcow2", "-F", "qcow2");
                break;
            case "deep-0.qcow2":
                // 17 backing images beneath the image: one more than the bound.
                Qemu.Create(Path.Combine(Store, "deep-16.qcow2"), MiB);
                for (int k = 15; k >= 0; k--)
                    Qemu.Create(Path.Combine(Store, $"deep-{k}.qcow2"), MiB, "-u", "-b", $"deep-{k + 1}.qcow2", "-F", "qcow2");
                break;
            case "noformat.qcow2":
                Qemu.Create(Path.Combine(Store, "noformat.qcow2"), MiB);
                break;
        }
        Qemu.Create(path, MiB, "-u", "-b", backing, "-F", format);
        if (backing == "noformat.qcow2") DropBackingFormat(path);
        string before = Sha256(path);

        using var get = await Server.Client.GetAsync(Server.DataUrl(name));
        string problem = await get.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.UnprocessableEntity, get.StatusCode);
        Assert.Contains(reason, problem);
        Assert.Contains("backing file", problem);
        Assert.Equal(before, Sha256(path)); // no repair, no header write
        foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{Server.Pid}/fd"))
        {
            string? target = new FileInfo(fd).LinkTarget;
            Assert.False(target is not null && (target == "/etc/passwd" || target.StartsWith(outside.Path) || target.Contains("cycle-") || target.Contains("deep-")),
                $"the server holds {target} open");
        }
        // Other images keep being served.
        await Server.Api.CreateAsync(name + "-ok", MiB);
        await Server.Api.PutAsync(name + "-ok", 0, new byte[] { 5 });
    }

    /// <summary>Turns the backing-format extension into an unknown one (kept and ignored): the header then records no format.</summary>
    private static void DropBackingFormat(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var head = new byte[4096];
        f.ReadExactly(head);
        int at = head.AsSpan().IndexOf(new byte[] { 0xE2, 0x79, 0x2A, 0xCA });
        Assert.True(at >= 72, "qemu-img wrote a backing-format extension");
        f.Position = at;
        f.Write([0x1E, 0x57, 0x00, 0x01]);
    }
}
