using QcowActors.Actors.Image;
using QcowActors.Actors.Io;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.Actors.Tests;

/// <summary>Open examines refcounts only over the file: a block covering terabytes past its end costs nothing.</summary>
public sealed class OpenScanTests
{
    [Fact]
    public async Task Opening_a_2_MiB_cluster_1_bit_image_keeps_free_clusters_as_a_few_runs_below_the_end_of_the_file()
    {
        using var dir = new TempDirectory("qa-open-scan");
        string path = Path.Combine(dir.Path, "wide.qcow2");
        // One refcount block of 2 MiB at 1 bit counts 16,777,216 clusters (32 TiB of file); the file has a handful.
        Qemu.Create(path, "64G", "-o", "cluster_size=2M,refcount_bits=1");
        Qemu.Io(path, "-c", "write -P 0x5a 0 4M", "-c", "write -P 0x5b 40M 2M");
        long fileClusters = (new FileInfo(path).Length + (2 << 20) - 1) >> 21;

        var budget = new MetadataBudget(256L << 20, 256L << 20);
        var opened = await ImageOpener.OpenAsync(path, Path.Combine(dir.Path, ".wide.qcow2.open"), new DiskFileSystem(), budget,
            TimeSpan.FromSeconds(5), CancellationToken.None);
        try
        {
            Assert.Equal(fileClusters, opened.EndCluster);
            Assert.True(opened.Free.Count < fileClusters, $"{opened.Free.Count} free clusters in a file of {fileClusters}");
            Assert.True(opened.Free.Runs <= 2, $"{opened.Free.Runs} runs");
            Assert.Null(opened.Violation);
            Assert.Equal(opened.ReservedBytes, budget.UsedBytes);
            Assert.True(opened.ReservedBytes <= 256L << 20);
        }
        finally
        {
            budget.Release(opened.ReservedBytes);
            await opened.File.DisposeAsync();
        }
    }
}
