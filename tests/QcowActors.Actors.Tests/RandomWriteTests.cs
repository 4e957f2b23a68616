using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Actors.Tests;

/// <summary>Random writes through the engine against a byte-array model; QEMU checks the result.</summary>
public sealed class RandomWriteTests(ITestOutputHelper output) : EngineTestBase
{
    public static TheoryData<string, string[]> Images => new()
    {
        { "c64k-r16", new[] { "-o", "cluster_size=65536" } },
        { "c512-r64", new[] { "-o", "cluster_size=512,refcount_bits=64" } },
        { "c512-r1", new[] { "-o", "cluster_size=512,refcount_bits=1" } },
        { "c4k-r16", new[] { "-o", "cluster_size=4096" } },
        { "c2m", new[] { "-o", "cluster_size=2097152" } },
        { "v2", new[] { "-o", "compat=0.10" } },
    };

    [Theory]
    [MemberData(nameof(Images))]
    public async Task Random_writes_match_the_model_and_pass_qemu_check(string name, string[] createOptions)
    {
        const long size = 64L << 20;
        Qemu("qemu-img", ["create", "-f", "qcow2", .. createOptions, ImagePath(name), size.ToString()]);
        int seed = name.GetHashCode(StringComparison.Ordinal) & 0xFFFF;
        output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        var model = new byte[size];
        for (int k = 0; k < 300; k++)
        {
            int len = rng.Next(1, k % 10 == 0 ? 3 << 20 : 70_000);
            long off = rng.NextInt64(0, size - len);
            var data = new byte[len];
            rng.NextBytes(data);
            await Service.WriteAsync(name, off, data, default);
            data.CopyTo(model, off);
            if (k % 50 == 0) await Service.FlushAsync(name, default);
        }
        await Service.FlushAsync(name, default);
        for (long off = 0; off < size; off += 8 << 20)
        {
            var back = await ReadAsync(name, off, 8 << 20);
            Assert.True(model.AsSpan((int)off, 8 << 20).SequenceEqual(back), $"mismatch in [{off}, +8MiB)");
        }
        var (exit, text) = QemuCheck(ImagePath(name));
        Assert.True(exit == 0, text);
        string raw = Path.Combine(StoreDirectory, name + ".raw");
        await File.WriteAllBytesAsync(raw, model);
        Qemu("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", ImagePath(name), raw);
    }
}
