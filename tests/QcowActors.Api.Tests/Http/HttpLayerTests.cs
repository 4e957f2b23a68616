using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using QcowActors.Api.Endpoints;
using QcowActors.Api.Tests.Support;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.Api.Tests.Http;

/// <summary>
/// What the HTTP layer does with the engine's I/O, seen at the engine's file-system seam
/// (<see cref="FaultyFileSystem"/> over the real DiskFileSystem): failures mid-stream, the writes
/// and fsyncs a PUT causes, the mapping a whole-disk GET does, clients that vanish.
/// </summary>
public sealed class HttpLayerTests : IAsyncLifetime
{
    private const int MiB = 1024 * 1024;
    private const int MaxWriteChunk = 2 * MiB;
    private readonly FaultyFileSystem _fs = new();
    private ApiServer _server = null!;

    public async Task InitializeAsync()
        => _server = await ApiServer.StartWithEngineAsync(_fs, $"Storage:MaxWriteChunk={MaxWriteChunk}");

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private HttpClient Client => _server.Client;

    /// <summary>Creates the image and opens it in the engine, so that later I/O at the seam is the request's own.</summary>
    private async Task CreateAsync(string name, long size)
    {
        using (HttpResponseMessage created = await Client.PostAsJsonAsync("/images", new { name, size }))
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using HttpResponseMessage info = await Client.GetAsync($"/images/{name}");
        Assert.Equal(HttpStatusCode.OK, info.StatusCode);
    }

    private async Task<HttpResponseMessage> PutAsync(string name, long offset, byte[] data, string query = "")
    {
        var body = new ByteArrayContent(data);
        body.Headers.ContentRange = new ContentRangeHeaderValue(offset, offset + data.Length - 1);
        return await Client.PutAsync($"/images/{name}/data{query}", body);
    }

    private async Task<byte[]> ReadAsync(string name, long offset, int length)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/images/{name}/data");
        request.Headers.Range = new RangeHeaderValue(offset, offset + length - 1);
        using HttpResponseMessage response = await Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        return await response.Content.ReadAsByteArrayAsync();
    }

    private static string Describe(IEnumerable<IoEvent> events)
        => string.Join(", ", events.Select(e => e.Kind == IoKind.Fsync ? "fsync" : $"{e.Kind.ToString().ToLowerInvariant()} {e.Offset}+{e.Length}"));

    [Fact]
    public async Task Read_failure_after_headers_aborts_the_connection_instead_of_a_short_body()
    {
        byte[] data = Bodies.Pattern(4 * MiB, 11);
        await CreateAsync("vm", data.Length);
        using (HttpResponseMessage put = await PutAsync("vm", 0, data))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        await ReadAsync("vm", 0, 1); // the L2 table is loaded now: every later read of the file is a data read

        _fs.FailReadsAfter(MiB + 5, FaultyFileSystem.DiskError());
        using HttpResponseMessage response = await Client.GetAsync("/images/vm/data", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(data.Length, response.Content.Headers.ContentLength);

        var received = new MemoryStream();
        Exception? failure = await Record.ExceptionAsync(async () =>
        {
            await using Stream body = await response.Content.ReadAsStreamAsync();
            await body.CopyToAsync(received);
        });
        Assert.True(failure is IOException or HttpRequestException,
            $"the client read {received.Length} of {data.Length} bytes and saw {(failure is null ? "a normal end of the body" : failure.ToString())}");
        Assert.InRange(received.Length, 0, MiB);
        Assert.Equal(data.AsSpan(0, (int)received.Length).ToArray(), received.ToArray());

        // The failure belonged to that response alone: once the disk reads again, so does the image.
        _fs.Heal();
        using HttpResponseMessage again = await Client.GetAsync("/images/vm/data");
        Assert.Equal(data, await again.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Whole_disk_get_maps_one_segment_before_headers_and_the_rest_while_streaming()
    {
        // A 2.5 GiB disk is three plans (1 GiB, 1 GiB, 0.5 GiB). With 64 KiB clusters one L2 table maps
        // 512 MiB, so segment 1 needs tables 0-1, segment 2 tables 2-3, segment 3 table 4. qemu-io puts
        // a byte in each table's range; the engine has not opened the image yet, so every table is read
        // from the file when a plan first needs it.
        long segment = DiskReadEndpoints.PlanSegment;
        long size = 5 * segment / 2;
        long[] marks = [4096, segment / 2 + 1, segment + 2, 3 * segment / 2 + 3, 2 * segment + 4];
        string path = _server.ImagePath("big");
        Qemu.Create(path, size);
        Qemu.IoCommands(path, marks.Select((at, i) => $"write -P {0x11 * (i + 1)} {at} 1"));
        long[] tables = L2TableOffsets(path);
        Assert.Equal(5, tables.Length);
        Assert.All(tables, t => Assert.NotEqual(0, t));

        using HttpResponseMessage response = await Client.GetAsync("/images/big/data", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(size, response.Content.Headers.ContentLength);
        await using Stream body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[4 * MiB];
        await body.ReadExactlyAsync(buffer.AsMemory(0, 4096));

        // Headers are here and the server is at most a few socket buffers ahead: only segment 1 is mapped.
        long[] loaded = TablesRead(tables);
        Assert.True(loaded is [0, 1], $"L2 tables read by the time the body started: [{string.Join(", ", loaded)}]");

        long position = 4096;
        var seen = new Dictionary<long, byte>();
        int n;
        while ((n = await body.ReadAsync(buffer)) > 0)
        {
            foreach (long at in marks.Where(at => at >= position && at < position + n))
                seen[at] = buffer[at - position];
            position += n;
        }
        Assert.Equal(size, position);
        Assert.Equal(marks.Select((at, i) => (at, (byte)(0x11 * (i + 1)))), marks.Select(at => (at, seen[at])));
        Assert.Equal([0, 1, 2, 3, 4], TablesRead(tables));
    }

    /// <summary>L1 indexes whose L2 table the engine has read, in the order it read them.</summary>
    private long[] TablesRead(long[] tableOffsets)
        => [.. _fs.EventsOf("big").Where(e => e.Kind == IoKind.Read && tableOffsets.Contains(e.Offset))
            .Select(e => (long)Array.IndexOf(tableOffsets, e.Offset)).Distinct().Order()];

    /// <summary>The host offset of each L2 table, read from the file's L1 table (qcow2 spec, not src/Format).</summary>
    private static long[] L2TableOffsets(string path)
    {
        using var file = File.OpenHandle(path);
        var header = new byte[48];
        RandomAccess.Read(file, header, 0);
        int entries = (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(36));
        long l1Offset = (long)BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(40));
        var l1 = new byte[entries * 8];
        RandomAccess.Read(file, l1, l1Offset);
        return [.. Enumerable.Range(0, entries).Select(i => (long)(BinaryPrimitives.ReadUInt64BigEndian(l1.AsSpan(i * 8)) & 0x00ff_ffff_ffff_fe00UL))];
    }

    [Fact]
    public async Task Put_hands_the_engine_chunks_aligned_to_MiB_boundaries()
    {
        await CreateAsync("vm", 16 * MiB);
        byte[] data = Bodies.Pattern(5 * MiB, 1);
        long mark = _fs.Mark();
        using (HttpResponseMessage put = await PutAsync("vm", MiB / 2, data))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        // Chunks of at most 2 MiB ending on MiB boundaries of the disk: [0.5, 2) [2, 4) [4, 5.5) MiB.
        // Each lands in clusters allocated together, so the engine writes each with one call; the
        // flush's own writes come after its first fsync. Two chunks are written at once, so they may
        // reach the file in either order (DiskUploadTests checks the order they are issued in).
        IReadOnlyList<IoEvent> events = _fs.EventsOf("vm", mark);
        var dataWrites = events.TakeWhile(e => e.Kind != IoKind.Fsync).ToList();
        Assert.True(dataWrites.All(e => e.Kind == IoKind.Write), Describe(events));
        Assert.True(dataWrites.Select(e => e.Length).Order().SequenceEqual([3L * MiB / 2, 3L * MiB / 2, 2L * MiB]), Describe(dataWrites));
        Assert.Equal(data, await ReadAsync("vm", MiB / 2, data.Length));
    }

    [Fact]
    public async Task Put_flushes_after_the_last_write_by_default_and_not_with_flush_n()
    {
        await CreateAsync("vm", 4 * MiB);

        long mark = _fs.Mark();
        using (HttpResponseMessage put = await PutAsync("vm", 0, Bodies.Pattern(10, 2)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        IReadOnlyList<IoEvent> flushed = _fs.EventsOf("vm", mark);
        Assert.True(flushed.Count > 1 && flushed[0].Kind == IoKind.Write && flushed[^1].Kind == IoKind.Fsync,
            $"a default PUT must write, then fsync before it answers: {Describe(flushed)}");

        mark = _fs.Mark();
        using (HttpResponseMessage put = await PutAsync("vm", MiB, Bodies.Pattern(10, 3), "?flush=n"))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        IReadOnlyList<IoEvent> unflushed = _fs.EventsOf("vm", mark);
        Assert.True(unflushed.Any(e => e.Kind == IoKind.Write) && unflushed.All(e => e.Kind != IoKind.Fsync),
            $"a PUT with flush=n must write and not fsync: {Describe(unflushed)}");

        // The write left unflushed is made durable by the imageio flush request.
        mark = _fs.Mark();
        using (HttpResponseMessage patch = await Client.PatchAsync("/images/vm/data", JsonContent.Create(new { op = "flush" })))
            Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        Assert.Contains(_fs.EventsOf("vm", mark), e => e.Kind == IoKind.Fsync);
    }

    [Fact]
    public async Task Put_past_end_of_disk_is_refused_before_anything_is_written()
    {
        await CreateAsync("vm", MiB);
        long mark = _fs.Mark();
        var body = new ByteArrayContent(Bodies.Pattern(100, 4));
        body.Headers.ContentRange = new ContentRangeHeaderValue(MiB - 50, MiB + 49);

        await Problem.AssertAsync(await Client.PutAsync("/images/vm/data", body), HttpStatusCode.RequestedRangeNotSatisfiable);
        IReadOnlyList<IoEvent> events = _fs.EventsOf("vm", mark);
        Assert.True(events.All(e => e.Kind == IoKind.Read), $"nothing may be written or flushed: {Describe(events)}");
    }

    [Fact]
    public async Task Client_that_disconnects_mid_body_gets_nothing_flushed()
    {
        await CreateAsync("vm", 16 * MiB);
        long mark = _fs.Mark();
        string head = $"PUT /images/vm/data HTTP/1.1\nHost: test\nContent-Length: {8 * MiB}\nContent-Range: bytes 0-{8 * MiB - 1}/*\n";
        // Hang up once the server is mid-upload (its first 2 MiB chunk is in the file): a reset that
        // came sooner could discard the request unread, and the test would prove nothing.
        await RawHttp.SendAsync(_server.BaseAddress, head, Bodies.Pattern(3 * MiB, 5), RawEnd.Reset,
            beforeEnd: () => _fs.WaitForAsync("vm", IoKind.Write, mark));

        // Kestrel reports the reset either as an aborted request or as a body that ended short (a 400
        // nobody receives): the upload fails either way.
        CompletedRequest put = await _server.Requests.WaitForAsync("PUT", "/images/vm/data");
        Assert.True(put.Aborted || put.Status >= 400, $"the upload must fail: {put}");
        IReadOnlyList<IoEvent> events = _fs.EventsOf("vm", mark);
        Assert.True(events.All(e => e.Kind != IoKind.Fsync), $"nothing may be flushed: {Describe(events)}");
        using HttpResponseMessage health = await Client.GetAsync("/healthz/live");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Truncated_body_is_not_acknowledged()
    {
        await CreateAsync("vm", 16 * MiB);
        long mark = _fs.Mark();
        string head = $"PUT /images/vm/data HTTP/1.1\nHost: test\nContent-Length: {4 * MiB}\n";
        // The body ends (FIN) after the server has written its first 2 MiB chunk.
        string answer = await RawHttp.SendAsync(_server.BaseAddress, head, Bodies.Pattern(5 * MiB / 2, 6), RawEnd.HalfClose,
            beforeEnd: () => _fs.WaitForAsync("vm", IoKind.Write, mark));

        CompletedRequest put = await _server.Requests.WaitForAsync("PUT", "/images/vm/data");
        // No 200 and no flush. (Kestrel takes the client's FIN for the end of the connection, so the
        // answer is usually nothing at all.)
        Assert.True(answer == "" || answer.StartsWith("HTTP/1.1 400"), $"put: {put}; answer: {answer}");
        IReadOnlyList<IoEvent> events = _fs.EventsOf("vm", mark);
        Assert.True(events.Any(e => e.Kind == IoKind.Write) && events.All(e => e.Kind != IoKind.Fsync),
            $"the first chunk is written, nothing is flushed: {Describe(events)}");
    }

    [Fact]
    public async Task Body_shorter_than_its_content_range_is_400_and_not_flushed()
    {
        // A complete chunked body of 2.5 MiB for a 4 MiB range: the first 2 MiB chunk is written,
        // then the upload is refused, and what was written stays unflushed.
        await CreateAsync("vm", 16 * MiB);
        long mark = _fs.Mark();
        var body = new ChunkedContent(Bodies.Pattern(5 * MiB / 2, 7));
        body.Headers.ContentRange = new ContentRangeHeaderValue(0, 4 * MiB - 1);

        await Problem.AssertAsync(await Client.PutAsync("/images/vm/data", body), HttpStatusCode.BadRequest, "nothing was flushed");
        IReadOnlyList<IoEvent> events = _fs.EventsOf("vm", mark);
        Assert.True(events.Any(e => e.Kind == IoKind.Write) && events.All(e => e.Kind != IoKind.Fsync),
            $"the first chunk is written, nothing is flushed: {Describe(events)}");
    }

    [Fact]
    public async Task Malformed_chunked_encoding_is_400()
    {
        await CreateAsync("vm", MiB);
        long mark = _fs.Mark();
        string head = "PUT /images/vm/data HTTP/1.1\nHost: test\nTransfer-Encoding: chunked\nConnection: close\n";
        string answer = await RawHttp.SendAsync(_server.BaseAddress, head, Encoding.ASCII.GetBytes("zz\r\nhello\r\n0\r\n\r\n"));

        Assert.True(answer.StartsWith("HTTP/1.1 400"), $"answer: {answer}");
        Assert.Contains("application/problem+json", answer);
        IReadOnlyList<IoEvent> events = _fs.EventsOf("vm", mark);
        Assert.True(events.All(e => e.Kind == IoKind.Read), $"nothing may be written or flushed: {Describe(events)}");
    }
}
