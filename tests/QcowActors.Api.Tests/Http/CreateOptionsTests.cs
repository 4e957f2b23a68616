using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using QcowActors.Api.Tests.Support;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Api.Tests.Http;

/// <summary>
/// POST /images with version, compressionType, extendedL2, lazyRefcounts and preallocation, on the
/// real engine: each created file judged by qemu-img (check, info) and compared with a
/// <c>qemu-img create</c> of the same options; each refusal a 400 problem naming the reason.
/// </summary>
public sealed class CreateOptionsTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const long MiB = 1L << 20;
    private const long GiB = 1L << 30;
    private ApiServer _server = null!;
    private readonly TempDirectory _qemuDir = new("qcowactors-create-oracle");

    public async Task InitializeAsync() => _server = await ApiServer.StartWithEngineAsync();

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _qemuDir.Dispose();
    }

    private HttpClient Client => _server.Client;

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private async Task<string> CreateAsync(string body)
    {
        using HttpResponseMessage response = await Client.PostAsync("/images", Json(body));
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        string name = JsonDocument.Parse(body).RootElement.GetProperty("name").GetString()!;
        return _server.ImagePath(name);
    }

    private string QemuCreate(string name, string size, string qemuOptions)
    {
        string path = _qemuDir.File(name + ".qcow2");
        Qemu.Create(path, size, qemuOptions.Length == 0 ? [] : ["-o", qemuOptions]);
        return path;
    }

    [Theory]
    [InlineData("""{"name":"zstd","size":"1G","compressionType":"zstd"}""", "compression_type=zstd")]
    [InlineData("""{"name":"ext","size":"1G","extendedL2":true}""", "extended_l2=on")]
    [InlineData("""{"name":"ext16k","size":"10G","extendedL2":true,"clusterSize":"16K"}""", "extended_l2=on,cluster_size=16384")]
    [InlineData("""{"name":"lazy","size":"1G","lazyRefcounts":true}""", "lazy_refcounts=on")]
    [InlineData("""{"name":"v2","size":"1G","version":2}""", "compat=0.10")]
    [InlineData("""{"name":"v3","size":"1G","version":3,"compressionType":"zlib","extendedL2":false,"lazyRefcounts":false,"preallocation":"off"}""", "")]
    [InlineData("""{"name":"all","size":"3G","compressionType":"zstd","extendedL2":true,"lazyRefcounts":true,"refcountBits":64}""",
        "compression_type=zstd,extended_l2=on,lazy_refcounts=on,refcount_bits=64")]
    public async Task Created_image_is_the_one_qemu_img_creates_with_the_same_options(string body, string qemuOptions)
    {
        string ours = await CreateAsync(body);
        var root = JsonDocument.Parse(body).RootElement;
        string theirs = QemuCreate(root.GetProperty("name").GetString()!, root.GetProperty("size").GetString()!, qemuOptions);
        Assert.True(Qemu.Check(ours).IsClean, Qemu.Check(ours).ToString());
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
        var ourInfo = Qemu.Info(ours).GetProperty("format-specific").GetProperty("data").ToString();
        Assert.Equal(Qemu.Info(theirs).GetProperty("format-specific").GetProperty("data").ToString(), ourInfo);
    }

    [Fact]
    public async Task Metadata_preallocation_is_qemu_img_layout_and_reads_zeros_through_the_server()
    {
        string ours = await CreateAsync("""{"name":"pre","size":"1G","preallocation":"metadata"}""");
        string theirs = QemuCreate("pre", "1G", "preallocation=metadata");
        Assert.True(Qemu.Check(ours).IsClean, Qemu.Check(ours).ToString());
        Assert.Equal(Qemu.Map(theirs), Qemu.Map(ours));
        Assert.True(Qemu.Compare(theirs, ours, "-f", "qcow2", "-F", "qcow2").Identical);
        Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);

        using var request = new HttpRequestMessage(HttpMethod.Get, "/images/pre/data");
        request.Headers.Range = new RangeHeaderValue(GiB - 3 * MiB, GiB - 1);
        using HttpResponseMessage read = await Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.PartialContent, read.StatusCode);
        Assert.All(await read.Content.ReadAsByteArrayAsync(), b => Assert.Equal(0, b));

        // A write lands in a preallocated cluster: the file does not grow, the image stays clean.
        long length = new FileInfo(ours).Length;
        var body = new ByteArrayContent(Enumerable.Repeat((byte)0x5a, (int)MiB).ToArray());
        body.Headers.ContentRange = new ContentRangeHeaderValue(512 * MiB, 513 * MiB - 1);
        using (HttpResponseMessage put = await Client.PutAsync("/images/pre/data", body))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(length, new FileInfo(ours).Length);
        Assert.True(Qemu.Check(ours).IsClean, Qemu.Check(ours).ToString());
        Qemu.Io(ours, "-U", "-r", "-c", "read -P 0x5a 512M 1M", "-c", "read -P 0 0 512M");
    }

    /// <summary>The figure the README quotes: a 100 GiB metadata preallocation through the API.</summary>
    [Fact]
    public async Task Hundred_GiB_metadata_preallocation_is_created_within_seconds()
    {
        var watch = Stopwatch.StartNew();
        string ours = await CreateAsync("""{"name":"big","size":"100G","preallocation":"metadata"}""");
        watch.Stop();
        output.WriteLine($"100 GiB preallocation=metadata: {watch.Elapsed.TotalSeconds:0.00} s, file {new FileInfo(ours).Length} bytes");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"took {watch.Elapsed}");
        Assert.True(Qemu.Check(ours).IsClean, Qemu.Check(ours).ToString());
        Assert.Equal(Qemu.Map(QemuCreate("big", "100G", "preallocation=metadata")), Qemu.Map(ours));
    }

    [Theory]
    [InlineData("""{"name":"ov","backing":"base"}""", "")]
    [InlineData("""{"name":"ov","backing":"base.qcow2","size":"3G","extendedL2":true}""", "extended_l2=on,size=3G")]
    [InlineData("""{"name":"ov","backing":"base","version":2}""", "compat=0.10")]
    public async Task An_overlay_is_the_one_qemu_img_creates_with_the_same_backing(string body, string qemuOptions)
    {
        await CreateAsync("""{"name":"base","size":"1G"}""");
        File.Copy(_server.ImagePath("base"), _qemuDir.File("base.qcow2"), overwrite: true);
        string ours = await CreateAsync(body);
        string theirs = _qemuDir.File("ov.qcow2");
        File.Delete(theirs);
        var options = new List<string> { "-b", "base.qcow2", "-F", "qcow2" };
        string? size = qemuOptions.Split(',').FirstOrDefault(o => o.StartsWith("size="))?[5..];
        string rest = string.Join(',', qemuOptions.Split(',', StringSplitOptions.RemoveEmptyEntries).Where(o => !o.StartsWith("size=")));
        if (rest.Length > 0) options.AddRange(["-o", rest]);
        ProcessRunner.RunChecked(Qemu.QemuImg, ["create", "-q", "-f", "qcow2", .. options, theirs, .. size is null ? Array.Empty<string>() : [size]],
            new ProcessRunOptions { WorkingDirectory = _qemuDir.Path });
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
        var info = Qemu.Info(ours);
        Assert.Equal("base.qcow2", info.GetProperty("backing-filename").GetString());
        Assert.Equal("qcow2", info.GetProperty("backing-filename-format").GetString());
    }

    [Theory]
    [InlineData("""{"name":"vm","size":"1G","version":2,"refcountBits":64}""", "refcount_bits 64 needs version 3")]
    [InlineData("""{"name":"vm","size":"1G","version":2,"extendedL2":true}""", "extended L2 entries needs version 3")]
    [InlineData("""{"name":"vm","size":"1G","version":2,"compressionType":"zstd"}""", "zstd needs version 3")]
    [InlineData("""{"name":"vm","size":"1G","version":2,"lazyRefcounts":true}""", "lazy refcounts needs version 3")]
    [InlineData("""{"name":"vm","size":"1G","extendedL2":true,"clusterSize":"8K"}""", "at least 16 KiB")]
    [InlineData("""{"name":"vm","size":"9T","preallocation":"metadata"}""", "8 TiB")]
    [InlineData("""{"name":"vm","size":"2T","clusterSize":"4K","preallocation":"metadata"}""", "the limit is 2 GiB")]
    [InlineData("""{"name":"vm","size":"1G","version":4}""", "version must be 2")]
    [InlineData("""{"name":"vm","size":"1G","compressionType":"lz4"}""", "compressionType must be")]
    [InlineData("""{"name":"vm","size":"1G","extendedL2":"yes"}""", "extendedL2 must be true or false")]
    [InlineData("""{"name":"vm","size":"1G","lazyRefcounts":1}""", "lazyRefcounts must be true or false")]
    [InlineData("""{"name":"vm","size":"1G","preallocation":"full"}""", "preallocation must be")]
    [InlineData("""{"name":"vm","size":"1G","lazy_refcounts":true}""", "unknown member 'lazy_refcounts'")]
    [InlineData("""{"name":"vm"}""", "size is required")]
    [InlineData("""{"name":"vm","backing":5}""", "backing must be the name of an image")]
    [InlineData("""{"name":"vm","backing":"nope"}""", "names no other image of the store")]
    [InlineData("""{"name":"vm","backing":"../etc/passwd"}""", "names no other image of the store")]
    public async Task Refused_option_is_400_naming_the_reason_and_creates_nothing(string body, string detail)
    {
        await Problem.AssertAsync(await Client.PostAsync("/images", Json(body)), HttpStatusCode.BadRequest, detail);
        Assert.Equal(0, (await Client.GetFromJsonAsync<JsonElement>("/images")).GetArrayLength());
        Assert.Empty(Directory.GetFiles(_server.StoreDirectory));
    }
}
