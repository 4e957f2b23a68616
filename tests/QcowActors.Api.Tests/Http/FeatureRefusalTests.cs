using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using QcowActors.Api.Tests.Support;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.Api.Tests.Http;

/// <summary>
/// Feature bits of images qemu-img made: bitmaps (reads and writes served, the bitmaps kept up to
/// date and their autoclear bit kept), external data files and encryption (LUKS and the
/// legacy AES method) refused with a 422 naming the feature, never a 500, while other images in the
/// store are served.
/// </summary>
public sealed class FeatureRefusalTests : IAsyncLifetime
{
    private const int MiB = 1024 * 1024;
    private const int AutoclearOffset = 88;
    private const int CryptMethodOffset = 32;
    private ApiServer _server = null!;

    public async Task InitializeAsync() => _server = await ApiServer.StartWithEngineAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private HttpClient Client => _server.Client;

    private void QemuImg(params string[] args)
        => ProcessRunner.RunChecked(Qemu.QemuImg, args, new ProcessRunOptions { WorkingDirectory = _server.StoreDirectory });

    private async Task<HttpResponseMessage> GetRangeAsync(string name, long offset, long length)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/images/{name}/data");
        request.Headers.Range = new RangeHeaderValue(offset, offset + length - 1);
        return await Client.SendAsync(request);
    }

    private async Task<HttpResponseMessage> PutAsync(string name, long offset, byte[] data)
    {
        var body = new ByteArrayContent(data);
        body.Headers.ContentRange = new ContentRangeHeaderValue(offset, offset + data.Length - 1);
        return await Client.PutAsync($"/images/{name}/data", body);
    }

    /// <summary>Read by another process: this one's file sharing rules stop a second open of an image the in-process server holds.</summary>
    private ulong ReadAutoclear(string name)
    {
        string hex = ProcessRunner.RunChecked("od", ["-An", "-v", "-tx1", $"-j{AutoclearOffset}", "-N8", _server.ImagePath(name)]).Stdout;
        return Convert.ToUInt64(string.Concat(hex.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries)), 16);
    }

    private void PatchHeader(string name, int offset, ReadOnlySpan<byte> bytes)
    {
        using var handle = File.OpenHandle(_server.ImagePath(name), FileMode.Open, FileAccess.Write);
        RandomAccess.Write(handle, bytes, offset);
    }

    private static async Task<JsonElement> AssertRefusedAsync(HttpResponseMessage response, string feature, string detail)
    {
        JsonElement problem = await Problem.AssertAsync(response, HttpStatusCode.UnprocessableEntity, detail);
        Assert.Equal(feature, problem.GetProperty("feature").GetString());
        Assert.DoesNotContain("yet", problem.GetProperty("detail").GetString()!);
        return problem;
    }

    /// <summary>Another image in the same store keeps being served while a refused one is there.</summary>
    private async Task AssertBystanderServedAsync()
    {
        using (HttpResponseMessage created = await Client.PostAsJsonAsync("/images", new { name = "bystander", size = MiB }))
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using (HttpResponseMessage put = await PutAsync("bystander", 0, Enumerable.Repeat((byte)0x7e, 4096).ToArray()))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        using HttpResponseMessage read = await GetRangeAsync("bystander", 0, 4096);
        Assert.Equal(HttpStatusCode.PartialContent, read.StatusCode);
        Assert.All(await read.Content.ReadAsByteArrayAsync(), b => Assert.Equal(0x7e, b));
        using HttpResponseMessage list = await Client.GetAsync("/images");
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
    }

    [Fact]
    public async Task Bitmaps_stay_consistent_for_QEMU_they_are_in_use_while_written_and_clean_after_close()
    {
        QemuImg("create", "-q", "-f", "qcow2", "marked.qcow2", "4M");
        QemuImg("bitmap", "--add", "marked.qcow2", "b0");
        Qemu.Io(_server.ImagePath("marked"), "-c", "write -P 0x33 0 64k");
        Assert.Equal(1UL, ReadAutoclear("marked") & 1); // qemu-img says the bitmaps are consistent

        using (HttpResponseMessage read = await GetRangeAsync("marked", 0, 65536))
        {
            Assert.Equal(HttpStatusCode.PartialContent, read.StatusCode);
            Assert.All(await read.Content.ReadAsByteArrayAsync(), b => Assert.Equal(0x33, b));
        }
        using (HttpResponseMessage put = await PutAsync("marked", 0, new byte[4096])) Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        using (HttpResponseMessage patch = await Client.PatchAsJsonAsync("/images/marked/data", new { op = "zero", offset = 65536, size = 65536 }))
            Assert.Equal(HttpStatusCode.OK, patch.StatusCode);

        // Written while open: the bit stays (QEMU would drop the bitmaps without it), the bitmap is in use.
        string path = _server.ImagePath("marked");
        Assert.Equal(1UL, ReadAutoclear("marked") & 1);
        JsonElement bitmaps = Qemu.Info(path).GetProperty("format-specific").GetProperty("data").GetProperty("bitmaps");
        Assert.Contains("in-use", bitmaps[0].GetProperty("flags").EnumerateArray().Select(f => f.GetString()));

        using (HttpResponseMessage close = await Client.PostAsync("/images/marked/close", null)) Assert.Equal(HttpStatusCode.NoContent, close.StatusCode);
        Assert.Equal(1UL, ReadAutoclear("marked") & 1);
        Assert.True(Qemu.Check(path).IsClean, Qemu.Check(path).ToString());
        bitmaps = Qemu.Info(path).GetProperty("format-specific").GetProperty("data").GetProperty("bitmaps");
        Assert.Equal("b0", bitmaps[0].GetProperty("name").GetString());
        Assert.DoesNotContain("in-use", bitmaps[0].GetProperty("flags").EnumerateArray().Select(f => f.GetString()));
    }

    [Fact]
    public async Task Unknown_autoclear_bits_are_cleared_on_a_writable_open_and_bit_0_is_kept()
    {
        QemuImg("create", "-q", "-f", "qcow2", "flags.qcow2", "4M");
        // Bit 0 without a bitmaps extension claims nothing; bit 5 is unknown to everyone.
        var bits = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bits, 1UL | (1UL << 5));
        PatchHeader("flags", AutoclearOffset, bits);

        using (HttpResponseMessage put = await PutAsync("flags", 0, Enumerable.Repeat((byte)0x44, 4096).ToArray()))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(1UL, ReadAutoclear("flags"));
        Assert.True(Qemu.Check(_server.ImagePath("flags")).IsClean);
    }

    [Fact]
    public async Task External_data_file_is_422_naming_the_feature_for_reads_and_writes()
    {
        QemuImg("create", "-q", "-f", "qcow2", "-o", "data_file=outside.raw", "split.qcow2", "64M");

        JsonElement problem = await AssertRefusedAsync(await GetRangeAsync("split", 0, 4096), "external data file", "external data file");
        Assert.Contains("outside.raw", problem.GetProperty("detail").GetString());
        await AssertRefusedAsync(await PutAsync("split", 0, new byte[4096]), "external data file", "external data file");
        await AssertBystanderServedAsync();
        QemuImg("check", "-U", "split.qcow2"); // exit 0: clean, and outside.raw untouched beside it
    }

    [Fact]
    public async Task Luks_encrypted_image_is_422_naming_encryption()
    {
        string[] create = ["create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=123456",
            "-o", "encrypt.format=luks,encrypt.key-secret=sec0", "locked.qcow2", "64M"];
        // qemu-img times its key derivation on the thread's CPU clock and gives up when a busy machine
        // reports no progress ("Unable to get accurate CPU usage"): the oracle's flake, tried again.
        for (int attempt = 1; ; attempt++)
        {
            var made = ProcessRunner.Run(Qemu.QemuImg, create, new ProcessRunOptions { WorkingDirectory = _server.StoreDirectory });
            if (made.ExitCode == 0) break;
            Assert.True(attempt < 5 && made.Output.Contains("Unable to get accurate CPU usage"), $"qemu-img create: {made}");
        }

        await AssertRefusedAsync(await GetRangeAsync("locked", 0, 4096), "encryption", "LUKS");
        await AssertRefusedAsync(await PutAsync("locked", 0, new byte[4096]), "encryption", "encrypted");
        await AssertRefusedAsync(await Client.GetAsync("/images/locked"), "encryption", "encrypted");
        await AssertBystanderServedAsync();
    }

    /// <summary>qemu-img 7.2 no longer creates AES images: a plain one with crypt_method patched to 1 stands in.</summary>
    [Fact]
    public async Task Legacy_aes_encrypted_image_is_422_naming_encryption()
    {
        QemuImg("create", "-q", "-f", "qcow2", "aes.qcow2", "64M");
        var method = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(method, 1);
        PatchHeader("aes", CryptMethodOffset, method);
        Assert.Contains("\"encrypted\": true", ProcessRunner.RunChecked(Qemu.QemuImg, ["info", "-U", "--output=json", _server.ImagePath("aes")]).Stdout);

        await AssertRefusedAsync(await GetRangeAsync("aes", 0, 4096), "encryption", "AES");
        await AssertRefusedAsync(await PutAsync("aes", 0, new byte[4096]), "encryption", "encrypted");
        await AssertBystanderServedAsync();
    }
}
