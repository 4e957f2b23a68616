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

    [Fact]
    public async Task A_reader_that_stopped_reading_holds_a_close_or_delete_up_to_the_close_read_limit_then_is_cut()
    {
        await using var server = await ServerProcess.StartAsync(new ServerOptions
        {
            Environment = new Dictionary<string, string> { ["Storage__CloseReadLimit"] = "00:00:02" },
        });
        const string name = "slow-reader";
        Qemu.CreateQcow2(server.ImagePath(name), 256L * MiB);
        Qemu.Io(server.ImagePath(name), "-c", "write -P 0x42 0 256M");
        var stalled = await server.Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, server.DataUrl(name)), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, stalled.StatusCode);
        await using var body = await stalled.Content.ReadAsStreamAsync();
        await body.ReadExactlyAsync(new byte[4096]); // it started, then its client stops reading

        var clock = System.Diagnostics.Stopwatch.StartNew();
        using (var close = await server.Client.PostAsync($"images/{name}/close", null))
            Assert.Equal(HttpStatusCode.NoContent, close.StatusCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"the close waited {clock.Elapsed}");
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1.5), $"the reader got its limit first ({clock.Elapsed})");
        // The stalled read was cut: reading on ends in an error, never in a complete-looking body.
        await Assert.ThrowsAnyAsync<Exception>(async () => { while (await body.ReadAsync(new byte[1 << 20]) > 0) { } });
        DiskAssert.CheckIsClean(server.ImagePath(name));
    }
}
