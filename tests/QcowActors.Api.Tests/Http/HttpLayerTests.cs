using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using QcowActors.Actors.Service;
using QcowActors.Api.Tests.Support;
using QcowActors.Format;
using Xunit;

namespace QcowActors.Api.Tests.Http;

/// <summary>
/// What only a controllable store can show: error mapping, failures mid-stream, the chunks the
/// engine receives, clients that vanish. Runs on the in-memory store.
/// </summary>
public sealed class HttpLayerTests : IAsyncLifetime
{
    private const int MiB = 1024 * 1024;
    private ApiServer _server = null!;

    private InMemoryImageService Store => _server.Memory!;

    public async Task InitializeAsync() => _server = await ApiServer.StartInMemoryAsync("Storage:MaxWriteChunk=2097152");

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private async Task CreateAsync(string name, long size)
        => await Store.CreateAsync(name, size, null, null, default);

    public static TheoryData<ImageError, int> EngineErrors() => new()
    {
        { ImageError.InvalidArgument, 400 },
        { ImageError.LimitExceeded, 400 },
        { ImageError.NotFound, 404 },
        { ImageError.AlreadyExists, 409 },
        { ImageError.Conflict, 409 },
        { ImageError.OutOfRange, 416 },
        { ImageError.Unsupported, 422 },
        { ImageError.DiskFull, 507 },
        { ImageError.Unavailable, 503 },
    };

    [Theory]
    [MemberData(nameof(EngineErrors))]
    public async Task Engine_errors_become_problems_with_the_status_a_client_can_act_on(ImageError error, int status)
    {
        await CreateAsync("vm", MiB);
        Store.FailAll = new ImageException(error, $"engine says {error}");
        JsonElement problem = await Problem.AssertAsync(await _server.Client.GetAsync("/images/vm"), (HttpStatusCode)status, $"engine says {error}");
        Assert.StartsWith("https://", problem.GetProperty("type").GetString());
    }

    [Fact]
    public async Task Unsupported_feature_is_422_naming_the_feature()
    {
        await CreateAsync("vm", MiB);
        Store.FailPlan = new ImageException(ImageError.Unsupported, "compressed clusters are not supported yet", "compressed clusters");
        using var request = new HttpRequestMessage(HttpMethod.Get, "/images/vm/data");
        request.Headers.Range = new RangeHeaderValue(0, 99);

        JsonElement problem = await Problem.AssertAsync(await _server.Client.SendAsync(request), HttpStatusCode.UnprocessableEntity);
        Assert.Equal("compressed clusters", problem.GetProperty("feature").GetString());
    }

    [Theory]
    [InlineData(QcowProblem.Invalid, 422)]
    [InlineData(QcowProblem.Unsupported, 422)]
    [InlineData(QcowProblem.LimitExceeded, 400)]
    public async Task Format_errors_that_escape_the_engine_are_problems_naming_the_field(QcowProblem kind, int status)
    {
        await CreateAsync("vm", MiB);
        Store.FailAll = new QcowFormatException(kind, "l1_size", "l1_size 2147483647 exceeds the 32 MiB limit");
        JsonElement problem = await Problem.AssertAsync(await _server.Client.GetAsync("/images/vm"), (HttpStatusCode)status, "l1_size");
        Assert.Equal("l1_size", problem.GetProperty("field").GetString());
    }

    [Fact]
    public async Task Unexpected_failures_are_500_problems_without_internals()
    {
        await CreateAsync("vm", MiB);
        Store.FailAll = new InvalidOperationException("secret internal state");
        using HttpResponseMessage response = await _server.Client.GetAsync("/images/vm");
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.DoesNotContain("secret", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Read_failure_after_headers_aborts_the_connection_instead_of_a_short_body()
    {
        await CreateAsync("vm", 4 * MiB);
        Store.FailCopyAfter = MiB + 5;

        using HttpResponseMessage response = await _server.Client.GetAsync("/images/vm/data", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(4 * MiB, response.Content.Headers.ContentLength);
        await Assert.ThrowsAnyAsync<Exception>(() => response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Whole_disk_get_maps_one_segment_before_headers_and_the_rest_while_streaming()
    {
        // 2.5 GiB sparse disk: three plans (1 GiB, 1 GiB, 0.5 GiB). Only the headers and a little body are read.
        long size = 5L << 29;
        await CreateAsync("big", size);
        using (HttpResponseMessage response = await _server.Client.GetAsync("/images/big/data", HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(size, response.Content.Headers.ContentLength);
            await using Stream body = await response.Content.ReadAsStreamAsync();
            await body.ReadExactlyAsync(new byte[4096]);
        }
        var plans = Store.Calls.Where(c => c.Operation == "plan").ToList();
        Assert.Equal((0L, 1L << 30), (plans[0].Offset, plans[0].Length));
    }

    [Fact]
    public async Task Put_hands_the_engine_chunks_aligned_to_MiB_boundaries()
    {
        await CreateAsync("vm", 16 * MiB);
        byte[] data = Bodies.Pattern(5 * MiB, 1);
        var body = new ByteArrayContent(data);
        body.Headers.ContentRange = new ContentRangeHeaderValue(MiB / 2, MiB / 2 + data.Length - 1);
        using (HttpResponseMessage put = await _server.Client.PutAsync("/images/vm/data", body))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        var writes = Store.Calls.Where(c => c.Operation == "write").Select(c => (c.Offset, c.Length)).ToList();
        Assert.Equal([(MiB / 2, 3 * MiB / 2), (2L * MiB, 2L * MiB), (4L * MiB, 3L * MiB / 2)], writes);
        Assert.Equal(data, Store.Read("vm", MiB / 2, data.Length));
    }

    [Fact]
    public async Task Put_flushes_after_the_last_write_by_default_and_not_with_flush_n()
    {
        await CreateAsync("vm", MiB);
        using (HttpResponseMessage put = await _server.Client.PutAsync("/images/vm/data", new ByteArrayContent(new byte[10])))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(["write", "flush"], Store.Calls.Where(c => c.Operation is "write" or "flush").Select(c => c.Operation));

        using (HttpResponseMessage put = await _server.Client.PutAsync("/images/vm/data?flush=n", new ByteArrayContent(new byte[10])))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(["write", "flush", "write"], Store.Calls.Where(c => c.Operation is "write" or "flush").Select(c => c.Operation));
    }

    [Fact]
    public async Task Put_past_end_of_disk_is_refused_before_anything_is_written()
    {
        await CreateAsync("vm", MiB);
        var body = new ByteArrayContent(new byte[100]);
        body.Headers.ContentRange = new ContentRangeHeaderValue(MiB - 50, MiB + 49);
        await Problem.AssertAsync(await _server.Client.PutAsync("/images/vm/data", body), HttpStatusCode.RequestedRangeNotSatisfiable);
        Assert.DoesNotContain(Store.Calls, c => c.Operation is "write" or "flush");
    }

    [Fact]
    public async Task Client_that_disconnects_mid_body_gets_nothing_flushed()
    {
        await CreateAsync("vm", 16 * MiB);
        string head = $"PUT /images/vm/data HTTP/1.1\nHost: test\nContent-Length: {8 * MiB}\nContent-Range: bytes 0-{8 * MiB - 1}/*\n";
        await RawHttp.SendAsync(_server.BaseAddress, head, new byte[3 * MiB], RawEnd.Reset);

        // The server notices the reset when it next reads; give it a moment, then check no flush happened.
        for (int i = 0; i < 50 && !Store.Calls.Any(c => c.Operation == "write"); i++)
            await Task.Delay(20);
        await Task.Delay(200);
        Assert.DoesNotContain(Store.Calls, c => c.Operation == "flush");
        using HttpResponseMessage health = await _server.Client.GetAsync("/healthz/live");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Truncated_body_is_not_acknowledged()
    {
        await CreateAsync("vm", 16 * MiB);
        string head = $"PUT /images/vm/data HTTP/1.1\nHost: test\nContent-Length: {2 * MiB}\n";
        string answer = await RawHttp.SendAsync(_server.BaseAddress, head, new byte[MiB], RawEnd.HalfClose);

        Assert.DoesNotContain("HTTP/1.1 200", answer);
        Assert.DoesNotContain(Store.Calls, c => c.Operation == "flush");
    }

    [Fact]
    public async Task Malformed_chunked_encoding_is_400()
    {
        await CreateAsync("vm", MiB);
        string head = "PUT /images/vm/data HTTP/1.1\nHost: test\nTransfer-Encoding: chunked\nConnection: close\n";
        string answer = await RawHttp.SendAsync(_server.BaseAddress, head, "zz\r\nhello\r\n0\r\n\r\n"u8.ToArray());

        Assert.True(answer.StartsWith("HTTP/1.1 400"), $"answer: {answer}");
        Assert.Contains("application/problem+json", answer);
        Assert.DoesNotContain(Store.Calls, c => c.Operation == "flush");
    }
}
