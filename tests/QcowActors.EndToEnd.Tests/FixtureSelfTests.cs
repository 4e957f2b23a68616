using System.Buffers.Binary;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// The oracle and the models checked on their own (no server involved): if these are wrong, every
/// end-to-end verdict is worthless.
/// </summary>
public sealed class FixtureSelfTests : IDisposable
{
    private const int MiB = 1024 * 1024;

    private readonly TempDirectory _dir = new("e2e-self");

    [Fact]
    public void Qemu_check_tells_clean_from_leaked_and_corrupt_images()
    {
        var path = _dir.File("check.qcow2");
        Qemu.Create(path, "64M");
        Qemu.Io(path, "-c", "write -P 1 0 64k");
        var clean = Qemu.Check(path);
        Assert.True(clean.IsClean, clean.ToString());
        Assert.Equal((0L, 0L, 0L), (clean.Corruptions, clean.Leaks, clean.CheckErrors));

        // Count one more cluster past the end of the used ones: a leak (exit 3).
        var header = QcowHeaderPeek.Read(path);
        var fileClusters = new FileInfo(path).Length / header.ClusterSize;
        SetRefcount(path, header, fileClusters, 1);
        using (var f = File.OpenHandle(path, FileMode.Open, FileAccess.Write))
        {
            RandomAccess.SetLength(f, (fileClusters + 1) * header.ClusterSize);
        }
        var leaked = Qemu.Check(path);
        Assert.Equal(3, leaked.ExitCode);
        Assert.Equal(1, leaked.Leaks);
        Assert.False(leaked.IsClean);

        // Drop the count of the data cluster while the L2 table still points at it: a corruption (exit 2).
        var dataCluster = Qemu.Map(path).Single(e => e.Data).Offset!.Value / header.ClusterSize;
        SetRefcount(path, header, dataCluster, 0);
        var corrupt = Qemu.Check(path);
        Assert.Equal(2, corrupt.ExitCode);
        Assert.True(corrupt.Corruptions > 0, corrupt.ToString());
    }

    [Fact]
    public void Qemu_compare_tells_identical_from_different_and_snapshots_convert_to_their_own_content()
    {
        var path = _dir.File("snap.qcow2");
        Qemu.CreateQcow2(path, 4 * MiB, clusterSize: 4096);
        Qemu.Io(path, "-c", "write -P 0xab 1000 70000");
        Qemu.Snapshot(path, "s1");
        Qemu.Io(path, "-c", "write -P 0xcd 1000 10");

        var snapshot = _dir.File("s1.raw");
        Qemu.ConvertToRaw(path, snapshot, "s1");
        using var model = DiskModel.InMemory(4 * MiB);
        model.Write(1000, Enumerable.Repeat((byte)0xab, 70000).ToArray());
        Assert.True(Qemu.CompareWithRaw(path, model.ExportRaw(_dir.File("model.raw"))) is { Identical: false, ExitCode: 1 });
        Assert.Equal(model.ToArray(), File.ReadAllBytes(snapshot));

        model.Write(1000, Enumerable.Repeat((byte)0xcd, 10).ToArray());
        var same = Qemu.CompareWithRaw(path, model.ExportRaw(_dir.File("model2.raw")));
        Assert.True(same.Identical, same.ToString());
    }

    [Fact]
    public void Qemu_helpers_throw_with_the_tool_output_when_a_command_fails()
    {
        var path = _dir.File("small.qcow2");
        Qemu.Create(path, 1 * MiB);
        var io = Assert.Throws<InvalidOperationException>(() => Qemu.Io(path, "-c", "write -P 1 2M 512"));
        Assert.Contains("write failed", io.Message);
        var missing = Assert.Throws<InvalidOperationException>(() => Qemu.Check(_dir.File("missing.qcow2")));
        Assert.Contains("missing.qcow2", missing.Message);
        Assert.Equal(1 * MiB, Qemu.Info(path).GetProperty("virtual-size").GetInt64());
    }

    [Fact]
    public void Disk_model_in_memory_and_file_backed_agree_and_export_sparse_raw()
    {
        const long size = 3L * MiB + 5;
        using var memory = DiskModel.InMemory(size);
        using var file = DiskModel.FileBacked(size, _dir.File("model.raw"));
        var rng = new Random(5);
        foreach (var op in RandomWorkload.Writes(rng, size, 50, 4096, maxLength: MiB))
        {
            var data = RandomWorkload.Data(rng, op.Length);
            memory.Write(op.Offset, data);
            file.Write(op.Offset, data);
        }
        memory.Zero(100, 70000);
        file.Zero(100, 70000);
        Assert.Equal(memory.ToArray(), file.ToArray());
        Assert.Equal(memory.ToArray(), File.ReadAllBytes(file.ExportRaw(_dir.File("export.raw"))));
        Assert.Null(memory.Describe(size - 10, file.Read(size - 10, 10)));
        var wrong = file.Read(200_000, 64);
        wrong[17] ^= 1;
        Assert.Contains("disk offset 200017", memory.Describe(200_000, wrong));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.Write(size - 1, new byte[2]));
    }

    [Fact]
    public void Pattern_bytes_depend_only_on_seed_and_offset()
    {
        var whole = new byte[100_000];
        Pattern.Fill(7, 1_000_003, whole);
        var pieces = new byte[whole.Length];
        for (var at = 0; at < pieces.Length;)
        {
            var n = Math.Min(1 + at % 4099, pieces.Length - at);
            Pattern.Fill(7, 1_000_003 + at, pieces.AsSpan(at, n));
            at += n;
        }
        Assert.Equal(whole, pieces);
        var other = new byte[whole.Length];
        Pattern.Fill(8, 1_000_003, other);
        Assert.NotEqual(whole, other);
    }

    [Fact]
    public void Random_workload_stays_inside_the_disk_and_crosses_cluster_and_l2_boundaries()
    {
        const long size = 64L * MiB;
        const int cluster = 4096;
        var ops = RandomWorkload.Writes(new Random(1), size, 1000, cluster, maxLength: 3 * MiB);
        Assert.All(ops, op => Assert.True(op.Offset >= 0 && op.Length >= 1 && op.End <= size && op.Length <= 3 * MiB, op.ToString()));
        Assert.True(ops.Count(op => op.Offset / cluster != (op.End - 1) / cluster) > 300);
        const long l2 = (long)cluster * (cluster / 8);
        Assert.True(ops.Count(op => op.Offset / l2 != (op.End - 1) / l2) > 100);
        Assert.Contains(ops, op => op.Length == 1);
        Assert.Contains(ops, op => op.Length > 2 * MiB);
    }

    [Fact]
    public void Readme_walkthrough_is_one_sh_block_against_the_documented_address()
    {
        var script = ReadmeWalkthroughTests.ExtractWalkthrough(File.ReadAllText(RepositoryLayout.ReadmePath));
        Assert.Contains("http://127.0.0.1:8080/images", script);
        Assert.DoesNotContain("```", script);
        var syntax = ProcessRunner.Run("bash", ["-n", "-c", script]);
        Assert.True(syntax.ExitCode == 0, syntax.ToString());
    }

    [Fact]
    public void Server_build_is_located_for_the_configuration_of_the_tests()
    {
        Assert.True(File.Exists(Path.Combine(RepositoryLayout.Root, "QcowActors.sln")));
        Assert.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}{RepositoryLayout.BuildConfiguration}{Path.DirectorySeparatorChar}", AppContext.BaseDirectory);
        if (Environment.GetEnvironmentVariable(RepositoryLayout.ServerDllVariable) is null or "")
        {
            Assert.EndsWith(Path.Combine("src", "Api", "bin", RepositoryLayout.BuildConfiguration, "net10.0", "QcowActors.Api.dll"), RepositoryLayout.ServerDll);
        }
    }

    private static void SetRefcount(string path, QcowHeaderPeek header, long cluster, ushort count)
    {
        Assert.Equal(16, header.RefcountBits);
        using var f = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        Span<byte> entry = stackalloc byte[8];
        RandomAccess.Read(f, entry, header.RefcountTableOffset);
        var block = (long)BinaryPrimitives.ReadUInt64BigEndian(entry);
        Assert.True(cluster < header.ClusterSize / 2, "the cluster must be described by the first refcount block");
        BinaryPrimitives.WriteUInt16BigEndian(entry, count);
        RandomAccess.Write(f, entry[..2], block + cluster * 2);
    }

    public void Dispose() => _dir.Dispose();
}
