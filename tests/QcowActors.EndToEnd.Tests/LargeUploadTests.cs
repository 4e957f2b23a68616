using System.Net;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>Gigabyte uploads stream through the server: its memory stays bounded, the bytes all land.</summary>
public sealed class LargeUploadTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>
{
    private const long GiB = 1024L * 1024 * 1024;
    private const long RssLimit = 300L * 1024 * 1024;
    private const ulong FirstSeed = 0xA11CE;
    private const ulong SecondSeed = 0xB0B;

    [Fact]
    public async Task Gigabyte_puts_with_content_length_and_chunked_land_intact_under_300_MiB_of_server_memory()
    {
        const string name = "big";
        var server = fixture.Server;
        var api = server.Api;
        await api.CreateAsync(name, 2 * GiB);

        using (var sized = new PatternContent(FirstSeed, 0, GiB, knownLength: true))
        {
            await api.PutAsync(name, 0, sized, GiB);
        }
        output.WriteLine($"peak RSS after the Content-Length PUT: {server.PeakRssBytes() / 1024 / 1024} MiB");
        using (var chunked = new PatternContent(SecondSeed, GiB, GiB, knownLength: false))
        {
            Assert.Null(chunked.Headers.ContentLength); // sent with Transfer-Encoding: chunked
            await api.PutAsync(name, GiB, chunked, GiB);
        }
        var afterPuts = server.PeakRssBytes();
        output.WriteLine($"peak RSS after the chunked PUT: {afterPuts / 1024 / 1024} MiB");
        Assert.True(afterPuts < RssLimit, $"server peak RSS {afterPuts / 1024 / 1024} MiB during the uploads (limit {RssLimit / 1024 / 1024} MiB)");

        await VerifyWholeDiskAsync(server, name);
        DiskAssert.CheckIsClean(server.ImagePath(name));
        var afterRead = server.PeakRssBytes();
        output.WriteLine($"peak RSS after reading 2 GiB back: {afterRead / 1024 / 1024} MiB");
        Assert.True(afterRead < RssLimit, $"server peak RSS {afterRead / 1024 / 1024} MiB after the download (limit {RssLimit / 1024 / 1024} MiB)");
    }

    /// <summary>Streams the whole 2 GiB disk back with one GET and compares it, megabyte by megabyte, with the generators.</summary>
    private static async Task VerifyWholeDiskAsync(ServerProcess server, string name)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"images/{name}/data");
        using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2 * GiB, response.Content.Headers.ContentLength);
        await using var body = await response.Content.ReadAsStreamAsync();
        var actual = new byte[1024 * 1024];
        var expected = new byte[actual.Length];
        for (long position = 0; position < 2 * GiB; position += actual.Length)
        {
            await body.ReadExactlyAsync(actual);
            Pattern.Fill(position < GiB ? FirstSeed : SecondSeed, position, expected);
            var diff = DiskModel.FirstDifference(expected, actual);
            Assert.True(diff < 0, $"disk offset {position + diff}: expected 0x{expected[Math.Max(0, diff)]:x2}, got 0x{actual[Math.Max(0, diff)]:x2}");
        }
        Assert.Equal(0, await body.ReadAsync(new byte[1]));
    }
}
