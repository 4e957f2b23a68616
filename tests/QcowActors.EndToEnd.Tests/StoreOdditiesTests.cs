using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Entries of the store that are not image files — a FIFO, a socket, a directory, an unreadable
/// file, a symbolic link to a valid image outside the store, all named *.qcow2 — are skipped by the
/// listing and refused with a reason, without blocking anything: a FIFO once wedged the whole store.
/// </summary>
public sealed class StoreOdditiesTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const int MiB = 1024 * 1024;
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(1);
    private ServerProcess Server => fixture.Server;

    private async Task<(HttpResponseMessage Response, TimeSpan Took)> TimedAsync(HttpRequestMessage request)
    {
        var clock = Stopwatch.StartNew();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10)); // a hang fails, it does not stall the suite
        var response = await Server.Client.SendAsync(request, cts.Token);
        return (response, clock.Elapsed);
    }

    [Fact]
    public async Task Fifos_sockets_directories_unreadable_files_and_links_are_skipped_and_refused_and_wedge_nothing()
    {
        string store = Server.StoreDirectory;
        using var outside = new TempDirectory("outside-store");
        string valid = outside.File("valid.qcow2");
        Qemu.Create(valid, MiB);
        Qemu.Io(valid, "-c", "write -P 0x61 0 64k");

        ProcessRunner.RunChecked("mkfifo", [Path.Combine(store, "odd-fifo.qcow2")]);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(Path.Combine(store, "odd-socket.qcow2")));
        Directory.CreateDirectory(Path.Combine(store, "odd-dir.qcow2"));
        string unreadable = Path.Combine(store, "odd-unreadable.qcow2");
        File.WriteAllBytes(unreadable, new byte[4096]);
        ProcessRunner.RunChecked("chmod", ["000", unreadable]);
        File.CreateSymbolicLink(Path.Combine(store, "odd-link.qcow2"), valid);
        ProcessRunner.RunChecked("mkfifo", [Path.Combine(store, "odd-raw.raw")]);
        await Server.Api.CreateAsync("normal", 4L * MiB);
        await Server.Api.PutAsync("normal", 0, new byte[] { 1, 2, 3 });

        var (list, listTook) = await TimedAsync(new HttpRequestMessage(HttpMethod.Get, "images"));
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        Assert.True(listTook < Quick, $"the listing took {listTook}");
        string listed = await list.Content.ReadAsStringAsync();
        Assert.Contains("\"normal\"", listed);
        Assert.DoesNotContain("odd-", listed);

        var reasons = new Dictionary<string, string>
        {
            ["odd-fifo"] = "FIFO", ["odd-socket"] = "socket", ["odd-dir"] = "directory",
            ["odd-unreadable"] = "", ["odd-link"] = "symbolic link", ["odd-raw"] = "FIFO",
        };
        foreach (var (name, reason) in reasons)
        {
            foreach (var method in new[] { HttpMethod.Get, HttpMethod.Put })
            {
                var request = new HttpRequestMessage(method, Server.DataUrl(name));
                if (method == HttpMethod.Put)
                {
                    request.Content = new ByteArrayContent([9]);
                    request.Content.Headers.ContentRange = new ContentRangeHeaderValue(0, 0);
                }
                else
                {
                    request.Headers.Range = new RangeHeaderValue(0, 4095);
                }
                var (response, took) = await TimedAsync(request);
                string body = await response.Content.ReadAsStringAsync();
                Assert.True(took < Quick, $"{method} {name} took {took}");
                Assert.True((int)response.StatusCode is >= 400 and < 500, $"{method} {name}: {(int)response.StatusCode} {body}");
                Assert.Contains("\"detail\"", body);
                Assert.True(body.Contains(reason), $"{method} {name}: {body}");
            }
        }
        // Nothing was followed: the image outside the store is unchanged and not held.
        Assert.Equal(0, ProcessRunner.Run(Qemu.QemuImg, ["check", valid]).ExitCode);
        Assert.Equal([1, 2, 3], await Server.Api.GetRangeAsync("normal", 0, 3));

        // Gone again: names free, nothing wedged.
        foreach (var odd in Directory.EnumerateFileSystemEntries(store, "odd-*")) if (Directory.Exists(odd) && !File.Exists(odd) && new FileInfo(odd).LinkTarget is null) Directory.Delete(odd); else File.Delete(odd);
        foreach (var name in new[] { "odd-fifo", "odd-dir", "odd-link" })
        {
            await Server.Api.CreateAsync(name, MiB);
            await Server.Api.PutAsync(name, 0, new byte[] { 7 });
            Assert.Equal([7], await Server.Api.GetRangeAsync(name, 0, 1));
        }
        var (again, againTook) = await TimedAsync(new HttpRequestMessage(HttpMethod.Get, "images"));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.True(againTook < Quick, $"the listing took {againTook}");
    }
}
