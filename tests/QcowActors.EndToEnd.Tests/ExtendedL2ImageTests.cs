using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Images with extended L2 entries (`extended_l2=on`: 32 subclusters per cluster, each allocated,
/// zero or unallocated on its own): read as QEMU reads them, and written as QEMU writes them, a
/// partial write touching only the subclusters it covers.
/// </summary>
public sealed class ExtendedL2ImageTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>, IDisposable
{
    private const int MiB = 1024 * 1024;

    private readonly TempDirectory _scratch = new("e2e-extended-l2");

    public void Dispose() => _scratch.Dispose();

    [Theory]
    [InlineData(65536)]
    [InlineData(2 * MiB)]
    public async Task An_extended_l2_image_reads_as_qemu_reads_it_and_takes_random_writes_cleanly(int clusterSize)
    {
        string name = $"ext-{clusterSize}";
        int sc = clusterSize / 32;
        long size = clusterSize >= MiB ? 96L * MiB : 24L * MiB;
        string path = fixture.Server.ImagePath(name);
        Qemu.Create(path, size, "-o", $"extended_l2=on,cluster_size={clusterSize}");
        var rng = TestSeed.Create(output, 4242 + clusterSize % 1000, name);
        // Subcluster-sized and unaligned writes by QEMU, and zeroed subclusters inside allocated clusters.
        var commands = new List<string>();
        for (int i = 0; i < 60; i++)
        {
            long at = rng.NextInt64(0, size / sc - 4) * sc + (i % 3 == 0 ? rng.Next(sc) : 0);
            int length = i % 4 == 0 ? sc : rng.Next(1, 3 * sc);
            commands.Add($"write -P 0x{0x20 + i % 200:x2} {at} {length}");
        }
        for (int i = 0; i < 10; i++) commands.Add($"write -z {rng.NextInt64(0, size / sc - 2) * sc} {sc}");
        Qemu.IoCommands(path, commands);
        Assert.True(Qemu.Check(path).IsClean);

        string reference = _scratch.File($"{name}-qemu.raw");
        Qemu.ConvertToRaw(path, reference);
        using var model = DiskModel.FromRawFile(reference);
        var api = fixture.Server.Api;
        await DiskAssert.ServedDiskMatchesAsync(api, name, model);

        var ops = RandomWorkload.Writes(rng, size, 200, clusterSize, maxLength: 3 * MiB);
        await InteropWriteTests.ApplyAsync(api, name, model, ops, rng, flushEvery: 30);
        await api.ZeroAsync(name, 5L * clusterSize + sc, 3L * clusterSize, flush: true);
        model.Write(5L * clusterSize + sc, new byte[3 * clusterSize]);
        await api.FlushAsync(name);
        await DiskAssert.ServedDiskMatchesAsync(api, name, model);
        DiskAssert.CheckIsClean(path);
        DiskAssert.FileMatchesModel(path, model, _scratch);
    }

    [Fact]
    public async Task Writes_into_clusters_shared_with_a_snapshot_copy_them_and_leave_the_snapshot_unchanged()
    {
        const string name = "ext-snap";
        const int cluster = 65536, sc = cluster / 32;
        const long size = 16L * MiB;
        string path = fixture.Server.ImagePath(name);
        Qemu.Create(path, size, "-o", $"extended_l2=on,cluster_size={cluster}");
        // Clusters with a few allocated and zero subclusters each, then a snapshot shares them all.
        Qemu.IoCommands(path, Enumerable.Range(0, 40).SelectMany(i => new[]
        {
            $"write -P 0x{0x40 + i:x2} {i * 5L * cluster / 2 + (i % 7) * sc} {sc * (1 + i % 3)}",
            $"write -z {i * 5L * cluster / 2 + 20 * sc} {sc}",
        }));
        Qemu.Snapshot(path, "s1");
        string before = _scratch.File($"{name}-before.raw");
        Qemu.ConvertToRaw(path, before);
        using var model = DiskModel.FromRawFile(before);

        var rng = TestSeed.Create(output, 9090, name);
        for (int pass = 0; pass < 2; pass++)
        {
            var ops = RandomWorkload.Writes(rng, size, 120, cluster, maxLength: 200 * 1024);
            await InteropWriteTests.ApplyAsync(fixture.Server.Api, name, model, ops, rng, flushEvery: 40);
        }
        await fixture.Server.Api.FlushAsync(name);

        string snapshot = _scratch.File($"{name}-s1.raw");
        Qemu.ConvertToRaw(path, snapshot, "s1");
        Assert.True(Qemu.Compare(before, snapshot, "-f", "raw", "-F", "raw").Identical, "snapshot s1 changed");
        DiskAssert.CheckIsClean(path);
        DiskAssert.FileMatchesModel(path, model, _scratch);
    }

    [Fact]
    public async Task A_compressed_image_with_extended_l2_entries_reads_and_takes_writes()
    {
        const string name = "ext-compressed";
        const int cluster = 65536;
        string source = _scratch.File("ext-compressed.raw");
        var rng = TestSeed.Create(output, 5151, name);
        CompressedImageTests.WriteMixedDisk(source, 8L * MiB, cluster, rng);
        string path = fixture.Server.ImagePath(name);
        ProcessRunner.RunChecked(Qemu.QemuImg, ["convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "extended_l2=on,compression_type=zstd", source, path]);
        Assert.Contains(Qemu.Map(path), e => e.Data && e.Offset is null);
        string reference = _scratch.File("ext-compressed-qemu.raw");
        Qemu.ConvertToRaw(path, reference);
        using var model = DiskModel.FromRawFile(reference);
        var api = fixture.Server.Api;
        await DiskAssert.ServedDiskMatchesAsync(api, name, model);
        var ops = RandomWorkload.Writes(rng, 8L * MiB, 120, cluster, maxLength: MiB);
        await InteropWriteTests.ApplyAsync(api, name, model, ops, rng, flushEvery: 30);
        await api.FlushAsync(name);
        DiskAssert.CheckIsClean(path);
        DiskAssert.FileMatchesModel(path, model, _scratch);
    }

    [Fact]
    public async Task An_entry_whose_bitmap_marks_a_subcluster_both_allocated_and_zero_is_refused_clearly()
    {
        const string name = "ext-bad-bitmap";
        const int cluster = 65536;
        string path = fixture.Server.ImagePath(name);
        Qemu.Create(path, 4L * MiB, "-o", $"extended_l2=on,cluster_size={cluster}");
        Qemu.Io(path, "-c", $"write -P 0x11 {cluster} {cluster}");
        // Cluster 1's bitmap: every subcluster allocated, and subcluster 0 zero as well.
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            var word = new byte[8];
            file.Position = 40;
            file.ReadExactly(word);
            file.Position = (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(word);
            file.ReadExactly(word);
            long l2 = (long)(System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(word) & 0x00FF_FFFF_FFFF_FE00UL);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(word, 0x0000_0001_FFFF_FFFFUL);
            file.Position = l2 + 16 + 8;
            file.Write(word);
        }
        using var request = new HttpRequestMessage(HttpMethod.Get, fixture.Server.DataUrl(name));
        request.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(cluster, cluster + 4095);
        using var response = await fixture.Server.Client.SendAsync(request);
        Assert.Equal(422, (int)response.StatusCode);
        Assert.Contains("both allocated and zero", await response.Content.ReadAsStringAsync());
        Assert.Equal(new byte[4096], await fixture.Server.Api.GetRangeAsync(name, 2L * cluster, 4096)); // the rest still reads
    }

    [Theory]
    [InlineData("off")]
    [InlineData("metadata")]
    public async Task An_image_created_here_with_extended_l2_takes_writes_as_qemu_expects(string preallocation)
    {
        string name = $"ext-created-{preallocation}";
        const long size = 20L * MiB;
        using (var created = await fixture.Server.Client.PostAsync("images", new StringContent(
            $$"""{"name":"{{name}}","size":{{size}},"clusterSize":32768,"extendedL2":true,"preallocation":"{{preallocation}}"}""",
            System.Text.Encoding.UTF8, "application/json")))
            Assert.Equal(201, (int)created.StatusCode);
        string path = fixture.Server.ImagePath(name);
        using var model = DiskModel.Create(size, _scratch.Path);
        var rng = TestSeed.Create(output, 777, name);
        var ops = RandomWorkload.Writes(rng, size, 150, 32768, maxLength: MiB);
        await InteropWriteTests.ApplyAsync(fixture.Server.Api, name, model, ops, rng, flushEvery: 25);
        await fixture.Server.Api.FlushAsync(name);
        await DiskAssert.ServedDiskMatchesAsync(fixture.Server.Api, name, model);
        DiskAssert.CheckIsClean(path);
        DiskAssert.FileMatchesModel(path, model, _scratch);
    }

    [Fact]
    public async Task A_small_write_into_an_empty_cluster_allocates_only_its_subclusters()
    {
        const string name = "ext-small";
        const int cluster = 65536, sc = cluster / 32;
        string path = fixture.Server.ImagePath(name);
        Qemu.Create(path, 16L * MiB, "-o", $"extended_l2=on,cluster_size={cluster}");
        var api = fixture.Server.Api;
        // 100 bytes inside subcluster 5 of cluster 3, then 10 bytes across the edge of subclusters 9 and 10.
        await api.PutAsync(name, 3L * cluster + 5 * sc + 30, Enumerable.Repeat((byte)0xab, 100).ToArray());
        await api.PutAsync(name, 3L * cluster + 10 * sc - 4, Enumerable.Repeat((byte)0xcd, 10).ToArray());

        var data = Qemu.Map(path).Where(e => e.Data).Select(e => (e.Start, e.Length)).ToList();
        Assert.Equal([(3L * cluster + 5 * sc, (long)sc), (3L * cluster + 9 * sc, 2L * sc)], data);
        var back = await api.GetRangeAsync(name, 3L * cluster, cluster);
        Assert.Equal(110, back.Count(b => b != 0));
        DiskAssert.CheckIsClean(path);
    }
}
