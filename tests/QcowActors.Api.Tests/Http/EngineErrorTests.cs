using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using QcowActors.Api.Tests.Support;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.Api.Tests.Http;

/// <summary>
/// Engine errors become problems with the status a client can act on: each status produced by the
/// real engine, from images qemu-img made and from faults at the engine's file-system seam. (Which
/// status every engine error value maps to is <see cref="Problems.ProblemMapperTests"/>.)
/// </summary>
public sealed class EngineErrorTests : IAsyncLifetime
{
    private const int MiB = 1024 * 1024;
    private readonly FaultyFileSystem _fs = new();
    private ApiServer _server = null!;

    public async Task InitializeAsync() => _server = await ApiServer.StartWithEngineAsync(_fs);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private HttpClient Client => _server.Client;

    private async Task CreateAsync(string name, long size)
    {
        using HttpResponseMessage created = await Client.PostAsJsonAsync("/images", new { name, size });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private async Task<HttpResponseMessage> PutAsync(string name, long offset, byte[] data)
    {
        var body = new ByteArrayContent(data);
        body.Headers.ContentRange = new ContentRangeHeaderValue(offset, offset + data.Length - 1);
        return await Client.PutAsync($"/images/{name}/data", body);
    }

    private async Task<HttpResponseMessage> GetRangeAsync(string name, long offset, long length)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/images/{name}/data");
        request.Headers.Range = new RangeHeaderValue(offset, offset + length - 1);
        return await Client.SendAsync(request);
    }

    /// <summary>qemu-img with the store directory as working directory; throws with its output on failure or when it is missing.</summary>
    private void QemuImg(params string[] args)
        => ProcessRunner.RunChecked(Qemu.QemuImg, args, new ProcessRunOptions { WorkingDirectory = _server.StoreDirectory });

    /// <summary>The status's problem, with an https type, a title and a detail (all checked by <see cref="Problem"/>).</summary>
    private static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string? detail = null)
    {
        JsonElement problem = await Problem.AssertAsync(response, status, detail);
        Assert.StartsWith("https://", problem.GetProperty("type").GetString());
        return problem;
    }

    // ---- 400 ----------------------------------------------------------------------------

    [Theory]
    [InlineData("""{"name":"vm","size":"1M","clusterSize":3000}""", "cluster_size")]
    [InlineData("""{"name":"vm","size":"1M","refcountBits":3}""", "refcount_bits")]
    [InlineData("""{"name":"vm","size":"1T","clusterSize":512}""", "L1 table")]
    public async Task Create_the_engine_refuses_is_400_naming_the_reason(string body, string detail)
    {
        await AssertProblemAsync(await Client.PostAsync("/images", Json(body)), HttpStatusCode.BadRequest, detail);
        JsonElement list = await Client.GetFromJsonAsync<JsonElement>("/images");
        Assert.Equal(0, list.GetArrayLength());
    }

    [Theory]
    [InlineData("/images/-vm", "image name")]
    [InlineData("/images/vm%2F..", "image name")]
    public async Task Bad_image_name_is_400(string url, string detail)
        => await AssertProblemAsync(await Client.GetAsync(url), HttpStatusCode.BadRequest, detail);

    [Theory]
    [InlineData("""{"name":"vm","size":"1M",""", "malformed JSON")]
    [InlineData("""{"name":"vm","size":"12 parsecs"}""", "size")]
    public async Task Bad_create_body_is_400(string body, string detail)
        => await AssertProblemAsync(await Client.PostAsync("/images", Json(body)), HttpStatusCode.BadRequest, detail);

    // ---- 404, 409, 416 -------------------------------------------------------------------

    [Fact]
    public async Task Unknown_image_is_404_naming_it()
        => await AssertProblemAsync(await GetRangeAsync("ghost", 0, 10), HttpStatusCode.NotFound, "ghost");

    [Fact]
    public async Task Creating_an_image_twice_is_409()
    {
        await CreateAsync("vm", MiB);
        await AssertProblemAsync(await Client.PostAsJsonAsync("/images", new { name = "vm", size = 2 * MiB }), HttpStatusCode.Conflict, "already exists");
        JsonElement info = await Client.GetFromJsonAsync<JsonElement>("/images/vm");
        Assert.Equal(MiB, info.GetProperty("virtualSize").GetInt64());
    }

    [Fact]
    public async Task Range_past_the_end_is_416_with_the_disk_size()
    {
        await CreateAsync("vm", MiB);
        using HttpResponseMessage response = await GetRangeAsync("vm", MiB, 10);
        await AssertProblemAsync(response, HttpStatusCode.RequestedRangeNotSatisfiable);
        Assert.Equal($"bytes */{MiB}", response.Content.Headers.ContentRange?.ToString());
    }

    [Fact]
    public async Task After_a_failed_fsync_no_flush_answers_200_until_the_image_reopened_and_every_flushed_byte_survives()
    {
        await CreateAsync("fsync", 64 * MiB);
        var flushed = Enumerable.Range(0, 200_000).Select(i => (byte)(i * 7)).ToArray();
        using (var put = await PutAsync("fsync", 3 * MiB, flushed))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        var body = new ByteArrayContent(new byte[70_000]);
        body.Headers.ContentRange = new ContentRangeHeaderValue(20 * MiB, 20 * MiB + 69_999);
        using (var unflushed = await Client.PutAsync("/images/fsync/data?flush=n", body))
            Assert.Equal(HttpStatusCode.OK, unflushed.StatusCode);

        // A whole-disk GET its client does not read keeps this incarnation open (its request is inside).
        var stalled = await Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/images/fsync/data"), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, stalled.StatusCode);

        _fs.FailFsyncs(FaultyFileSystem.DiskError());
        using (var failed = await Client.PatchAsync("/images/fsync/data", Json("""{"op":"flush"}""")))
        {
            await AssertProblemAsync(failed, HttpStatusCode.ServiceUnavailable, "failed fsync");
            Assert.True(failed.Headers.RetryAfter is not null, "503 says when to retry");
        }
        // The fsync works again, but this incarnation cannot vouch for what it wrote: never a 200 from it.
        _fs.Heal();
        using (var retried = await Client.PatchAsync("/images/fsync/data", Json("""{"op":"flush"}""")))
            await AssertProblemAsync(retried, HttpStatusCode.ServiceUnavailable, "being recovered");
        using (var write = await PutAsync("fsync", 0, [1]))
            await AssertProblemAsync(write, HttpStatusCode.ServiceUnavailable, "being recovered");
        stalled.Dispose(); // the GET ends: the image can close

        // It closes itself (unclean: the marker stays) and the next open repairs it.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        HttpResponseMessage read;
        while (true)
        {
            read = await GetRangeAsync("fsync", 3 * MiB, flushed.Length);
            if (read.StatusCode == HttpStatusCode.PartialContent || DateTime.UtcNow > deadline) break;
            read.Dispose();
            await Task.Delay(100);
        }
        using (read)
        {
            Assert.Equal(HttpStatusCode.PartialContent, read.StatusCode);
            Assert.Equal(flushed, await read.Content.ReadAsByteArrayAsync());
        }
        using (var flush = await Client.PatchAsync("/images/fsync/data", Json("""{"op":"flush"}""")))
            Assert.Equal(HttpStatusCode.OK, flush.StatusCode);
        Assert.True(Qemu.Check(_server.ImagePath("fsync")).IsClean);
    }

    // ---- 422: images qemu-img made with features the engine does not serve ------------------

    [Fact]
    public async Task Reading_an_image_whose_backing_file_leads_outside_the_store_is_422_naming_the_feature()
    {
        QemuImg("create", "-q", "-f", "qcow2", "-u", "-b", "../elsewhere.qcow2", "-F", "qcow2", "overlay.qcow2", "4M");

        JsonElement problem = await AssertProblemAsync(await GetRangeAsync("overlay", 0, 512), HttpStatusCode.UnprocessableEntity, "outside the store");
        Assert.Equal("backing file", problem.GetProperty("feature").GetString());
        // The image itself is described, backing file included.
        JsonElement info = await Client.GetFromJsonAsync<JsonElement>("/images/overlay");
        Assert.Equal("../elsewhere.qcow2", info.GetProperty("backing").GetString());
        Assert.Equal("qcow2", info.GetProperty("backingFormat").GetString());
    }

    [Fact]
    public async Task Reading_compressed_clusters_answers_their_bytes()
    {
        string raw = Path.Combine(_server.StoreDirectory, "plain.raw");
        await File.WriteAllBytesAsync(raw, Enumerable.Repeat((byte)0x5a, MiB).ToArray());
        QemuImg("convert", "-c", "-f", "raw", "-O", "qcow2", "plain.raw", "zipped.qcow2");

        using HttpResponseMessage read = await GetRangeAsync("zipped", 65536 - 10, 4096);
        Assert.Equal(HttpStatusCode.PartialContent, read.StatusCode);
        Assert.Equal(Enumerable.Repeat((byte)0x5a, 4096).ToArray(), await read.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Corrupt_image_file_is_422_saying_what_is_wrong()
    {
        QemuImg("create", "-q", "-f", "qcow2", "broken.qcow2", "4M");
        await using (var file = new FileStream(_server.ImagePath("broken"), FileMode.Open, FileAccess.Write))
        {
            file.Position = 40; // l1_table_offset: far past the end of the file
            file.Write([0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
        }

        JsonElement problem = await AssertProblemAsync(await GetRangeAsync("broken", 0, 512), HttpStatusCode.UnprocessableEntity, "l1");
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("feature").GetString()));
    }

    // ---- 507 and 503: faults of the store's disk ------------------------------------------

    [Fact]
    public async Task Disk_full_during_a_put_is_507_and_the_image_stays_consistent()
    {
        await CreateAsync("vm", 4 * MiB);
        byte[] before = Bodies.Pattern(MiB, 21);
        using (HttpResponseMessage put = await PutAsync("vm", 0, before))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        _fs.FailWrites(FaultyFileSystem.DiskFull());
        JsonElement problem = await AssertProblemAsync(await PutAsync("vm", 2 * MiB, Bodies.Pattern(MiB, 22)), HttpStatusCode.InsufficientStorage, "no space left");
        Assert.Equal("https://tools.ietf.org/html/rfc4918#section-11.5", problem.GetProperty("type").GetString());

        _fs.Heal();
        using (HttpResponseMessage flush = await Client.PatchAsync("/images/vm/data", JsonContent.Create(new { op = "flush" })))
            Assert.Equal(HttpStatusCode.OK, flush.StatusCode);
        QemuCheckResult check = Qemu.Check(_server.ImagePath("vm"));
        Assert.True(check.IsClean, check.ToString());
        using HttpResponseMessage read = await GetRangeAsync("vm", 0, MiB);
        Assert.Equal(before, await read.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Disk_full_during_a_create_is_507_and_no_image_appears()
    {
        _fs.FailWrites(FaultyFileSystem.DiskFull());
        await AssertProblemAsync(await Client.PostAsJsonAsync("/images", new { name = "vm", size = MiB }), HttpStatusCode.InsufficientStorage, "no space left");
        await AssertProblemAsync(await Client.GetAsync("/images/vm"), HttpStatusCode.NotFound);

        _fs.Heal();
        await CreateAsync("vm", MiB);
    }

    [Fact]
    public async Task Disk_error_during_a_put_is_503_and_the_image_works_once_the_disk_does()
    {
        await CreateAsync("vm", 4 * MiB);
        _fs.FailWrites(FaultyFileSystem.DiskError());
        await AssertProblemAsync(await PutAsync("vm", 0, Bodies.Pattern(MiB, 23)), HttpStatusCode.ServiceUnavailable, "I/O error");

        _fs.Heal();
        byte[] data = Bodies.Pattern(MiB, 24);
        using (HttpResponseMessage put = await PutAsync("vm", 0, data))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        using HttpResponseMessage read = await GetRangeAsync("vm", 0, MiB);
        Assert.Equal(data, await read.Content.ReadAsByteArrayAsync());
        QemuCheckResult check = Qemu.Check(_server.ImagePath("vm"));
        Assert.True(check.IsClean, check.ToString());
    }

    // ---- failures nobody planned for ---------------------------------------------------------

    private static void AssertNoInternals(string body)
    {
        Assert.DoesNotContain("   at ", body);
        Assert.DoesNotContain("Exception", body);
        Assert.DoesNotContain("QcowActors.", body);
        Assert.DoesNotContain(".cs:line", body);
    }

    [Fact]
    public async Task Missing_store_directory_is_a_503_problem_without_internals()
    {
        // The store actor creates its directory when it starts: let it start before the directory goes.
        using (HttpResponseMessage first = await Client.GetAsync("/images"))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Directory.Delete(_server.StoreDirectory, recursive: true);

        using HttpResponseMessage response = await Client.GetAsync("/images");
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        JsonElement problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal(503, problem.GetProperty("status").GetInt32());
        Assert.StartsWith("https://", problem.GetProperty("type").GetString());
        AssertNoInternals(body);
        Assert.DoesNotContain(_server.StoreDirectory, body);
    }

    [Fact]
    public async Task Unexpected_exception_from_the_file_system_before_headers_is_a_problem_without_internals()
    {
        // The first request opens the image, and every read of the open fails with an exception type
        // no I/O path expects. The engine reports it as 503: the failure may pass, and it does.
        await CreateAsync("vm", MiB);
        _fs.FailReads(new InvalidOperationException("secret internal state"));

        using HttpResponseMessage response = await GetRangeAsync("vm", 0, 512);
        string body = await response.Content.ReadAsStringAsync();
        await AssertProblemAsync(response, HttpStatusCode.ServiceUnavailable, "cannot be opened");
        AssertNoInternals(body);
        Assert.DoesNotContain("secret internal state", body);

        // A failed open is not remembered: with the fault gone the image opens and reads.

        _fs.Heal();
        using HttpResponseMessage again = await GetRangeAsync("vm", 0, 512);
        Assert.Equal(HttpStatusCode.PartialContent, again.StatusCode);
    }
}
