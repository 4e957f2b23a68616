using System.Net;
using System.Net.Http.Headers;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// A store on a real small file system (a tmpfs this test mounts) that fills up: writes answer 507,
/// the image stays consistent, and writes succeed again once space is freed. Mounting needs root
/// (CI runs as root); where it cannot mount, the test fails saying so — it never skips.
/// </summary>
public sealed class DiskFullTests(ITestOutputHelper output) : IDisposable
{
    private const int MiB = 1024 * 1024;
    private readonly TempDirectory _mountPoint = new("qcowactors-full");
    private bool _mounted;

    /// <summary>As root directly, otherwise through sudo without a password (as scripts/test.sh installs packages).</summary>
    private static ProcessResult AsRoot(string command, params string[] args)
        => Environment.UserName == "root" ? ProcessRunner.Run(command, args) : ProcessRunner.Run("sudo", ["-n", command, .. args]);

    private void Mount()
    {
        var mount = AsRoot("mount", "-t", "tmpfs", "-o", "size=40m,mode=1777", "tmpfs", _mountPoint.Path);
        Assert.True(mount.ExitCode == 0, $"this test mounts a 40 MiB tmpfs and needs root (or sudo without a password) to do so: {mount}");
        _mounted = true;
    }

    public void Dispose()
    {
        if (_mounted) AsRoot("umount", "-l", _mountPoint.Path);
        _mountPoint.Dispose();
    }

    private static HttpRequestMessage Put(ServerProcess server, string name, long offset, byte[] data)
    {
        var request = new HttpRequestMessage(HttpMethod.Put, server.DataUrl(name)) { Content = new ByteArrayContent(data) };
        request.Content.Headers.ContentRange = new ContentRangeHeaderValue(offset, offset + data.Length - 1);
        return request;
    }

    [Fact]
    public async Task A_full_disk_answers_507_keeps_the_image_consistent_and_writes_succeed_once_space_is_freed()
    {
        Mount();
        string store = Path.Combine(_mountPoint.Path, "store");
        Directory.CreateDirectory(store);
        await using var server = await ServerProcess.StartAsync(new ServerOptions { StoreDirectory = store });
        await server.Api.CreateAsync("vm", 64L * MiB);
        using var model = DiskModel.InMemory(64L * MiB);
        string filler = Path.Combine(_mountPoint.Path, "filler");
        ProcessRunner.RunChecked("fallocate", ["-l", "28M", filler]);

        // Flushed 1 MiB writes at scattered offsets until the file system is full.
        var rng = new Random(507);
        int accepted = 0;
        HttpStatusCode last = HttpStatusCode.OK;
        string problem = "";
        for (int i = 0; i < 64 && last == HttpStatusCode.OK; i++)
        {
            long offset = (long)rng.Next(0, 60) * MiB;
            var data = RandomWorkload.Data(rng, MiB);
            using var response = await server.Client.SendAsync(Put(server, "vm", offset, data));
            last = response.StatusCode;
            problem = await response.Content.ReadAsStringAsync();
            if (last == HttpStatusCode.OK)
            {
                model.Write(offset, data);
                accepted++;
            }
        }
        output.WriteLine($"{accepted} MiB accepted before: {(int)last} {problem}");
        Assert.Equal(HttpStatusCode.InsufficientStorage, last);
        Assert.Contains("no space left", problem);
        Assert.True(accepted > 0, "some writes fit before the disk was full");

        // Every acknowledged byte reads back while the disk is full.
        await DiskAssert.ServedDiskMatchesAsync(server.Api, "vm", model);

        // Space back: writes succeed, and the image closes clean and equal to the model.
        File.Delete(filler);
        var more = RandomWorkload.Data(rng, MiB);
        await server.Api.PutAsync("vm", 62L * MiB, more);
        model.Write(62L * MiB, more);
        using (var close = await server.Client.PostAsync("images/vm/close", null))
            Assert.Equal(HttpStatusCode.NoContent, close.StatusCode);
        DiskAssert.CheckIsClean(server.ImagePath("vm"));
        await DiskAssert.ServedDiskMatchesAsync(server.Api, "vm", model);
    }
}
