using System.Net;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.EndToEnd.Tests;

/// <summary>POST /images/{name}/close: the server lets go of an image so other programs can use the file.</summary>
public sealed class CloseImageTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const int MiB = 1024 * 1024;

    [Fact]
    public async Task Close_flushes_writes_closes_the_file_cleanly_and_the_next_request_opens_it_again()
    {
        const string name = "closable";
        string path = fixture.Server.ImagePath(name);
        Qemu.CreateQcow2(path, 64L * MiB);
        var api = fixture.Server.Api;
        var data = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7 + 1)).ToArray();
        await api.PutAsync(name, 5 * MiB + 123, data, flush: false); // acknowledged, not yet durable
        string marker = Path.Combine(Path.GetDirectoryName(path)!, $".{name}.qcow2.open");

        using (var close = await fixture.Server.Client.PostAsync($"images/{name}/close", null))
            Assert.Equal(HttpStatusCode.NoContent, close.StatusCode);

        Assert.False(File.Exists(marker), "a close is clean: the marker goes");
        DiskAssert.CheckIsClean(path);
        string raw = Path.Combine(Path.GetDirectoryName(path)!, "closable.raw");
        Qemu.ConvertToRaw(path, raw);
        var onDisk = new byte[data.Length];
        await using (var file = File.OpenRead(raw))
        {
            file.Position = 5 * MiB + 123;
            await file.ReadExactlyAsync(onDisk);
        }
        File.Delete(raw);
        Assert.Equal(data, onDisk); // flushed before the file was closed

        Assert.Equal(data, await api.GetRangeAsync(name, 5 * MiB + 123, data.Length)); // opened again
        using (var again = await fixture.Server.Client.PostAsync($"images/{name}/close", null))
            Assert.Equal(HttpStatusCode.NoContent, again.StatusCode);
        using (var idle = await fixture.Server.Client.PostAsync($"images/{name}/close", null))
            Assert.Equal(HttpStatusCode.NoContent, idle.StatusCode); // not open: nothing to do
    }

    [Fact]
    public async Task Closing_an_unknown_or_invalid_name_is_a_clear_problem()
    {
        using var unknown = await fixture.Server.Client.PostAsync("images/no-such-image/close", null);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("application/problem+json", unknown.Content.Headers.ContentType?.MediaType);
        using var invalid = await fixture.Server.Client.PostAsync("images/.hidden/close", null);
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
    }
}
