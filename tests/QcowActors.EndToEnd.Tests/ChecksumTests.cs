using System.Net;
using System.Text.Json;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// GET …/data/checksum against ovirt-imageio's construction, computed here by Python's hashlib
/// (another implementation of BLAKE2 and the SHA family) over the disk qemu-img converts to raw.
/// </summary>
public sealed class ChecksumTests(ServerFixture fixture) : IClassFixture<ServerFixture>, IDisposable
{
    private const int MiB = 1024 * 1024;
    private readonly TempDirectory _scratch = new("e2e-checksum");

    /// <summary>hex(H(H(b0) ‖ H(b1) ‖ …)) of a raw file, by Python (BLAKE2 with 32-byte digests).</summary>
    internal static string Expected(string rawPath, string algorithm, int blockSize)
    {
        string script = $$"""
            import hashlib, sys
            def h(): return hashlib.new('{{algorithm}}', digest_size=32) if '{{algorithm}}'.startswith('blake2') else hashlib.new('{{algorithm}}')
            outer = h()
            with open(sys.argv[1], 'rb') as f:
                while True:
                    block = f.read({{blockSize}})
                    if not block: break
                    inner = h(); inner.update(block); outer.update(inner.digest())
            print(outer.hexdigest())
            """;
        return ProcessRunner.RunChecked("python3", ["-c", script, rawPath]).Stdout.Trim();
    }

    private async Task<JsonElement> ChecksumAsync(string name, string query = "")
    {
        using var response = await fixture.Server.Client.GetAsync($"images/{name}/data/checksum{query}");
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    [Theory]
    [InlineData(4, "f426bb2c", "b2d6")]
    [InlineData(3, "42f3b767", "")]
    [InlineData(5, "0da53b58", "")]
    [InlineData(0, "0e5751c0", "")]
    public async Task Imageio_test_vectors_data_then_zeros(int mebibytes, string prefix, string suffix)
    {
        string name = $"vector-{mebibytes}";
        if (mebibytes > 0)
        {
            await fixture.Server.Api.CreateAsync(name, (long)mebibytes * MiB);
            await fixture.Server.Api.PutAsync(name, 0, "data"u8.ToArray());
        }
        else
        {
            ProcessRunner.RunChecked(Qemu.QemuImg, ["create", "-q", "-f", "qcow2", fixture.Server.ImagePath(name), "0"]); // the API makes no empty disk
        }
        string raw = _scratch.File($"{name}.raw");
        Qemu.ConvertToRaw(fixture.Server.ImagePath(name), raw);

        var result = await ChecksumAsync(name);

        string checksum = result.GetProperty("checksum").GetString()!;
        Assert.Equal("blake2b", result.GetProperty("algorithm").GetString());
        Assert.Equal(4 * MiB, result.GetProperty("block_size").GetInt32());
        Assert.Equal(Expected(raw, "blake2b", 4 * MiB), checksum);
        Assert.StartsWith(prefix, checksum);
        Assert.EndsWith(suffix, checksum);
    }

    [Theory]
    [InlineData("blake2b", 65536)]
    [InlineData("blake2s", MiB)]
    [InlineData("sha256", 4 * MiB)]
    [InlineData("sha1", 16 * MiB)]
    public async Task A_disk_of_data_zeros_and_holes_sums_as_hashlib_sums_its_raw_copy(string algorithm, int blockSize)
    {
        string name = $"mixed-{algorithm}-{blockSize}";
        const long size = 40L * MiB + 12345 * 512;
        await fixture.Server.Api.CreateAsync(name, size);
        var rng = new Random(blockSize ^ algorithm.Length);
        for (int i = 0; i < 30; i++)
        {
            var data = new byte[rng.Next(1, 300_000)];
            rng.NextBytes(data);
            await fixture.Server.Api.PutAsync(name, rng.NextInt64(0, size - data.Length), data, flush: false);
        }
        await fixture.Server.Api.ZeroAsync(name, 8 * MiB, 3 * MiB);
        await fixture.Server.Api.FlushAsync(name);
        string raw = _scratch.File($"{name}.raw");
        Qemu.ConvertToRaw(fixture.Server.ImagePath(name), raw);

        var result = await ChecksumAsync(name, $"?algorithm={algorithm}&block_size={blockSize}");

        Assert.Equal(Expected(raw, algorithm, blockSize), result.GetProperty("checksum").GetString());
        Assert.Equal(blockSize, result.GetProperty("block_size").GetInt32());
    }

    [Theory]
    [InlineData("?block_size=4095", "block_size")]
    [InlineData("?block_size=0", "block_size")]
    [InlineData("?block_size=16781312", "block_size")]
    [InlineData("?block_size=-4096", "block_size")]
    [InlineData("?block_size=4k", "block_size")]
    [InlineData("?block_size=99999999999999999999999", "block_size")]
    [InlineData("?algorithm=crc32", "crc32")]
    public async Task Bad_parameters_are_400_problems(string query, string detailPart)
    {
        const string name = "checksum-bad";
        if (!File.Exists(fixture.Server.ImagePath(name))) await fixture.Server.Api.CreateAsync(name, MiB);
        using var response = await fixture.Server.Client.GetAsync($"images/{name}/data/checksum{query}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detailPart, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task The_algorithms_are_listed_and_options_names_the_feature()
    {
        using var response = await fixture.Server.Client.GetAsync("images/any/data/checksum/algorithms");
        var list = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("algorithms").EnumerateArray().Select(a => a.GetString()).ToList();
        Assert.Contains("blake2b", list);
        Assert.Contains("sha256", list);
        await fixture.Server.Api.CreateAsync("checksum-options", MiB);
        var features = (await fixture.Server.Api.OptionsAsync("checksum-options")).GetProperty("features").EnumerateArray().Select(f => f.GetString());
        Assert.Contains("checksum", features);
    }

    public void Dispose() => _scratch.Dispose();
}
