using Akka.Actor;
using System.Diagnostics;
using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Actors.Tests;

/// <summary>Snapshot create/delete/revert and resize through the engine, with qemu-img as the oracle after each step.</summary>
public sealed class SnapshotMaintenanceTests(ITestOutputHelper output) : EngineTestBase
{
    private static string Run(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string text = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{tool} {string.Join(' ', args)}: {text}");
        return text;
    }

    private void AssertClean(string path)
    {
        var (exit, text) = QemuCheck(path);
        Assert.True(exit == 0, text);
    }

    private static byte[] Pattern(int length, byte seed)
    {
        var b = new byte[length];
        for (int i = 0; i < b.Length; i++) b[i] = (byte)(seed + i * 7);
        return b;
    }

    [Theory]
    [InlineData("512", "1.1")]
    [InlineData("65536", "1.1")]
    [InlineData("4096", "0.10")]
    [InlineData("65536", "1.1", ",extended_l2=on")]
    public async Task Snapshot_create_write_revert_delete_match_qemu(string clusterSize, string compat, string options = "")
    {
        const string name = "snap";
        string path = ImagePath(name);
        Run("qemu-img", "create", "-q", "-f", "qcow2", "-o", $"cluster_size={clusterSize},compat={compat}{options}", path, "4M");
        await Service.WriteAsync(name, 0, Pattern(300_000, 1), default);
        await Service.WriteAsync(name, 2_000_000, Pattern(70_000, 2), default);
        await Service.FlushAsync(name, default);

        var s1 = await Service.CreateSnapshotAsync(name, "first", default);
        Assert.Equal("1", s1.Id);
        AssertClean(path);
        var listed = JsonDocument.Parse(Run("qemu-img", "info", "--output=json", "-U", path)).RootElement.GetProperty("snapshots");
        Assert.Equal("first", listed[0].GetProperty("name").GetString());

        // Writes after the snapshot copy on write; the snapshot keeps its data.
        await Service.WriteAsync(name, 100, Pattern(5000, 9), default);
        await Service.FlushAsync(name, default);
        AssertClean(path);
        var after = await ReadAsync(name, 100, 5000);
        Assert.Equal(Pattern(5000, 9), after);

        string copy = Path.Combine(StoreDirectory, "copy.qcow2");
        var s2 = await Service.CreateSnapshotAsync(name, "second", default);
        Assert.Equal("2", s2.Id);
        AssertClean(path);

        var reverted = await Service.RevertSnapshotAsync(name, "first", default);
        AssertClean(path);
        Assert.Equal(Pattern(300_000, 1), await ReadAsync(name, 0, 300_000));
        await Store.Ask<QcowActors.Actors.Store.LocalImageReleased>(new QcowActors.Actors.Store.ReleaseLocalImage(name), TimeSpan.FromSeconds(10));
        File.Copy(path, copy, true);
        Run("qemu-img", "snapshot", "-a", "second", copy);
        Assert.Equal(Pattern(5000, 9), File.Exists(copy) ? await ReadRawAsync(copy, 100, 5000) : null);

        await Service.DeleteSnapshotAsync(name, "second", default);
        AssertClean(path);
        await Service.DeleteSnapshotAsync(name, "1", default);
        AssertClean(path);
        Assert.Equal(Pattern(300_000, 1), await ReadAsync(name, 0, 300_000));
        await Service.WriteAsync(name, 0, Pattern(1000, 5), default); // COPIED set again: in place
        await Service.FlushAsync(name, default);
        AssertClean(path);
        output.WriteLine(reverted.ToString());
    }

    [Fact]
    public async Task A_snapshot_of_a_compressed_image_counts_every_host_cluster_of_its_compressed_data()
    {
        const string name = "snapzip";
        string raw = Path.Combine(StoreDirectory, "snapzip.raw");
        var data = new byte[2 << 20];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(i / 512 % 5 == 0 ? i * 31 : i % 4);
        await File.WriteAllBytesAsync(raw, data);
        Run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", raw, ImagePath(name));
        await Service.CreateSnapshotAsync(name, "zipped", default);
        AssertClean(ImagePath(name));
        await Service.WriteAsync(name, 5000, Pattern(20_000, 3), default);
        await Service.FlushAsync(name, default);
        AssertClean(ImagePath(name));
        await using (var view = await Service.OpenSnapshotAsync(name, "zipped", default))
        {
            // The snapshot still reads the compressed clusters the write replaced in the active disk.
            await using var plan = await view.PlanReadAsync(0, data.Length, default);
            var pipe = new System.IO.Pipelines.Pipe(new System.IO.Pipelines.PipeOptions(pauseWriterThreshold: 0));
            await plan.CopyToAsync(pipe.Writer, default);
            await pipe.Writer.CompleteAsync();
            var result = await pipe.Reader.ReadAtLeastAsync(data.Length);
            Assert.True(System.Buffers.BuffersExtensions.ToArray(result.Buffer.Slice(0, data.Length)).AsSpan().SequenceEqual(data), "snapshot data differs");
            pipe.Reader.AdvanceTo(result.Buffer.End);
        }
        await Service.DeleteSnapshotAsync(name, "zipped", default);
        AssertClean(ImagePath(name));
        Pattern(20_000, 3).CopyTo(data, 5000);
        Assert.Equal(data, await ReadAsync(name, 0, data.Length));
    }

    private static async Task<byte[]> ReadRawAsync(string qcow, long offset, int length)
    {
        string raw = qcow + ".raw";
        Run("qemu-img", "convert", "-U", "-O", "raw", qcow, raw);
        await using var f = File.OpenRead(raw);
        f.Position = offset;
        var b = new byte[length];
        await f.ReadExactlyAsync(b);
        return b;
    }

    [Fact]
    public async Task Resize_grows_past_the_L1_cluster_and_shrinks_only_without_data_past_the_end()
    {
        const string name = "grow";
        string path = ImagePath(name);
        Run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", path, "1M");
        await Service.WriteAsync(name, 0, Pattern(4096, 3), default);
        await Service.FlushAsync(name, default);
        // 512 B clusters: an L2 table maps 32 KiB, one L1 cluster 64 tables = 2 MiB; 64 MiB needs 4 L1 clusters.
        var info = await Service.ResizeAsync(name, 64L << 20, default);
        Assert.Equal(64L << 20, info.VirtualSize);
        AssertClean(path);
        await Service.WriteAsync(name, (64L << 20) - 4096, Pattern(4096, 4), default);
        await Service.FlushAsync(name, default);
        Assert.Equal(Pattern(4096, 4), await ReadAsync(name, (64L << 20) - 4096, 4096));
        Assert.Equal(Pattern(4096, 3), await ReadAsync(name, 0, 4096));
        AssertClean(path);
        var e = await Assert.ThrowsAsync<QcowActors.Actors.Service.ImageException>(() => Service.ResizeAsync(name, 1L << 20, default));
        Assert.Equal(QcowActors.Actors.Service.ImageError.Conflict, e.Error);
        output.WriteLine(e.Message);
        await Service.ZeroAsync(name, (64L << 20) - 4096, 4096, default);
        await Service.FlushAsync(name, default);
        info = await Service.ResizeAsync(name, 1L << 20, default);
        Assert.Equal(1L << 20, info.VirtualSize);
        AssertClean(path);
        Assert.Equal(Pattern(4096, 3), await ReadAsync(name, 0, 4096));
        var qemu = JsonDocument.Parse(Run("qemu-img", "info", "--output=json", "-U", path)).RootElement;
        Assert.Equal(1L << 20, qemu.GetProperty("virtual-size").GetInt64());
    }
}
