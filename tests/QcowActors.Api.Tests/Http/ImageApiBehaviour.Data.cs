using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using QcowActors.Api.Tests.Support;
using Xunit;

namespace QcowActors.Api.Tests.Http;

/// <summary>/images/{name}/data: ranges, HEAD, PUT.</summary>
public abstract partial class ImageApiBehaviour
{
    [Fact]
    public async Task Head_announces_byte_ranges_and_the_disk_size()
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage response = await GetAsync(name, method: HttpMethod.Head);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("bytes", Assert.Single(response.Headers.AcceptRanges));
        Assert.Equal(DiskSize, response.Content.Headers.ContentLength);
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Head_with_a_range_answers_like_get_without_the_body()
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage response = await GetAsync(name, "bytes=100-199", HttpMethod.Head);

        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        Assert.Equal(100, response.Content.Headers.ContentLength);
        Assert.Equal($"bytes 100-199/{DiskSize}", response.Content.Headers.ContentRange?.ToString());
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Get_without_range_streams_the_whole_disk()
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage response = await GetAsync(name);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("bytes", Assert.Single(response.Headers.AcceptRanges));
        Assert.Equal(DiskSize, response.Content.Headers.ContentLength);
        byte[] body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(DiskSize, body.Length);
        Assert.All(body, b => Assert.Equal(0, b));
    }

    [Theory]
    [InlineData("bytes=0-99", 0, 100)]
    [InlineData("bytes=4194000-", 4194000, 304)]
    [InlineData("bytes=-304", 4194000, 304)]
    [InlineData("bytes=4194000-99999999", 4194000, 304)]
    [InlineData("bytes=0-0", 0, 1)]
    public async Task Get_with_one_range_is_206_with_content_range(string range, long first, long length)
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage response = await GetAsync(name, range);

        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        Assert.Equal($"bytes {first}-{first + length - 1}/{DiskSize}", response.Content.Headers.ContentRange?.ToString());
        Assert.Equal(length, response.Content.Headers.ContentLength);
        Assert.Equal(length, (await response.Content.ReadAsByteArrayAsync()).Length);
    }

    [Theory]
    [InlineData("bytes=4194304-")]
    [InlineData("bytes=5000000-6000000")]
    [InlineData("bytes=-0")]
    public async Task Get_range_outside_the_disk_is_416_with_the_size(string range)
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage response = await GetAsync(name, range);

        await Problem.AssertAsync(response, HttpStatusCode.RequestedRangeNotSatisfiable);
        Assert.Equal($"bytes */{DiskSize}", response.Content.Headers.ContentRange?.ToString());
    }

    [Fact]
    public async Task Get_with_multiple_ranges_is_416_saying_so()
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage response = await GetAsync(name, "bytes=0-1,5-6");
        await Problem.AssertAsync(response, HttpStatusCode.RequestedRangeNotSatisfiable, "multiple ranges");
    }

    [Theory]
    [InlineData("bytes=5-1")]
    [InlineData("bytes=abc")]
    [InlineData("pages=0-1")]
    public async Task Get_with_an_invalid_range_ignores_it(string range)
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage response = await GetAsync(name, range);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(DiskSize, (await response.Content.ReadAsByteArrayAsync()).Length);
    }

    [Fact]
    public async Task Get_of_an_unknown_image_is_404()
        => await Problem.AssertAsync(await GetAsync("nothere", "bytes=0-1"), HttpStatusCode.NotFound);

    [Fact]
    public async Task Put_then_get_round_trips_the_bytes()
    {
        string name = await CreateImageAsync();
        byte[] data = Bodies.Pattern(MiB + 12345, 1);
        using (HttpResponseMessage put = await PutAsync(name, 65536 + 7, new ByteArrayContent(data)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        Assert.Equal(data, await ReadAsync(name, 65536 + 7, data.Length));
        Assert.All(await ReadAsync(name, 0, 65536 + 7), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Put_without_content_range_writes_from_offset_zero()
    {
        string name = await CreateImageAsync();
        byte[] data = Bodies.Pattern(100_000, 2);
        using (HttpResponseMessage put = await PutAsync(name, null, new ByteArrayContent(data)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(data, await ReadAsync(name, 0, data.Length));
    }

    [Fact]
    public async Task Put_with_complete_length_equal_to_the_disk_size_is_accepted()
    {
        string name = await CreateImageAsync();
        byte[] data = Bodies.Pattern(1000, 3);
        using HttpResponseMessage put = await PutAsync(name, 5000, new ByteArrayContent(data), completeLength: DiskSize);
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(data, await ReadAsync(name, 5000, data.Length));
    }

    [Fact]
    public async Task Put_with_a_chunked_body_and_content_range_writes_it()
    {
        string name = await CreateImageAsync();
        byte[] data = Bodies.Pattern(3 * MiB / 2, 4);
        using var request = new HttpRequestMessage(HttpMethod.Put, $"/images/{name}/data") { Content = new ChunkedContent(data) };
        request.Content.Headers.ContentRange = new ContentRangeHeaderValue(MiB, MiB + data.Length - 1);
        using HttpResponseMessage put = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(data, await ReadAsync(name, MiB, data.Length));
    }

    [Fact]
    public async Task Put_with_a_chunked_body_and_no_content_range_writes_from_zero()
    {
        string name = await CreateImageAsync();
        byte[] data = Bodies.Pattern(300_000, 5);
        using HttpResponseMessage put = await PutAsync(name, null, new ChunkedContent(data));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(data, await ReadAsync(name, 0, data.Length));
    }

    [Fact]
    public async Task Put_of_a_chunked_body_past_the_end_of_the_disk_is_413()
    {
        string name = await CreateImageAsync(MiB);
        using HttpResponseMessage put = await PutAsync(name, null, new ChunkedContent(new byte[MiB + 1]));
        await Problem.AssertAsync(put, HttpStatusCode.RequestEntityTooLarge, "past the end");
    }

    [Fact]
    public async Task Put_answers_exactly_200_never_204()
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage put = await PutAsync(name, 0, new ByteArrayContent(new byte[10]), "?flush=n");
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
    }

    [Theory]
    [InlineData("?flush=y")]
    [InlineData("?flush=n")]
    [InlineData("?flush=true")]
    [InlineData("?flush=0")]
    public async Task Put_takes_every_flush_spelling(string query)
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage put = await PutAsync(name, 0, new ByteArrayContent(new byte[10]), query);
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
    }

    [Fact]
    public async Task Put_with_an_unknown_flush_value_is_400()
    {
        string name = await CreateImageAsync();
        await Problem.AssertAsync(await PutAsync(name, 0, new ByteArrayContent(new byte[10]), "?flush=later"), HttpStatusCode.BadRequest, "flush");
    }

    [Fact]
    public async Task Put_past_end_of_disk_is_416()
    {
        string name = await CreateImageAsync();
        byte[] data = Bodies.Pattern(1000, 6);
        using HttpResponseMessage put = await PutAsync(name, DiskSize - 999, new ByteArrayContent(data));

        await Problem.AssertAsync(put, HttpStatusCode.RequestedRangeNotSatisfiable, "past the end");
        Assert.Equal($"bytes */{DiskSize}", put.Content.Headers.ContentRange?.ToString());
        Assert.All(await ReadAsync(name, DiskSize - 999, 999), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Put_without_content_range_longer_than_the_disk_is_416()
    {
        string name = await CreateImageAsync(MiB);
        await Problem.AssertAsync(await PutAsync(name, null, new ByteArrayContent(new byte[MiB + 1])), HttpStatusCode.RequestedRangeNotSatisfiable);
    }

    [Fact]
    public async Task Put_with_a_complete_length_other_than_the_disk_size_is_416()
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage put = await PutAsync(name, 0, new ByteArrayContent(new byte[10]), completeLength: DiskSize * 2);
        await Problem.AssertAsync(put, HttpStatusCode.RequestedRangeNotSatisfiable, "complete length");
        Assert.Equal($"bytes */{DiskSize}", put.Content.Headers.ContentRange?.ToString());
    }

    [Fact]
    public async Task Put_with_content_length_unlike_the_content_range_is_400()
    {
        string name = await CreateImageAsync();
        var body = new ByteArrayContent(new byte[100]);
        body.Headers.ContentRange = new ContentRangeHeaderValue(0, 199);
        using var request = new HttpRequestMessage(HttpMethod.Put, $"/images/{name}/data") { Content = body };
        await Problem.AssertAsync(await Client.SendAsync(request), HttpStatusCode.BadRequest, "Content-Length");
    }

    [Fact]
    public async Task Put_with_a_chunked_body_shorter_than_its_content_range_is_400_and_not_flushed()
    {
        string name = await CreateImageAsync();
        var body = new ChunkedContent(new byte[500]);
        body.Headers.ContentRange = new ContentRangeHeaderValue(0, 999);
        using var request = new HttpRequestMessage(HttpMethod.Put, $"/images/{name}/data") { Content = body };
        await Problem.AssertAsync(await Client.SendAsync(request), HttpStatusCode.BadRequest, "500 bytes");
    }

    [Fact]
    public async Task Put_with_a_chunked_body_longer_than_its_content_range_is_400()
    {
        string name = await CreateImageAsync();
        var body = new ChunkedContent(Enumerable.Repeat((byte)0xAB, 1500).ToArray());
        body.Headers.ContentRange = new ContentRangeHeaderValue(0, 999);
        using var request = new HttpRequestMessage(HttpMethod.Put, $"/images/{name}/data") { Content = body };
        await Problem.AssertAsync(await Client.SendAsync(request), HttpStatusCode.BadRequest, "longer");
        Assert.All(await ReadAsync(name, 0, 1000), b => Assert.Equal(0, b));
    }

    [Theory]
    [InlineData("bytes 0-9")]
    [InlineData("bytes */100")]
    [InlineData("bytes 9-0/*")]
    [InlineData("0-9/*")]
    public async Task Put_with_a_malformed_content_range_is_400(string contentRange)
    {
        string name = await CreateImageAsync();
        var body = new ByteArrayContent(new byte[10]);
        body.Headers.TryAddWithoutValidation("Content-Range", contentRange);
        using var request = new HttpRequestMessage(HttpMethod.Put, $"/images/{name}/data") { Content = body };
        await Problem.AssertAsync(await Client.SendAsync(request), HttpStatusCode.BadRequest, "Content-Range");
    }

    [Fact]
    public async Task Put_to_an_unknown_image_is_404()
        => await Problem.AssertAsync(await PutAsync("nothere", 0, new ByteArrayContent(new byte[10])), HttpStatusCode.NotFound);

    [Fact]
    public async Task Put_body_larger_than_kestrels_default_limit_is_accepted()
    {
        // Kestrel refuses bodies over 30,000,000 bytes unless the endpoint lifts the limit.
        string name = await CreateImageAsync(40 * MiB);
        byte[] data = Bodies.Pattern(32 * MiB, 7);
        using (HttpResponseMessage put = await PutAsync(name, 0, new ByteArrayContent(data), "?flush=n"))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(data.AsSpan(31 * MiB).ToArray(), await ReadAsync(name, 31 * MiB, MiB));
    }
}
