using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using QcowActors.Api.Tests.Support;
using Xunit;

namespace QcowActors.Api.Tests.Http;

/// <summary>The imageio protocol: OPTIONS, PATCH zero/flush, extents.</summary>
public abstract partial class ImageApiBehaviour
{
    private async Task<HttpResponseMessage> PatchAsync(string name, string json)
        => await Client.SendAsync(new HttpRequestMessage(HttpMethod.Patch, $"/images/{name}/data") { Content = Json(json) });

    [Fact]
    public async Task Options_lists_imageio_features_and_allowed_methods()
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage response = await Client.SendAsync(new HttpRequestMessage(HttpMethod.Options, $"/images/{name}/data"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(["OPTIONS", "GET", "HEAD", "PUT", "PATCH"], response.Content.Headers.Allow);
        JsonElement body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(["extents", "zero", "flush", "checksum"], body.GetProperty("features").EnumerateArray().Select(f => f.GetString()));
        Assert.True(body.GetProperty("max_readers").GetInt32() >= 1);
        Assert.True(body.GetProperty("max_writers").GetInt32() >= 4);
        Assert.False(body.TryGetProperty("unix_socket", out _), "a unix_socket key makes local imageio clients switch to it");
    }

    [Fact]
    public async Task Options_of_an_unknown_image_is_404()
        => await Problem.AssertAsync(
            await Client.SendAsync(new HttpRequestMessage(HttpMethod.Options, "/images/nothere/data")), HttpStatusCode.NotFound);

    [Fact]
    public async Task Patch_zero_makes_the_range_read_as_zeros()
    {
        string name = await CreateImageAsync();
        byte[] data = Bodies.Pattern(3 * MiB, 8);
        using (HttpResponseMessage put = await PutAsync(name, 0, new ByteArrayContent(data), "?flush=n"))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        using (HttpResponseMessage zero = await PatchAsync(name, $$"""{"op":"zero","offset":{{MiB - 100}},"size":{{MiB + 200}},"flush":true}"""))
            Assert.Equal(HttpStatusCode.OK, zero.StatusCode);

        byte[] after = await ReadAsync(name, 0, 3 * MiB);
        Assert.Equal(data.AsSpan(0, MiB - 100).ToArray(), after.AsSpan(0, MiB - 100).ToArray());
        Assert.All(after.AsSpan(MiB - 100, MiB + 200).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(data.AsSpan(2 * MiB + 100).ToArray(), after.AsSpan(2 * MiB + 100).ToArray());
    }

    [Fact]
    public async Task Patch_flush_is_200()
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage response = await PatchAsync(name, """{"op":"flush"}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Patch_zero_past_the_end_of_the_disk_is_416()
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage response = await PatchAsync(name, $$"""{"op":"zero","offset":{{DiskSize - 10}},"size":11}""");
        await Problem.AssertAsync(response, HttpStatusCode.RequestedRangeNotSatisfiable);
        Assert.Equal($"bytes */{DiskSize}", response.Content.Headers.ContentRange?.ToString());
    }

    [Theory]
    [InlineData("""{"op":"trim"}""", "not supported")]
    [InlineData("""{"op":"zero","offset":0}""", "size is required")]
    [InlineData("""{"op":"zero","offset":"a","size":1}""", "offset")]
    [InlineData("""{"op":""", "malformed JSON")]
    [InlineData("""42""", "JSON object")]
    public async Task Patch_with_a_bad_body_is_400(string json, string detail)
    {
        string name = await CreateImageAsync();
        await Problem.AssertAsync(await PatchAsync(name, json), HttpStatusCode.BadRequest, detail);
    }

    [Fact]
    public async Task Patch_on_an_unknown_image_is_404()
        => await Problem.AssertAsync(await PatchAsync("nothere", """{"op":"flush"}"""), HttpStatusCode.NotFound);

    [Theory]
    [InlineData("")]
    [InlineData("?context=zero")]
    public async Task Extents_cover_the_whole_disk_and_show_written_data(string query)
    {
        string name = await CreateImageAsync();
        using (HttpResponseMessage put = await PutAsync(name, MiB, new ByteArrayContent(Bodies.Pattern(MiB, 9))))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        JsonElement extents = await Client.GetFromJsonAsync<JsonElement>($"/images/{name}/data/extents{query}");

        long next = 0;
        foreach (JsonElement extent in extents.EnumerateArray())
        {
            Assert.Equal(next, extent.GetProperty("start").GetInt64());
            next += extent.GetProperty("length").GetInt64();
            _ = extent.GetProperty("zero").GetBoolean();
            _ = extent.GetProperty("hole").GetBoolean();
        }
        Assert.Equal(DiskSize, next);
        Assert.Contains(extents.EnumerateArray(), e =>
            !e.GetProperty("zero").GetBoolean()
            && e.GetProperty("start").GetInt64() <= MiB
            && e.GetProperty("start").GetInt64() + e.GetProperty("length").GetInt64() >= 2 * MiB);
        Assert.True(extents[0].GetProperty("zero").GetBoolean(), "the unwritten first MiB reads as zeros");
    }

    [Fact]
    public async Task Dirty_extents_are_404_saying_they_are_not_supported()
    {
        string name = await CreateImageAsync();
        await Problem.AssertAsync(await Client.GetAsync($"/images/{name}/data/extents?context=dirty"), HttpStatusCode.NotFound, "dirty");
    }

    [Fact]
    public async Task Extents_with_an_unknown_context_are_400()
    {
        string name = await CreateImageAsync();
        await Problem.AssertAsync(await Client.GetAsync($"/images/{name}/data/extents?context=other"), HttpStatusCode.BadRequest, "context");
    }

    [Fact]
    public async Task Extents_of_an_unknown_image_are_404()
        => await Problem.AssertAsync(await Client.GetAsync("/images/nothere/data/extents"), HttpStatusCode.NotFound);
}
