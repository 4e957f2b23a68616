using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using QcowActors.Api.Tests.Support;
using Xunit;

namespace QcowActors.Api.Tests.Http;

/// <summary>
/// The HTTP contract on a real loopback server over the real engine with a temporary store
/// directory (<see cref="EngineImageApiBehaviour"/>).
/// </summary>
public abstract partial class ImageApiBehaviour : IAsyncLifetime
{
    protected const int MiB = 1024 * 1024;
    protected const long DiskSize = 4 * MiB;
    private ApiServer? _server;

    private protected ApiServer Server => _server ?? throw new InvalidOperationException("server not started");
    protected HttpClient Client => Server.Client;

    private protected abstract Task<ApiServer> StartServerAsync();

    public async Task InitializeAsync() => _server = await StartServerAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
            await _server.DisposeAsync();
    }

    private int _names;

    protected async Task<string> CreateImageAsync(long size = DiskSize)
    {
        string name = $"disk{Interlocked.Increment(ref _names)}";
        using HttpResponseMessage response = await Client.PostAsJsonAsync("/images", new { name, size });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return name;
    }

    protected static HttpContent Json(string json) => new StringContent(json, Encoding.UTF8, "application/json");

    protected async Task<HttpResponseMessage> PutAsync(string name, long? offset, HttpContent body, string query = "", long? completeLength = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, $"/images/{name}/data{query}") { Content = body };
        if (offset is { } at && body.Headers.ContentLength is { } length)
            body.Headers.ContentRange = completeLength is { } complete
                ? new ContentRangeHeaderValue(at, at + length - 1, complete)
                : new ContentRangeHeaderValue(at, at + length - 1);
        return await Client.SendAsync(request);
    }

    protected async Task<HttpResponseMessage> GetAsync(string name, string? range = null, HttpMethod? method = null)
    {
        using var request = new HttpRequestMessage(method ?? HttpMethod.Get, $"/images/{name}/data");
        if (range is not null)
            request.Headers.TryAddWithoutValidation("Range", range);
        return await Client.SendAsync(request);
    }

    protected async Task<byte[]> ReadAsync(string name, long offset, int length)
    {
        using HttpResponseMessage response = await GetAsync(name, $"bytes={offset}-{offset + length - 1}");
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        return await response.Content.ReadAsByteArrayAsync();
    }

    // ---- /images ---------------------------------------------------------------------------

    [Fact]
    public async Task Create_is_201_with_location_and_image_info()
    {
        using HttpResponseMessage response = await Client.PostAsync("/images", Json("""{"name":"vm1","size":"4M"}"""));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("/images/vm1", response.Headers.Location?.OriginalString);
        JsonElement info = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("vm1", info.GetProperty("name").GetString());
        Assert.Equal("qcow2", info.GetProperty("format").GetString());
        Assert.Equal(4 * MiB, info.GetProperty("virtualSize").GetInt64());
        Assert.Equal(65536, info.GetProperty("clusterSize").GetInt32());
    }

    [Fact]
    public async Task Create_takes_cluster_size_and_refcount_bits()
    {
        using HttpResponseMessage response = await Client.PostAsync("/images",
            Json("""{"name":"small","size":1048576,"clusterSize":"4K","refcountBits":16}"""));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        JsonElement info = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(4096, info.GetProperty("clusterSize").GetInt32());
        Assert.Equal(16, info.GetProperty("refcountBits").GetInt32());
    }

    [Fact]
    public async Task Create_with_a_taken_name_is_409()
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage response = await Client.PostAsync("/images", Json($$"""{"name":"{{name}}","size":"1M"}"""));
        await Problem.AssertAsync(response, HttpStatusCode.Conflict);
    }

    [Theory]
    [InlineData("""{"name":"../etc","size":"1M"}""", "invalid")]
    [InlineData("""{"name":".x","size":"1M"}""", "invalid")]
    [InlineData("""{"name":"vm","size":"1Q"}""", "suffix")]
    [InlineData("""{"name":"vm","size":"-5"}""", "size")]
    [InlineData("""{"name":"vm","size":true}""", "size")]
    [InlineData("""{"name":"vm"}""", "size is required")]
    [InlineData("""{"size":"1M"}""", "name is required")]
    [InlineData("""{"name":"vm","size":"1M",""", "malformed JSON")]
    [InlineData("""[1,2]""", "JSON object")]
    [InlineData("""not json""", "malformed JSON")]
    [InlineData("", "empty")]
    [InlineData("""{"name":"vm","size":"1M","clusterSize":3000}""", "cluster")]
    public async Task Create_with_a_bad_body_is_400_naming_the_fault(string body, string detail)
    {
        using HttpResponseMessage response = await Client.PostAsync("/images", Json(body));
        await Problem.AssertAsync(response, HttpStatusCode.BadRequest, detail);
    }

    [Fact]
    public async Task Create_accepts_json_sent_with_curls_default_form_content_type()
    {
        var content = new StringContent("""{"name":"curl1","size":"1M"}""", Encoding.UTF8, "application/x-www-form-urlencoded");
        using HttpResponseMessage response = await Client.PostAsync("/images", content);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task Create_with_a_json_body_over_64_KiB_is_413()
    {
        string padding = new('x', 70_000);
        using HttpResponseMessage response = await Client.PostAsync("/images", Json($$"""{"name":"vm","size":"1M","pad":"{{padding}}"}"""));
        await Problem.AssertAsync(response, HttpStatusCode.RequestEntityTooLarge);
    }

    [Fact]
    public async Task List_returns_the_created_images()
    {
        string a = await CreateImageAsync();
        string b = await CreateImageAsync();
        JsonElement list = await Client.GetFromJsonAsync<JsonElement>("/images");
        var names = list.EnumerateArray().Select(i => i.GetProperty("name").GetString()).ToList();
        Assert.Contains(a, names);
        Assert.Contains(b, names);
    }

    [Fact]
    public async Task Info_of_an_image_is_200()
    {
        string name = await CreateImageAsync();
        JsonElement info = await Client.GetFromJsonAsync<JsonElement>($"/images/{name}");
        Assert.Equal(name, info.GetProperty("name").GetString());
        Assert.Equal(DiskSize, info.GetProperty("virtualSize").GetInt64());
    }

    [Fact]
    public async Task Info_of_an_unknown_image_is_404()
        => await Problem.AssertAsync(await Client.GetAsync("/images/nothere"), HttpStatusCode.NotFound);

    [Theory]
    [InlineData("/images/.hidden")]
    [InlineData("/images/..%2F..%2Fetc%2Fpasswd")]
    [InlineData("/images/a%20b")]
    [InlineData("/images/-x/data")]
    public async Task Invalid_image_names_in_urls_are_400(string url)
        => await Problem.AssertAsync(await Client.GetAsync(url), HttpStatusCode.BadRequest, "image name");

    [Fact]
    public async Task Delete_is_204_and_the_image_is_gone()
    {
        string name = await CreateImageAsync();
        using HttpResponseMessage deleted = await Client.DeleteAsync($"/images/{name}");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        await Problem.AssertAsync(await Client.GetAsync($"/images/{name}"), HttpStatusCode.NotFound);
        await Problem.AssertAsync(await Client.DeleteAsync($"/images/{name}"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Unknown_path_is_404_problem()
        => await Problem.AssertAsync(await Client.GetAsync("/nothing/here"), HttpStatusCode.NotFound);

    [Fact]
    public async Task Wrong_method_is_405_problem()
    {
        string name = await CreateImageAsync();
        await Problem.AssertAsync(await Client.PostAsync($"/images/{name}/data", Json("{}")), HttpStatusCode.MethodNotAllowed);
    }

    [Theory]
    [InlineData("/healthz/live")]
    [InlineData("/healthz/ready")]
    public async Task Health_probes_answer_ok(string url)
        => Assert.Equal("ok", await Client.GetStringAsync(url));
}
