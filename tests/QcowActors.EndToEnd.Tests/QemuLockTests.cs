using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// The server and QEMU's tools honour each other's locks (QEMU's OFD byte-range locks): never two
/// writers on one image file, and never a read of an image QEMU is changing.
/// </summary>
public sealed class QemuLockTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const int MiB = 1024 * 1024;

    [Fact]
    public async Task Qemu_cannot_write_or_check_an_image_the_server_has_open_until_it_is_closed()
    {
        const string name = "locked-by-server";
        string path = fixture.Server.ImagePath(name);
        Qemu.CreateQcow2(path, 16L * MiB);
        await fixture.Server.Api.PutAsync(name, 0, new byte[] { 1, 2, 3 });

        var write = ProcessRunner.Run(Qemu.QemuIo, ["-f", "qcow2", "-c", "write -P 0x77 0 4k", path]);
        Assert.Contains("lock", write.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Equal([1, 2, 3], await fixture.Server.Api.GetRangeAsync(name, 0, 3)); // qemu-io wrote nothing
        var check = ProcessRunner.Run(Qemu.QemuImg, ["check", "-f", "qcow2", path]);
        Assert.NotEqual(0, check.ExitCode);
        Assert.Contains("lock", check.Output, StringComparison.OrdinalIgnoreCase);
        Assert.True(Qemu.Check(path).IsClean); // -U shares: it reads alongside the server

        using (var close = await fixture.Server.Client.PostAsync($"images/{name}/close", null))
            Assert.Equal(HttpStatusCode.NoContent, close.StatusCode);
        var after = ProcessRunner.Run(Qemu.QemuImg, ["check", "-f", "qcow2", path]);
        Assert.True(after.ExitCode == 0, after.ToString());
    }

    [Fact]
    public async Task Delete_takes_the_images_locks_first_an_image_qemu_writes_or_another_process_holds_is_not_unlinked()
    {
        const string name = "delete-held";
        string path = fixture.Server.ImagePath(name);
        Qemu.CreateQcow2(path, 16L * MiB);
        var psi = new ProcessStartInfo(Qemu.QemuIo) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "-f", "qcow2", "-c", "write -P 0x5b 0 64k", "-c", "sleep 600000", path }) psi.ArgumentList.Add(a);
        using (var qemu = Process.Start(psi)!)
        {
            try
            {
                var deadline = DateTime.UtcNow.AddSeconds(20);
                while (!Qemu.Map(path).Any(e => e.Data) && DateTime.UtcNow < deadline) await Task.Delay(100);
                using var refused = await fixture.Server.Client.DeleteAsync($"images/{name}");
                Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
                Assert.True(File.Exists(path), "the file QEMU writes is still there");
            }
            finally
            {
                qemu.Kill();
                await qemu.WaitForExitAsync();
            }
        }
        // Another process holding the cluster's lock (flock): 503, the file stays.
        using (var holder = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            using var refused = await fixture.Server.Client.DeleteAsync($"images/{name}");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.True(File.Exists(path));
        }
        using (var deleted = await fixture.Server.Client.DeleteAsync($"images/{name}"))
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task An_image_qemu_holds_open_for_writing_is_409_until_qemu_lets_go()
    {
        const string name = "locked-by-qemu";
        string path = fixture.Server.ImagePath(name);
        Qemu.CreateQcow2(path, 16L * MiB);
        var psi = new ProcessStartInfo(Qemu.QemuIo) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "-f", "qcow2", "-c", "write -P 0x5a 0 64k", "-c", "sleep 600000", path }) psi.ArgumentList.Add(a);
        using var qemu = Process.Start(psi)!;
        try
        {
            // Wait until qemu-io holds the image (its write is done: qemu-img with -U sees the data).
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!Qemu.Map(path).Any(e => e.Data) && DateTime.UtcNow < deadline) await Task.Delay(100);
            Assert.False(qemu.HasExited, "qemu-io is holding the image");

            using var get = new HttpRequestMessage(HttpMethod.Get, fixture.Server.DataUrl(name));
            get.Headers.Range = new RangeHeaderValue(0, 4095);
            using var refused = await fixture.Server.Client.SendAsync(get);
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            string problem = await refused.Content.ReadAsStringAsync();
            Assert.Contains("write permission", problem);
            using var put = new HttpRequestMessage(HttpMethod.Put, fixture.Server.DataUrl(name)) { Content = new ByteArrayContent([9]) };
            put.Content.Headers.ContentRange = new ContentRangeHeaderValue(0, 0);
            using var refusedPut = await fixture.Server.Client.SendAsync(put);
            Assert.Equal(HttpStatusCode.Conflict, refusedPut.StatusCode);
        }
        finally
        {
            qemu.Kill();
            await qemu.WaitForExitAsync();
        }

        // qemu-io is gone: the server opens the image and serves what qemu-io wrote.
        Assert.All(await fixture.Server.Api.GetRangeAsync(name, 0, 65536), b => Assert.Equal(0x5a, b));
        await fixture.Server.Api.PutAsync(name, 0, new byte[] { 9 });
        Assert.Equal(9, (await fixture.Server.Api.GetRangeAsync(name, 0, 1))[0]);
    }
}
