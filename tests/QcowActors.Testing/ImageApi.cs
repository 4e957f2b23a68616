using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace QcowActors.Testing;

/// <summary>
/// The HTTP API as the tests use it. Every call checks the status the protocol promises (PUT: exactly
/// 200, range GET: 206 with a matching Content-Range) and throws <see cref="ApiStatusException"/> with
/// the problem+json body otherwise.
/// </summary>
public sealed class ImageApi(HttpClient client)
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public HttpClient Client { get; } = client;

    /// <summary>Where an image's data is: /images/{name}/data, or a transfer ticket's /tickets/{id}/data.</summary>
    public Func<string, string> DataPath { get; init; } = name => $"images/{name}/data";

    /// <summary>The same API with every data request sent to the transfer ticket's URL (no other credential).</summary>
    public ImageApi ThroughTicket(string ticketUrl) => new(Client) { DataPath = _ => ticketUrl.TrimStart('/') };

    /// <summary>POST /images/{name}/tickets; expects 201.</summary>
    public async Task<CreatedTicket> CreateTicketAsync(string name, string scope, string? expiresIn = null, CancellationToken ct = default,
        string? bitmap = null, string? snapshot = null)
    {
        var body = new Dictionary<string, object> { ["scope"] = scope };
        if (expiresIn is not null) body["expiresIn"] = expiresIn;
        if (bitmap is not null) body["bitmap"] = bitmap;
        if (snapshot is not null) body["snapshot"] = snapshot;
        using var response = await Client.PostAsJsonAsync(Url($"images/{name}/tickets"), body, Json, ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.Created, ct).ConfigureAwait(false);
        return await ReadJsonAsync<CreatedTicket>(response, ct).ConfigureAwait(false);
    }

    /// <summary>POST /images; <paramref name="size"/> is a number or a string such as "10G".</summary>
    public async Task<ImageInfo> CreateAsync(string name, object size, int? clusterSize = null, int? refcountBits = null, CancellationToken ct = default)
    {
        var body = new Dictionary<string, object> { ["name"] = name, ["size"] = size };
        if (clusterSize is { } cs) body["clusterSize"] = cs;
        if (refcountBits is { } rb) body["refcountBits"] = rb;
        using var response = await Client.PostAsJsonAsync(Url("images"), body, Json, ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.Created, ct).ConfigureAwait(false);
        return await ReadJsonAsync<ImageInfo>(response, ct).ConfigureAwait(false);
    }

    public async Task<ImageInfo> GetInfoAsync(string name, CancellationToken ct = default)
    {
        using var response = await Client.GetAsync(Url($"images/{name}"), ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.OK, ct).ConfigureAwait(false);
        return await ReadJsonAsync<ImageInfo>(response, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<ImageInfo>> ListAsync(CancellationToken ct = default)
    {
        using var response = await Client.GetAsync(Url("images"), ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.OK, ct).ConfigureAwait(false);
        return await ReadJsonAsync<List<ImageInfo>>(response, ct).ConfigureAwait(false);
    }

    public async Task DeleteAsync(string name, CancellationToken ct = default)
    {
        using var response = await Client.DeleteAsync(Url($"images/{name}"), ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.NoContent, ct).ConfigureAwait(false);
    }

    /// <summary>PUT /images/{name}/data with Content-Range: bytes a-b/*; flush=false adds ?flush=n. Expects exactly 200.</summary>
    public async Task PutAsync(string name, long offset, ReadOnlyMemory<byte> data, bool flush = true, CancellationToken ct = default)
    {
        using var content = new ReadOnlyMemoryContent(data);
        await PutAsync(name, offset, content, data.Length, flush, ct).ConfigureAwait(false);
    }

    /// <summary>PUT of any content (e.g. a streaming one) covering [offset, offset+length).</summary>
    public async Task PutAsync(string name, long offset, HttpContent content, long length, bool flush = true, CancellationToken ct = default)
    {
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.ContentRange = new ContentRangeHeaderValue(offset, offset + length - 1);
        using var request = new HttpRequestMessage(HttpMethod.Put, Url(DataPath(name) + (flush ? "" : "?flush=n"))) { Content = content };
        using var response = await Client.SendAsync(request, ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.OK, ct).ConfigureAwait(false);
    }

    /// <summary>GET with Range: bytes=offset-(offset+length-1); expects 206, Content-Range and Content-Length to match.</summary>
    public async Task<byte[]> GetRangeAsync(string name, long offset, long length, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Url(DataPath(name)));
        request.Headers.Range = new RangeHeaderValue(offset, offset + length - 1);
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.PartialContent, ct).ConfigureAwait(false);
        var range = response.Content.Headers.ContentRange;
        if (range is null || range.From != offset || range.To != offset + length - 1 || range.Unit != "bytes")
        {
            throw new ApiStatusException(response.StatusCode, $"Content-Range {range} does not match the requested bytes {offset}-{offset + length - 1}");
        }
        if (response.Content.Headers.ContentLength != length)
        {
            throw new ApiStatusException(response.StatusCode, $"Content-Length {response.Content.Headers.ContentLength} does not match the requested {length} bytes");
        }
        var bytes = await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
        if (bytes.Length != length)
        {
            throw new ApiStatusException(response.StatusCode, $"Received {bytes.Length} bytes for a {length}-byte range");
        }
        return bytes;
    }

    /// <summary>GET without Range: the whole disk (expects 200).</summary>
    public async Task<byte[]> GetAllAsync(string name, CancellationToken ct = default)
    {
        using var response = await Client.GetAsync(Url(DataPath(name)), HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.OK, ct).ConfigureAwait(false);
        return await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
    }

    /// <summary>PATCH {"op":"zero","offset","size","flush"}.</summary>
    public Task ZeroAsync(string name, long offset, long size, bool flush = false, CancellationToken ct = default)
        => PatchAsync(name, new { op = "zero", offset, size, flush }, ct);

    /// <summary>PATCH {"op":"flush"}.</summary>
    public Task FlushAsync(string name, CancellationToken ct = default)
        => PatchAsync(name, new { op = "flush" }, ct);

    /// <summary>GET /images/{name}/data/extents?context=zero.</summary>
    public async Task<IReadOnlyList<DiskExtentDto>> GetExtentsAsync(string name, CancellationToken ct = default)
    {
        using var response = await Client.GetAsync(Url(DataPath(name) + "/extents?context=zero"), ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.OK, ct).ConfigureAwait(false);
        return await ReadJsonAsync<List<DiskExtentDto>>(response, ct).ConfigureAwait(false);
    }

    /// <summary>OPTIONS /images/{name}/data (imageio: features, max_readers, max_writers).</summary>
    public async Task<JsonElement> OptionsAsync(string name, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Options, Url(DataPath(name)));
        using var response = await Client.SendAsync(request, ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.OK, ct).ConfigureAwait(false);
        return await ReadJsonAsync<JsonElement>(response, ct).ConfigureAwait(false);
    }

    /// <summary>POST /images/{name}/close: flushed, bitmaps stored, file closed, locks released.</summary>
    public async Task CloseAsync(string name, CancellationToken ct = default)
    {
        using var response = await Client.PostAsync(Url($"images/{name}/close"), null, ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.NoContent, ct).ConfigureAwait(false);
    }

    /// <summary>POST /images/{name}/bitmaps.</summary>
    public async Task<BitmapDto> AddBitmapAsync(string name, string bitmap, long? granularity = null, bool? enabled = null, bool? checkpoint = null,
        CancellationToken ct = default)
    {
        var body = new Dictionary<string, object> { ["name"] = bitmap };
        if (granularity is { } g) body["granularity"] = g;
        if (enabled is { } e) body["enabled"] = e;
        if (checkpoint is { } c) body["checkpoint"] = c;
        using var response = await Client.PostAsync(Url($"images/{name}/bitmaps"), JsonContent.Create(body, options: Json), ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.Created, ct).ConfigureAwait(false);
        return await ReadJsonAsync<BitmapDto>(response, ct).ConfigureAwait(false);
    }

    /// <summary>GET /images/{name}/bitmaps.</summary>
    public async Task<IReadOnlyList<BitmapDto>> ListBitmapsAsync(string name, CancellationToken ct = default)
    {
        using var response = await Client.GetAsync(Url($"images/{name}/bitmaps"), ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.OK, ct).ConfigureAwait(false);
        return await ReadJsonAsync<List<BitmapDto>>(response, ct).ConfigureAwait(false);
    }

    /// <summary>DELETE /images/{name}/bitmaps/{bitmap}.</summary>
    public async Task DeleteBitmapAsync(string name, string bitmap, CancellationToken ct = default)
    {
        using var response = await Client.DeleteAsync(Url($"images/{name}/bitmaps/{Uri.EscapeDataString(bitmap)}"), ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.NoContent, ct).ConfigureAwait(false);
    }

    /// <summary>PATCH /images/{name}/bitmaps/{bitmap} with {"enabled"} and/or {"op":"clear"}.</summary>
    public async Task<BitmapDto> PatchBitmapAsync(string name, string bitmap, object body, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Patch, Url($"images/{name}/bitmaps/{Uri.EscapeDataString(bitmap)}"))
        {
            Content = JsonContent.Create(body, options: Json),
        };
        using var response = await Client.SendAsync(request, ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.OK, ct).ConfigureAwait(false);
        return await ReadJsonAsync<BitmapDto>(response, ct).ConfigureAwait(false);
    }

    /// <summary>GET of a dirty-extents URL (relative), e.g. images/x/data/extents?context=dirty&amp;bitmap=b.</summary>
    public async Task<IReadOnlyList<DirtyExtentDto>> GetDirtyExtentsAsync(string relativeUrl, CancellationToken ct = default)
    {
        using var response = await Client.GetAsync(Url(relativeUrl), ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.OK, ct).ConfigureAwait(false);
        return await ReadJsonAsync<List<DirtyExtentDto>>(response, ct).ConfigureAwait(false);
    }

    private async Task PatchAsync(string name, object body, CancellationToken ct)
    {
        using var content = JsonContent.Create(body, options: Json);
        using var request = new HttpRequestMessage(HttpMethod.Patch, Url(DataPath(name))) { Content = content };
        using var response = await Client.SendAsync(request, ct).ConfigureAwait(false);
        await ExpectAsync(response, HttpStatusCode.OK, ct).ConfigureAwait(false);
    }

    private Uri Url(string relative)
        => Client.BaseAddress is null ? throw new InvalidOperationException("The HttpClient needs a BaseAddress") : new Uri(Client.BaseAddress, relative);

    private static async Task ExpectAsync(HttpResponseMessage response, HttpStatusCode expected, CancellationToken ct)
    {
        if (response.StatusCode != expected)
        {
            var body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            throw new ApiStatusException(response.StatusCode,
                $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri} answered {(int)response.StatusCode} {response.StatusCode}, expected {(int)expected}: {body}");
        }
    }

    private static async Task<T> ReadJsonAsync<T>(HttpResponseMessage response, CancellationToken ct)
        => await response.Content.ReadFromJsonAsync<T>(Json, ct).ConfigureAwait(false)
           ?? throw new ApiStatusException(response.StatusCode, $"{response.RequestMessage?.RequestUri} returned no JSON body");
}

/// <summary>POST /images/{name}/tickets.</summary>
public sealed record CreatedTicket(string Id, string Url, DateTimeOffset Expires, string Image, string Scope);

/// <summary>GET /images/{name}.</summary>
public sealed record ImageInfo(
    string Name,
    string Format,
    int Version,
    long VirtualSize,
    long ActualSize,
    int ClusterSize,
    int RefcountBits,
    string? Backing,
    bool Dirty,
    string? BackingFormat = null);

/// <summary>One entry of GET .../extents?context=zero.</summary>
public sealed record DiskExtentDto(long Start, long Length, bool Zero, bool Hole);

/// <summary>One persistent bitmap (GET /images/{name}/bitmaps).</summary>
public sealed record BitmapDto(string Name, long Granularity, bool Enabled, bool Consistent, long DirtyBytes);

/// <summary>One entry of GET .../extents?context=dirty (imageio's shape).</summary>
public sealed record DirtyExtentDto(long Start, long Length, bool Dirty, bool Zero);

/// <summary>An HTTP answer other than the one the protocol promises.</summary>
public sealed class ApiStatusException(HttpStatusCode status, string message) : Exception(message)
{
    public HttpStatusCode Status { get; } = status;
}
