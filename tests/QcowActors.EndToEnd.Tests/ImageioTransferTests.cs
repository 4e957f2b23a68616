using System.Collections.Concurrent;
using System.Text.Json;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// A transfer the way oVirt's imageio client makes one: OPTIONS, upload over 4 connections (PUT ?flush=n
/// for data, PATCH zero for holes and zero runs, one PATCH flush per connection), then a download guided
/// by the extents. QEMU compares the source with the uploaded image and with the downloaded file.
/// </summary>
public sealed class ImageioTransferTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>, IDisposable
{
    private const int MiB = 1024 * 1024;
    private const int MaxRequest = 8 * MiB;
    private const long Size = 64L * MiB;

    private readonly TempDirectory _scratch = new("e2e-imageio");

    /// <param name="throughTicket">
    /// Every data request (OPTIONS, PUT, PATCH, extents, GET) goes to a write ticket's URL from
    /// clients that send no other credential, as imageio's clients do.
    /// </param>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Upload_and_download_like_imageio_reproduce_the_source_image(bool throughTicket)
    {
        string name = throughTicket ? "imageio-ticket" : "imageio";
        var server = fixture.Server;
        var source = _scratch.File("source.qcow2");
        Qemu.CreateQcow2(source, Size, 65536);
        Qemu.Io(source,
            "-c", $"write -P 0x61 0 {3 * MiB + 5}",
            "-c", $"write -P 0x62 {5 * MiB} {20 * MiB}",
            "-c", $"write -z {9 * MiB} {4 * MiB}",          // a zero run inside data
            "-c", $"write -z -u {14 * MiB} {MiB}",
            "-c", $"write -P 0x63 {40 * MiB + 12345} 777",  // unaligned data after a hole
            "-c", $"write -P 0x64 {Size - MiB} {MiB}");     // data up to the end of the disk
        var sourceRaw = _scratch.File("source.raw");
        Qemu.ConvertToRaw(source, sourceRaw);
        var map = Qemu.Map(source);
        Assert.Contains(map, e => e.Data);
        Assert.Contains(map, e => !e.Data && e.Zero);

        await server.Api.CreateAsync(name, Size);
        Func<HttpClient, ImageApi> apiFor = client => new ImageApi(client);
        if (throughTicket)
        {
            var ticket = await server.Api.CreateTicketAsync(name, "write", "10m");
            Assert.Matches("^/tickets/[0-9a-f]{32}/data$", ticket.Url);
            apiFor = client => new ImageApi(client).ThroughTicket(ticket.Url);
        }
        using var control = OneConnection(server);
        var options = await apiFor(control).OptionsAsync(name);
        var features = options.GetProperty("features").EnumerateArray().Select(f => f.GetString()).ToList();
        Assert.Contains("extents", features);
        Assert.Contains("zero", features);
        Assert.Contains("flush", features);
        var connections = Math.Min(4, options.GetProperty("max_writers").GetInt32());
        Assert.True(connections >= 1, $"max_writers in {options}");
        output.WriteLine($"OPTIONS: {options}; uploading over {connections} connections");

        await UploadAsync(server, name, map, sourceRaw, connections, apiFor);

        var uploaded = Qemu.Compare(source, server.ImagePath(name), "-f", "qcow2", "-F", "qcow2");
        Assert.True(uploaded.Identical, $"source vs uploaded image: {uploaded}");
        DiskAssert.CheckIsClean(server.ImagePath(name));

        var downloaded = _scratch.File("downloaded.raw");
        await DownloadAsync(server, name, downloaded, apiFor);
        var roundTrip = Qemu.Compare(source, downloaded, "-f", "qcow2", "-F", "raw");
        Assert.True(roundTrip.Identical, $"source vs downloaded: {roundTrip}");
    }

    private static async Task UploadAsync(ServerProcess server, string name, IReadOnlyList<QemuMapEntry> map, string sourceRaw, int connections,
        Func<HttpClient, ImageApi> apiFor)
    {
        var work = new ConcurrentQueue<(long Offset, long Length, bool Data)>();
        foreach (var extent in map)
        {
            for (long offset = extent.Start; offset < extent.Start + extent.Length; offset += MaxRequest)
            {
                work.Enqueue((offset, Math.Min(MaxRequest, extent.Start + extent.Length - offset), extent.Data));
            }
        }
        using var source = File.OpenHandle(sourceRaw);
        await Task.WhenAll(Enumerable.Range(0, connections).Select(_ => Task.Run(async () =>
        {
            using var client = OneConnection(server);
            var api = apiFor(client);
            var buffer = new byte[MaxRequest];
            while (work.TryDequeue(out var item))
            {
                if (item.Data)
                {
                    var data = buffer.AsMemory(0, (int)item.Length);
                    Assert.Equal(data.Length, RandomAccess.Read(source, data.Span, item.Offset));
                    await api.PutAsync(name, item.Offset, data, flush: false);
                }
                else
                {
                    await api.ZeroAsync(name, item.Offset, item.Length, flush: false);
                }
            }
            await api.FlushAsync(name);
        })));
    }

    private static async Task DownloadAsync(ServerProcess server, string name, string destination, Func<HttpClient, ImageApi> apiFor)
    {
        using var client = OneConnection(server);
        var api = apiFor(client);
        var extents = await api.GetExtentsAsync(name);
        long covered = 0;
        foreach (var e in extents)
        {
            Assert.True(e.Start == covered && e.Length > 0, $"extents do not tile the disk at {covered}: {JsonSerializer.Serialize(extents)}");
            covered += e.Length;
        }
        Assert.Equal(Size, covered); // imageio takes the disk size from the last extent

        using var target = File.OpenHandle(destination, FileMode.Create, FileAccess.Write);
        RandomAccess.SetLength(target, covered);
        foreach (var extent in extents.Where(e => !e.Zero))
        {
            for (long offset = extent.Start; offset < extent.Start + extent.Length; offset += MaxRequest)
            {
                var bytes = await api.GetRangeAsync(name, offset, Math.Min(MaxRequest, extent.Start + extent.Length - offset));
                RandomAccess.Write(target, bytes, offset);
            }
        }
    }

    private static HttpClient OneConnection(ServerProcess server)
        => new(new SocketsHttpHandler { MaxConnectionsPerServer = 1 }) { BaseAddress = server.Client.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };

    public void Dispose() => _scratch.Dispose();
}
