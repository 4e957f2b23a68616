using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Snapshots and resize over HTTP with QEMU as the oracle: qemu-img lists what the API made, reverts
/// a copy to the same disk the API serves for the snapshot, and finds no errors or leaks after each step.
/// </summary>
public sealed class SnapshotApiTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>, IDisposable
{
    private const int MiB = 1024 * 1024;
    private readonly TempDirectory _scratch = new("e2e-snap");

    public void Dispose() => _scratch.Dispose();

    private HttpClient Client => fixture.Server.Api.Client;

    private static byte[] Fill(int length, byte value) => Enumerable.Repeat(value, length).ToArray();

    private async Task<JsonElement> SendAsync(HttpMethod method, string url, object? body, HttpStatusCode expected)
    {
        using var request = new HttpRequestMessage(method, url) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await Client.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{method} {url}: {(int)response.StatusCode} {text}");
        if (!response.IsSuccessStatusCode) Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    private async Task<byte[]> GetBytesAsync(string url, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var response = await Client.GetAsync(url);
        Assert.Equal(expected, response.StatusCode);
        return await response.Content.ReadAsByteArrayAsync();
    }

    /// <summary>A copy of the image file as it is on disk (cp takes no lock; the server holds the file's flock).</summary>
    private string CopyOf(string path, string name)
    {
        string copy = _scratch.File(name);
        ProcessRunner.RunChecked("cp", [path, copy]);
        return copy;
    }

    [Theory]
    [InlineData("1.1", 65536)]
    [InlineData("0.10", 4096)]
    public async Task Api_snapshots_are_qemu_snapshots_and_keep_their_data(string compat, int clusterSize)
    {
        string name = $"snap-api-{clusterSize}";
        string path = fixture.Server.ImagePath(name);
        Qemu.CreateQcow2(path, 16L * MiB, clusterSize, null, compat);
        var api = fixture.Server.Api;
        await api.PutAsync(name, 0, Fill(3 * MiB, 0x11));
        await api.PutAsync(name, 9 * MiB, Fill(MiB / 2, 0x22));

        var created = await SendAsync(HttpMethod.Post, $"images/{name}/snapshots", new { name = "base" }, HttpStatusCode.Created);
        Assert.Equal("1", created.GetProperty("id").GetString());
        Assert.Equal(16L * MiB, created.GetProperty("virtualSize").GetInt64());
        DiskAssert.CheckIsClean(path);
        var listed = Qemu.Info(path).GetProperty("snapshots");
        Assert.Equal("base", listed[0].GetProperty("name").GetString());
        Assert.Equal("1", listed[0].GetProperty("id").GetString());

        // Writes after the snapshot leave it intact.
        await api.PutAsync(name, MiB, Fill(2 * MiB, 0x33));
        await api.ZeroAsync(name, 9 * MiB, MiB / 2, flush: true);
        DiskAssert.CheckIsClean(path);
        await SendAsync(HttpMethod.Post, $"images/{name}/snapshots", new { name = "base" }, HttpStatusCode.Conflict);
        await SendAsync(HttpMethod.Post, $"images/{name}/snapshots", new { name = "12" }, HttpStatusCode.BadRequest);
        await SendAsync(HttpMethod.Post, $"images/{name}/snapshots", new { name = "" }, HttpStatusCode.BadRequest);
        await SendAsync(HttpMethod.Post, $"images/{name}/snapshots", new { label = "x" }, HttpStatusCode.BadRequest);
        await SendAsync(HttpMethod.Post, $"images/{name}/snapshots", new { name = "after" }, HttpStatusCode.Created);

        // The snapshot served over HTTP equals what qemu-img snapshot -a makes of a copy.
        string served = _scratch.File($"{name}-base.raw");
        await File.WriteAllBytesAsync(served, await GetBytesAsync($"images/{name}/snapshots/base/data"));
        string copy = CopyOf(path, $"{name}-copy.qcow2");
        ProcessRunner.RunChecked(Qemu.QemuImg, ["snapshot", "-a", "1", copy]);
        var same = Qemu.Compare(copy, served, "-f", "qcow2", "-F", "raw");
        Assert.True(same.Identical, same.ToString());
        var range = await GetRangeAsync($"images/{name}/snapshots/1/data", MiB, 4096);
        Assert.Equal(Fill(4096, 0x11), range);
        Assert.Equal(Fill(4096, 0x33), await api.GetRangeAsync(name, MiB, 4096));
        var extents = await SendAsync(HttpMethod.Get, $"images/{name}/snapshots/1/data/extents", null, HttpStatusCode.OK);
        Assert.Equal(16L * MiB, extents.EnumerateArray().Last() is var last ? last.GetProperty("start").GetInt64() + last.GetProperty("length").GetInt64() : 0);
        Assert.False(extents[0].GetProperty("zero").GetBoolean());

        // Revert, then delete both; qemu-img finds no error and no leak after each step.
        var reverted = await SendAsync(HttpMethod.Post, $"images/{name}/snapshots/base/revert", null, HttpStatusCode.OK);
        Assert.Equal(16L * MiB, reverted.GetProperty("virtualSize").GetInt64());
        DiskAssert.CheckIsClean(path);
        Assert.Equal(Fill(4096, 0x11), await api.GetRangeAsync(name, MiB, 4096));
        Assert.Equal(Fill(4096, 0x22), await api.GetRangeAsync(name, 9 * MiB, 4096));
        await SendAsync(HttpMethod.Delete, $"images/{name}/snapshots/after", null, HttpStatusCode.NoContent);
        DiskAssert.CheckIsClean(path);
        await SendAsync(HttpMethod.Delete, $"images/{name}/snapshots/1", null, HttpStatusCode.NoContent);
        DiskAssert.CheckIsClean(path);
        await SendAsync(HttpMethod.Delete, $"images/{name}/snapshots/1", null, HttpStatusCode.NotFound);
        await SendAsync(HttpMethod.Get, $"images/{name}/snapshots/1/data", null, HttpStatusCode.NotFound);
        var none = await SendAsync(HttpMethod.Get, $"images/{name}/snapshots", null, HttpStatusCode.OK);
        Assert.Equal(0, none.GetArrayLength());
        await api.PutAsync(name, 0, Fill(4096, 0x44)); // COPIED again: written in place, still clean
        DiskAssert.CheckIsClean(path);
        output.WriteLine($"{name}: {new FileInfo(path).Length} bytes");
    }

    private async Task<byte[]> GetRangeAsync(string url, long offset, int length)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(offset, offset + length - 1);
        using var response = await Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        Assert.Equal($"bytes {offset}-{offset + length - 1}/", response.Content.Headers.ContentRange!.ToString()[..($"bytes {offset}-{offset + length - 1}/".Length)]);
        return await response.Content.ReadAsByteArrayAsync();
    }

    [Fact]
    public async Task Qemu_snapshots_are_listed_readable_revertible_and_deletable()
    {
        const string name = "snap-qemu";
        string path = fixture.Server.ImagePath(name);
        Qemu.CreateQcow2(path, 8L * MiB, 65536, null, "1.1");
        Qemu.Io(path, "-c", "write -P 0x55 0 1M");
        Qemu.Snapshot(path, "q1");
        Qemu.Io(path, "-c", "write -P 0x66 0 512K");
        Qemu.Snapshot(path, "q2");
        Qemu.Io(path, "-c", "write -P 0x77 0 64K");

        var list = await SendAsync(HttpMethod.Get, $"images/{name}/snapshots", null, HttpStatusCode.OK);
        Assert.Equal("q1,q2", string.Join(",", list.EnumerateArray().Select(s => s.GetProperty("name").GetString())));
        Assert.EndsWith("Z", list[0].GetProperty("date").GetString());
        Assert.Equal(0x55, (await GetRangeAsync($"images/{name}/snapshots/q1/data", 0, 16))[0]);
        Assert.Equal(0x66, (await GetRangeAsync($"images/{name}/snapshots/q2/data", 0, 16))[0]);
        await SendAsync(HttpMethod.Get, $"images/{name}/snapshots/q3/data", null, HttpStatusCode.NotFound);

        await SendAsync(HttpMethod.Post, $"images/{name}/snapshots/q2/revert", null, HttpStatusCode.OK);
        DiskAssert.CheckIsClean(path);
        Assert.Equal(0x66, (await fixture.Server.Api.GetRangeAsync(name, 0, 16))[0]);
        Assert.Equal(0x55, (await fixture.Server.Api.GetRangeAsync(name, 600 * 1024, 16))[0]);
        await SendAsync(HttpMethod.Delete, $"images/{name}/snapshots/q1", null, HttpStatusCode.NoContent);
        DiskAssert.CheckIsClean(path);
        var after = Qemu.Info(path).GetProperty("snapshots");
        Assert.Equal("q2", Assert.Single(after.EnumerateArray()).GetProperty("name").GetString());
    }

    [Fact]
    public async Task Resize_grows_past_the_L1_table_and_shrinks_only_without_data_past_the_end()
    {
        const string name = "resize-api";
        string path = fixture.Server.ImagePath(name);
        Qemu.CreateQcow2(path, MiB, 512, null, "1.1");
        var api = fixture.Server.Api;
        await api.PutAsync(name, 0, Fill(8192, 0x10));
        // 512 B clusters: one L1 cluster maps 2 MiB; 256 MiB needs 128 of them: the L1 table moves.
        var grown = await SendAsync(HttpMethod.Patch, $"images/{name}", new { size = "256M" }, HttpStatusCode.OK);
        Assert.Equal(256L * MiB, grown.GetProperty("virtualSize").GetInt64());
        await api.PutAsync(name, 256L * MiB - 4096, Fill(4096, 0x20));
        Assert.Equal(Fill(4096, 0x20), await api.GetRangeAsync(name, 256L * MiB - 4096, 4096));
        Assert.Equal(Fill(8192, 0x10), await api.GetRangeAsync(name, 0, 8192));
        DiskAssert.CheckIsClean(path);
        Assert.Equal(256L * MiB, Qemu.Info(path).GetProperty("virtual-size").GetInt64());

        var refused = await SendAsync(HttpMethod.Patch, $"images/{name}", new { size = MiB }, HttpStatusCode.Conflict);
        Assert.Contains((256L * MiB - 4096).ToString(), refused.GetProperty("detail").GetString());
        await SendAsync(HttpMethod.Patch, $"images/{name}", new { size = 1000 }, HttpStatusCode.BadRequest);
        await SendAsync(HttpMethod.Patch, $"images/{name}", new { size = "lots" }, HttpStatusCode.BadRequest);
        await SendAsync(HttpMethod.Patch, "images/no-such-image", new { size = MiB }, HttpStatusCode.NotFound);
        await api.ZeroAsync(name, 256L * MiB - 4096, 4096, flush: true);
        var shrunk = await SendAsync(HttpMethod.Patch, $"images/{name}", new { size = 2 * MiB }, HttpStatusCode.OK);
        Assert.Equal(2L * MiB, shrunk.GetProperty("virtualSize").GetInt64());
        DiskAssert.CheckIsClean(path);
        Assert.Equal(2L * MiB, Qemu.Info(path).GetProperty("virtual-size").GetInt64());
        Assert.Equal(Fill(8192, 0x10), await api.GetRangeAsync(name, 0, 8192));
    }

    [Fact]
    public async Task A_v2_image_with_snapshots_is_not_resized()
    {
        const string name = "resize-v2";
        string path = fixture.Server.ImagePath(name);
        Qemu.CreateQcow2(path, 4L * MiB, 65536, null, "0.10");
        Qemu.Snapshot(path, "s");
        var problem = await SendAsync(HttpMethod.Patch, $"images/{name}", new { size = "8M" }, HttpStatusCode.Conflict);
        Assert.Contains("version 2", problem.GetProperty("detail").GetString());
        DiskAssert.CheckIsClean(path);
    }
}
