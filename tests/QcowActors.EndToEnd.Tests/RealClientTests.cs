using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>Stock clients — curl and QEMU's http block driver — read the virtual disk the server serves.</summary>
public sealed class RealClientTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>, IDisposable
{
    private const int MiB = 1024 * 1024;

    private readonly TempDirectory _scratch = new("e2e-clients");

    [Fact]
    public async Task Curl_range_requests_return_the_bytes_that_were_put()
    {
        const string name = "curl";
        const long size = 8L * MiB;
        var server = fixture.Server;
        await server.Api.CreateAsync(name, size);
        using var model = DiskModel.InMemory(size);
        var rng = TestSeed.Create(output, 9001, name);
        await InteropWriteTests.ApplyAsync(server.Api, name, model, RandomWorkload.Writes(rng, size, 40, 65536, maxLength: MiB), rng, flushEvery: 10);

        var url = server.DataUrl(name);
        foreach (var (first, last) in new (long, long)[] { (0, 0), (65535, 65536), (size - 1, size - 1), (1000, 3 * MiB + 17), (5 * MiB, 6 * MiB - 1) })
        {
            var bytes = Curl.GetRange(url, first, last);
            Assert.Equal(last - first + 1, bytes.Length);
            Assert.True(model.Describe(first, bytes) is null, $"curl -r {first}-{last}: {model.Describe(first, bytes)}");
        }
        var tail = Curl.GetFrom(url, size - 100_000);
        Assert.True(model.Describe(size - 100_000, tail) is null, $"curl -r {size - 100_000}-: {model.Describe(size - 100_000, tail)}");

        var whole = _scratch.File("curl-whole.raw");
        Curl.Download(url, whole);
        var all = await File.ReadAllBytesAsync(whole);
        Assert.Equal(size, all.LongLength);
        Assert.True(model.Describe(0, all) is null, $"curl whole disk: {model.Describe(0, all)}");
    }

    [Fact]
    public async Task Qemu_http_driver_sees_the_same_disk_as_the_image_file()
    {
        const string name = "qemu-http";
        const long size = 32L * MiB;
        var server = fixture.Server;
        await server.Api.CreateAsync(name, size);
        using var model = DiskModel.InMemory(size);
        var rng = TestSeed.Create(output, 4711, name);
        await InteropWriteTests.ApplyAsync(server.Api, name, model, RandomWorkload.Writes(rng, size, 80, 65536, maxLength: 3 * MiB), rng, flushEvery: 20);
        await server.Api.FlushAsync(name);

        // QEMU sends HEAD, needs Accept-Ranges and Content-Length, then reads with ~2 MiB Range GETs.
        var http = HttpDisk(server.DataUrl(name));
        var info = ProcessRunner.RunChecked(Qemu.QemuImg, ["info", "--output=json", "-f", "raw", http]);
        Assert.Contains($"\"virtual-size\": {size}", info.Stdout);

        var viaHttp = Qemu.Compare(server.ImagePath(name), http, "-f", "qcow2", "-F", "raw");
        Assert.True(viaHttp.Identical, $"image file vs http: {viaHttp}");
        var modelRaw = model.ExportRaw(_scratch.File("qemu-http-model.raw"));
        var modelVsHttp = Qemu.Compare(modelRaw, http, "-f", "raw", "-F", "raw");
        Assert.True(modelVsHttp.Identical, $"model vs http: {modelVsHttp}");
    }

    /// <summary>A json: filename that makes QEMU open the URL with its http (curl) protocol driver.</summary>
    internal static string HttpDisk(string url) => $$"""json:{"file.driver":"http","file.url":"{{url}}"}""";

    public void Dispose() => _scratch.Dispose();
}
