using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Random PUTs through HTTP, mirrored in a model; afterwards QEMU must find the image clean
/// (`qemu-img check` exit 0) and identical to the model (`qemu-img compare`).
/// </summary>
public sealed class InteropWriteTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>, IDisposable
{
    private const int MiB = 1024 * 1024;

    private readonly TempDirectory _scratch = new("e2e-write");

    [Fact]
    public async Task Thousand_random_puts_into_a_posted_image_match_the_model_and_check_clean()
    {
        const string name = "write-posted";
        const long size = 64L * MiB;
        const int clusterSize = 4096; // one L2 table maps 2 MiB: the writes cross L2 tables often
        var api = fixture.Server.Api;
        var info = await api.CreateAsync(name, size, clusterSize);
        Assert.Equal(size, info.VirtualSize);
        Assert.Equal(clusterSize, info.ClusterSize);

        var rng = TestSeed.Create(output, 20240611, name);
        using var model = DiskModel.Create(size);
        var ops = RandomWorkload.Writes(rng, size, 1200, clusterSize, maxLength: 3 * MiB);
        await ApplyAsync(api, name, model, ops, rng, flushEvery: 100);
        await api.FlushAsync(name);

        // The server keeps running: QEMU reads the file next to it (-U), after the flush.
        DiskAssert.CheckIsClean(fixture.Server.ImagePath(name));
        DiskAssert.FileMatchesModel(fixture.Server.ImagePath(name), model, _scratch);
        await DiskAssert.ServedDiskMatchesAsync(api, name, model);
    }

    public static TheoryData<string> QemuLayouts => new() { "c512-r64", "c512-r1", "c2m", "v2" };

    [Theory]
    [MemberData(nameof(QemuLayouts))]
    public async Task Random_puts_into_a_qemu_created_image_match_the_model_and_check_clean(string layout)
    {
        var c = layout switch
        {
            // 512 B clusters, refcount_bits 64: the first refcount table covers 2 MiB of file.
            "c512-r64" => new Layout(64L * MiB, 512, 64, null, Writes: 400, MinLength: 1, MaxLength: 3 * MiB, GrowsRefcountTable: true, StopGracefully: false),
            // refcount_bits 1: the first table covers 128 MiB of file, so the writes carry ~150 MiB of distinct data.
            "c512-r1" => new Layout(256L * MiB, 512, 1, null, Writes: 300, MinLength: 512 * 1024, MaxLength: 2 * MiB, GrowsRefcountTable: true, StopGracefully: true),
            "c2m" => new Layout(256L * MiB, 2 * MiB, null, null, Writes: 300, MinLength: 1, MaxLength: 3 * MiB, GrowsRefcountTable: false, StopGracefully: false),
            "v2" => new Layout(64L * MiB, 65536, null, "0.10", Writes: 300, MinLength: 1, MaxLength: 3 * MiB, GrowsRefcountTable: false, StopGracefully: true),
            _ => throw new ArgumentOutOfRangeException(nameof(layout)),
        };
        var name = $"write-{layout}";
        var rng = TestSeed.Create(output, 4242 + layout.Length * 7 + layout[^1], name);
        using var model = DiskModel.Create(c.Size, _scratch.Path);
        var ops = RandomWorkload.Writes(rng, c.Size, c.Writes, c.ClusterSize, c.MaxLength, c.MinLength);

        if (!c.StopGracefully)
        {
            var path = fixture.Server.ImagePath(name);
            Qemu.CreateQcow2(path, c.Size, c.ClusterSize, c.RefcountBits, c.Compat);
            var initial = QcowHeaderPeek.Read(path);
            await ApplyAsync(fixture.Server.Api, name, model, ops, rng, flushEvery: 50);
            await fixture.Server.Api.FlushAsync(name);
            AssertGrewPastTheFirstRefcountTable(c, path, initial);
            DiskAssert.CheckIsClean(path);
            DiskAssert.FileMatchesModel(path, model, _scratch);
            return;
        }

        // A server of its own, stopped with SIGTERM: the file must be complete and clean without a PATCH flush
        // of the last writes, and a new server must serve the same bytes.
        using var store = new TempDirectory("e2e-store");
        var imagePath = Path.Combine(store.Path, name + ".qcow2");
        Qemu.CreateQcow2(imagePath, c.Size, c.ClusterSize, c.RefcountBits, c.Compat);
        var header = QcowHeaderPeek.Read(imagePath);
        await using (var server = await ServerProcess.StartAsync(new ServerOptions { StoreDirectory = store.Path }))
        {
            await ApplyAsync(server.Api, name, model, ops, rng, flushEvery: 50);
            var exitCode = await server.StopAsync();
            output.WriteLine($"server exit code after SIGTERM: {exitCode}");
            Assert.True(exitCode is 0 or 143, $"exit code {exitCode} after SIGTERM. Output:{Environment.NewLine}{server.Output}");
        }
        AssertGrewPastTheFirstRefcountTable(c, imagePath, header);
        DiskAssert.CheckIsClean(imagePath);
        DiskAssert.FileMatchesModel(imagePath, model, _scratch);
        Assert.False(Qemu.Info(imagePath).GetProperty("dirty-flag").GetBoolean(), "dirty flag left set after a graceful stop");

        await using var restarted = await ServerProcess.StartAsync(new ServerOptions { StoreDirectory = store.Path });
        await DiskAssert.ServedDiskMatchesAsync(restarted.Api, name, model);
    }

    /// <summary>
    /// PUTs every op with random bytes (?flush=n except every <paramref name="flushEvery"/>-th), keeping the
    /// model in step; every 25th op is read back at once.
    /// </summary>
    internal static async Task ApplyAsync(ImageApi api, string name, DiskModel model, IReadOnlyList<WriteOp> ops, Random rng, int flushEvery)
    {
        for (var i = 0; i < ops.Count; i++)
        {
            var op = ops[i];
            var data = RandomWorkload.Data(rng, op.Length);
            try
            {
                await api.PutAsync(name, op.Offset, data, flush: i % flushEvery == flushEvery - 1);
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"PUT #{i} {op} of {name} failed: {e.Message}", e);
            }
            model.Write(op.Offset, data);
            if (i % 25 == 0)
            {
                var back = await api.GetRangeAsync(name, op.Offset, op.Length);
                Assert.True(model.Describe(op.Offset, back) is null, $"read after PUT #{i} {op}: {model.Describe(op.Offset, back)}");
            }
        }
    }

    private void AssertGrewPastTheFirstRefcountTable(Layout c, string path, QcowHeaderPeek initial)
    {
        if (!c.GrowsRefcountTable)
        {
            return;
        }
        var fileLength = new FileInfo(path).Length;
        output.WriteLine($"{path}: {fileLength} bytes of file; the initial refcount table covered {initial.RefcountTableCoverageBytes}");
        // A precondition of the test itself: the workload must force the refcount table to grow.
        Assert.True(fileLength > initial.RefcountTableCoverageBytes,
            $"the workload did not outgrow the initial refcount table ({fileLength} <= {initial.RefcountTableCoverageBytes} bytes)");
    }

    public void Dispose() => _scratch.Dispose();

    private sealed record Layout(long Size, int ClusterSize, int? RefcountBits, string? Compat, int Writes, int MinLength, int MaxLength, bool GrowsRefcountTable, bool StopGracefully);
}
