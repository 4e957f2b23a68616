using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Images made and filled by qemu-img/qemu-io, read through HTTP: every byte must equal
/// `qemu-img convert -O raw` of the same file.
/// </summary>
public sealed class InteropReadTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>, IDisposable
{
    private const long DiskSize = 64L * 1024 * 1024;

    private readonly TempDirectory _scratch = new("e2e-read");

    public static TheoryData<string> Layouts => new()
    {
        "c512", "c4k", "c64k", "c2m", "r1", "r16", "r64", "v2", "zero-clusters",
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public async Task Disk_made_by_qemu_reads_back_byte_identical_to_qemu_img_convert(string layout)
    {
        var name = $"read-{layout}";
        var path = fixture.Server.ImagePath(name);
        var (clusterSize, refcountBits, compat) = layout switch
        {
            "c512" => (512, (int?)null, (string?)null),
            "c4k" => (4096, null, null),
            "c64k" => (65536, null, null),
            "c2m" => (2 * 1024 * 1024, null, null),
            "r1" => (65536, 1, "1.1"),
            "r16" => (65536, 16, "1.1"),
            "r64" => (65536, 64, "1.1"),
            "v2" => (65536, null, "0.10"),
            "zero-clusters" => (65536, null, "1.1"),
            _ => throw new ArgumentOutOfRangeException(nameof(layout)),
        };
        Qemu.CreateQcow2(path, DiskSize, clusterSize, refcountBits, compat);
        var rng = TestSeed.Create(output, 1101 + layout.Length * 31 + layout[^1], layout);
        Qemu.IoCommands(path, ScatteredWrites(rng, clusterSize, withZeroWrites: layout == "zero-clusters"));

        var rawPath = _scratch.File($"{name}.raw");
        Qemu.ConvertToRaw(path, rawPath);
        var expected = await File.ReadAllBytesAsync(rawPath);
        Assert.Equal(DiskSize, expected.LongLength);
        Assert.Contains(expected, b => b != 0); // the writes landed: an all-zero answer cannot pass

        var whole = await fixture.Server.Api.GetAllAsync(name);
        Assert.True(DiskModel.FirstDifference(expected, whole) < 0,
            $"whole-disk GET of {name}: {(whole.Length != expected.Length ? $"{whole.Length} bytes instead of {expected.Length}" : $"first difference at {DiskModel.FirstDifference(expected, whole)}")}");

        foreach (var (offset, length) in Ranges(rng, clusterSize))
        {
            var part = await fixture.Server.Api.GetRangeAsync(name, offset, length);
            var diff = DiskModel.FirstDifference(expected.AsSpan((int)offset, (int)length), part);
            Assert.True(diff < 0, $"Range GET {offset}+{length} of {name}: first difference at disk offset {offset + diff}");
        }
    }

    /// <summary>qemu-io commands writing patterns at scattered, unaligned offsets (and zero writes over some of them).</summary>
    private static List<string> ScatteredWrites(Random rng, int clusterSize, bool withZeroWrites)
    {
        var commands = new List<string>();
        for (var i = 0; i < 40; i++)
        {
            var length = rng.Next(1, 256 * 1024);
            var offset = rng.NextInt64(0, DiskSize - length);
            commands.Add($"write -P 0x{1 + rng.Next(255):x2} {offset} {length}");
        }
        // Data right at both ends of the disk and across the first L2-table boundary.
        var l2Coverage = (long)clusterSize * (clusterSize / 8);
        commands.Add($"write -P 0x5a 0 {clusterSize + 3}");
        commands.Add($"write -P 0xa5 {DiskSize - 777} 777");
        if (l2Coverage < DiskSize)
        {
            commands.Add($"write -P 0x3c {l2Coverage - 1000} 2000");
        }
        if (withZeroWrites)
        {
            // Over data: whole clusters become zero clusters (kept allocated, or unmapped with -u),
            // partial clusters are zeroed in place.
            commands.Add($"write -P 0x77 {4 * clusterSize} {16 * clusterSize}");
            commands.Add($"write -z {5 * clusterSize} {2 * clusterSize}");
            commands.Add($"write -z -u {8 * clusterSize} {3 * clusterSize}");
            commands.Add($"write -z {12 * clusterSize + 100} {clusterSize}");
            commands.Add($"write -z 0 {clusterSize}");
        }
        return commands;
    }

    private static List<(long Offset, long Length)> Ranges(Random rng, int clusterSize)
    {
        var ranges = new List<(long, long)>
        {
            (0, 1),
            (DiskSize - 1, 1),
            (clusterSize - 10, 20),
            (DiskSize - 3 * clusterSize - 5, 3 * clusterSize + 5),
        };
        for (var i = 0; i < 8; i++)
        {
            var length = rng.NextInt64(1, 3 * 1024 * 1024);
            ranges.Add((rng.NextInt64(0, DiskSize - length + 1), length));
        }
        return ranges;
    }

    public void Dispose() => _scratch.Dispose();
}
