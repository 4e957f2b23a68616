using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>Writes into shared clusters (internal snapshots) and into zero clusters must copy, not overwrite.</summary>
public sealed class CopyOnWriteTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>, IDisposable
{
    private const int MiB = 1024 * 1024;

    private readonly TempDirectory _scratch = new("e2e-cow");

    [Theory]
    [InlineData("1.1")]
    [InlineData("0.10")]
    public async Task Puts_after_a_qemu_snapshot_leave_the_snapshot_unchanged(string compat)
    {
        var name = $"cow-snap-{compat.Replace('.', '-')}";
        const long size = 32L * MiB;
        var path = fixture.Server.ImagePath(name);
        Qemu.CreateQcow2(path, size, 65536, null, compat);
        Qemu.IoCommands(path, Enumerable.Range(0, 24).Select(i => $"write -P 0x{0x10 + i:x2} {i * 1300 * 1024 + 333} {200 * 1024 + i}"));
        Qemu.Snapshot(path, "s1");
        var before = _scratch.File($"{name}-before.raw");
        Qemu.ConvertToRaw(path, before);
        using var model = DiskModel.FromRawFile(before);
        await DiskAssert.ServedDiskMatchesAsync(fixture.Server.Api, name, model); // read as qemu-img reads it

        var rng = TestSeed.Create(output, 777, name);
        // Twice over the same area: the first pass copies the shared clusters, the second writes the copies in place.
        for (var pass = 0; pass < 2; pass++)
        {
            var ops = RandomWorkload.Writes(rng, size, 120, 65536, maxLength: 3 * MiB);
            await InteropWriteTests.ApplyAsync(fixture.Server.Api, name, model, ops, rng, flushEvery: 40);
        }
        await fixture.Server.Api.FlushAsync(name);

        var snapshot = _scratch.File($"{name}-s1.raw");
        Qemu.ConvertToRaw(path, snapshot, "s1");
        var unchanged = Qemu.Compare(before, snapshot, "-f", "raw", "-F", "raw");
        Assert.True(unchanged.Identical, $"snapshot s1 changed: {unchanged}");
        DiskAssert.CheckIsClean(path);
        DiskAssert.FileMatchesModel(path, model, _scratch);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task One_byte_put_into_a_zero_cluster_leaves_the_rest_of_the_cluster_zero(bool unmapped)
    {
        var name = unmapped ? "cow-zero-unmapped" : "cow-zero";
        const int cluster = 65536;
        const long size = 8L * MiB;
        var path = fixture.Server.ImagePath(name);
        Qemu.CreateQcow2(path, size, cluster, null, "1.1");
        // Data over clusters 0..15, then clusters 2..4 become zero clusters (allocated, or unmapped with -u).
        Qemu.Io(path, "-c", $"write -P 0xaa 0 {16 * cluster}", "-c", $"write -z {(unmapped ? "-u " : "")}{2 * cluster} {3 * cluster}");
        var zeroRange = Qemu.Map(path).Where(e => e.Zero && e.Start <= 2 * cluster && e.Start + e.Length >= 5 * cluster);
        Assert.NotEmpty(zeroRange); // qemu made the zero clusters the test is about

        var raw = _scratch.File($"{name}.raw");
        Qemu.ConvertToRaw(path, raw);
        using var model = DiskModel.FromRawFile(raw);
        var api = fixture.Server.Api;
        foreach (var (offset, value) in new[] { (2L * cluster + 1000, (byte)0x5c), (4L * cluster + cluster - 1, (byte)0xc5), (3L * cluster, (byte)0x01) })
        {
            await api.PutAsync(name, offset, new[] { value });
            model.Write(offset, [value]);
        }

        // Clusters 1..5: the written bytes, zeros around them, the 0xaa data on both sides.
        var span = await api.GetRangeAsync(name, cluster, 5 * cluster);
        Assert.True(model.Describe(cluster, span) is null, model.Describe(cluster, span));
        Assert.Equal(3 * cluster - 3, span.AsSpan(cluster, 3 * cluster).Count((byte)0));

        await api.FlushAsync(name);
        DiskAssert.CheckIsClean(path);
        DiskAssert.FileMatchesModel(path, model, _scratch);
    }

    public void Dispose() => _scratch.Dispose();
}
