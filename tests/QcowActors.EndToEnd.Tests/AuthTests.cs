using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Scoped tokens on the real server: every row of README "Authentication" (method, path, scope) is
/// enforced as written, in both the Bearer and the Basic form, and stock clients (curl, QEMU's
/// http driver) read through a read token.
/// </summary>
public sealed class AuthTests(AuthFixture fixture) : IClassFixture<AuthFixture>, IDisposable
{
    private static readonly string[] Forms = ["Bearer", "Basic"];
    private static readonly string[] Scopes = ["read", "write", "admin"];

    private static int _unique;
    private readonly HttpClient _client = new() { Timeout = TimeSpan.FromMinutes(2) };
    private readonly TempDirectory _scratch = new("e2e-auth");

    public static TheoryData<string, string, string> Rows()
    {
        var data = new TheoryData<string, string, string>();
        foreach (ScopeRow row in ReadmeScopeTable.Read())
            data.Add(row.Method, row.Route, row.Scope);
        return data;
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public async Task Every_readme_row_is_enforced_as_written(string method, string route, string scope)
    {
        if (scope is "none" or "ticket")
        {
            using (HttpResponseMessage anonymous = await SendAsync(method, route, null, null))
                AssertNotRefused(anonymous, method, route, "no token");
            foreach (string form in Forms)
            {
                foreach (string token in new[] { AuthTokens.Unknown, AuthTokens.Read, AuthTokens.Admin })
                {
                    using HttpResponseMessage response = await SendAsync(method, route, token, form);
                    AssertNotRefused(response, method, route, $"{form} token");
                }
            }
            return;
        }

        Assert.Contains(scope, Scopes);
        using (HttpResponseMessage none = await SendAsync(method, route, null, null))
        {
            await AssertUnauthorizedAsync(none, method, "needs a token with scope " + scope);
        }
        foreach (string form in Forms)
        {
            using (HttpResponseMessage wrong = await SendAsync(method, route, AuthTokens.Unknown, form))
                await AssertUnauthorizedAsync(wrong, method, "not one this server accepts");
            using (HttpResponseMessage tooShort = await SendAsync(method, route, AuthTokens.Short, form))
                await AssertUnauthorizedAsync(tooShort, method, "tokens are at least 32 characters");
            foreach (var (granted, token) in AuthTokens.ByScope)
            {
                using HttpResponseMessage response = await SendAsync(method, route, token, form);
                if (Array.IndexOf(Scopes, granted) < Array.IndexOf(Scopes, scope))
                {
                    string detail = await AssertProblemAsync(response, method, HttpStatusCode.Forbidden);
                    Assert.Contains($"scope {scope}", detail);
                    Assert.Contains($"has scope {granted}", detail);
                }
                else
                {
                    AssertNotRefused(response, method, route, $"{form} {granted} token");
                    Assert.True((int)response.StatusCode < 500,
                        $"{method} {route} with a {granted} token: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }
            }
        }
    }

    [Fact]
    public async Task The_generated_document_gives_every_operation_the_readme_scope()
    {
        var readme = ReadmeScopeTable.Read().ToDictionary(r => $"{r.Method} {r.Route}", r => r.Scope);
        using HttpResponseMessage response = await SendAsync("GET", "/openapi/{documentName}.json", AuthTokens.Read, "Bearer");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        int operations = 0;
        foreach (JsonProperty path in document.RootElement.GetProperty("paths").EnumerateObject())
        {
            foreach (JsonProperty operation in path.Value.EnumerateObject().Where(o => o.Value.ValueKind == JsonValueKind.Object && o.Value.TryGetProperty("responses", out _)))
            {
                string key = $"{operation.Name.ToUpperInvariant()} {path.Name}";
                Assert.True(readme.TryGetValue(key, out string? scope), $"{key} is not in README \"Authentication\"");
                Assert.Equal(scope, operation.Value.GetProperty("x-scope").GetString());
                operations++;
            }
        }
        Assert.True(operations >= 20, $"only {operations} operations");
    }

    [Fact]
    public async Task Health_probes_answer_without_a_token()
    {
        foreach (string probe in new[] { "/healthz/live", "/healthz/ready" })
        {
            using HttpResponseMessage response = await _client.GetAsync(fixture.Server.BaseUrl + probe);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    [Fact]
    public async Task Qemu_http_driver_reads_an_image_with_a_read_token_sent_as_basic()
    {
        const string name = "auth-qemu";
        const long size = 8L * 1024 * 1024;
        await fixture.Server.Api.CreateAsync(name, size);
        using var model = DiskModel.InMemory(size);
        var data = new byte[3 * 1024 * 1024];
        Pattern.Fill(77, 0, data);
        await fixture.Server.Api.PutAsync(name, 2 * 1024 * 1024, data);
        model.Write(2 * 1024 * 1024, data);
        string raw = model.ExportRaw(_scratch.File("auth-qemu.raw"));

        string url = fixture.Server.DataUrl(name);
        string withSecret = $$"""json:{"file.driver":"http","file.url":"{{url}}","file.username":"any","file.password-secret":"sec0"}""";
        string secret = $"secret,id=sec0,data={AuthTokens.Read}";
        // As README "Authentication" shows it.
        ProcessResult info = ProcessRunner.Run(Qemu.QemuImg, ["info", withSecret, "--object", secret]);
        Assert.True(info.ExitCode == 0, info.ToString());
        Assert.Contains($"virtual size: 8 MiB ({size} bytes)", info.Stdout);
        QemuCompareResult compare = Qemu.Compare(raw, withSecret, "--object", secret, "-f", "raw", "-F", "raw");
        Assert.True(compare.Identical, $"model vs http with a read token: {compare}");

        ProcessResult anonymous = ProcessRunner.Run(Qemu.QemuImg, ["info", RealClientTests.HttpDisk(url)]);
        Assert.True(anonymous.ExitCode != 0, $"QEMU read the disk without a token: {anonymous}");
        ProcessResult shortToken = ProcessRunner.Run(Qemu.QemuImg, ["info", withSecret, "--object", $"secret,id=sec0,data={AuthTokens.Short}"]);
        Assert.True(shortToken.ExitCode != 0, $"QEMU read the disk with a 31-character token: {shortToken}");
    }

    [Fact]
    public async Task Curl_reads_with_a_bearer_header_and_with_user_and_password()
    {
        const string name = "auth-curl";
        await fixture.Server.Api.CreateAsync(name, "1M");
        byte[] data = Encoding.ASCII.GetBytes("bytes only a token holder may read");
        await fixture.Server.Api.PutAsync(name, 4096, data);
        string url = fixture.Server.DataUrl(name);
        string range = $"4096-{4096 + data.Length - 1}";

        ProcessResult bearer = Curl.Run("-sS", "--fail-with-body", "-H", $"Authorization: Bearer {AuthTokens.Read}", "-r", range, url);
        Assert.True(bearer.ExitCode == 0, bearer.ToString());
        Assert.Equal(data, bearer.StdoutBytes);
        ProcessResult basic = Curl.Run("-sS", "--fail-with-body", "-u", $"x:{AuthTokens.Read}", "-r", range, url);
        Assert.True(basic.ExitCode == 0, basic.ToString());
        Assert.Equal(data, basic.StdoutBytes);

        ProcessResult none = Curl.Run("-sS", "-i", url);
        Assert.Contains("HTTP/1.1 401", none.Stdout);
        Assert.Contains("WWW-Authenticate: Bearer realm=\"qcowactors\"", none.Stdout);
        Assert.Contains("WWW-Authenticate: Basic realm=\"qcowactors\"", none.Stdout);
        Assert.Contains("application/problem+json", none.Stdout);
        ProcessResult readOnly = Curl.Run("-sS", "-o", "/dev/null", "-w", "%{http_code}", "-u", $"x:{AuthTokens.Read}", "-X", "PUT", "--data-binary", "x", url);
        Assert.Equal("403", readOnly.Stdout);
    }

    private static void AssertNotRefused(HttpResponseMessage response, string method, string route, string with)
        => Assert.True(response.StatusCode is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden),
            $"{method} {route} with {with}: {(int)response.StatusCode}");

    private static async Task AssertUnauthorizedAsync(HttpResponseMessage response, string method, string detailContains)
    {
        string detail = await AssertProblemAsync(response, method, HttpStatusCode.Unauthorized);
        if (method != "HEAD")
            Assert.Contains(detailContains, detail);
        Assert.Equal(["Bearer realm=\"qcowactors\"", "Basic realm=\"qcowactors\""], response.Headers.WwwAuthenticate.Select(h => h.ToString()));
    }

    /// <summary>The status, and for a response with a body a problem+json with a detail (returned; "" for HEAD).</summary>
    private static async Task<string> AssertProblemAsync(HttpResponseMessage response, string method, HttpStatusCode status)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{method} {response.RequestMessage?.RequestUri}: expected {(int)status}, got {(int)response.StatusCode} {body}");
        if (method == "HEAD")
            return "";
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using JsonDocument problem = JsonDocument.Parse(body);
        Assert.Equal((int)status, problem.RootElement.GetProperty("status").GetInt32());
        string detail = problem.RootElement.GetProperty("detail").GetString() ?? "";
        Assert.False(string.IsNullOrWhiteSpace(detail), body);
        return detail;
    }

    /// <summary>The row's request on real resources: images, snapshots and bodies that most requests succeed with.</summary>
    private async Task<HttpResponseMessage> SendAsync(string method, string route, string? token, string? form)
    {
        bool deletes = method == "DELETE";
        string path = route
            .Replace("{name}", route == "/images/{name}" && deletes ? "victim" : AuthFixture.Disk, StringComparison.Ordinal)
            .Replace("{snapshot}", deletes ? "victim-snap" : "keep", StringComparison.Ordinal)
            .Replace("{id}", "0123456789abcdef0123456789abcdef", StringComparison.Ordinal)
            .Replace("{documentName}", "v1", StringComparison.Ordinal)
            .Replace("{**path}", "index.html", StringComparison.Ordinal);
        string baseUrl = route.StartsWith("/bootstrap/", StringComparison.Ordinal) ? fixture.ManagementUrl : fixture.Server.BaseUrl;
        var request = new HttpRequestMessage(new HttpMethod(method), baseUrl + path) { Content = Body(method, route) };
        if (token is not null)
            request.Headers.Authorization = AuthTokens.Header(token, form!);
        return await _client.SendAsync(request);
    }

    private static HttpContent? Body(string method, string route) => (method, route) switch
    {
        ("POST", "/images") => Json($$"""{"name":"auth-created-{{Interlocked.Increment(ref _unique)}}","size":"1M"}"""),
        ("PATCH", "/images/{name}") => Json($$"""{"size":{{AuthFixture.DiskSize}}}"""),
        ("POST", "/images/{name}/snapshots") => Json($$"""{"name":"auth-snap-{{Interlocked.Increment(ref _unique)}}"}"""),
        ("PATCH", _) => Json("""{"op":"flush"}"""),
        ("POST", "/images/{name}/tickets") => Json("{}"),
        ("PUT", _) => Range(new ByteArrayContent(new byte[512])),
        _ => null,
    };

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static ByteArrayContent Range(ByteArrayContent content)
    {
        content.Headers.ContentRange = new ContentRangeHeaderValue(0, 511);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return content;
    }

    [Fact]
    public async Task A_ticket_made_with_a_write_token_serves_qemu_and_writes_with_no_header_while_tokens_guard_the_rest()
    {
        var server = fixture.Server; // its client sends the admin token
        using (var reader = new HttpClient { BaseAddress = server.Client.BaseAddress })
        {
            reader.DefaultRequestHeaders.Authorization = AuthTokens.Header(AuthTokens.Read, "Bearer");
            using var content = new StringContent("""{"scope":"write"}""", System.Text.Encoding.UTF8, "application/json");
            using var refused = await reader.PostAsync($"images/{AuthFixture.Disk}/tickets", content);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }
        var ticket = await server.Api.CreateTicketAsync(AuthFixture.Disk, "write");
        using var bare = new HttpClient { BaseAddress = server.Client.BaseAddress };
        var api = new ImageApi(bare).ThroughTicket(ticket.Url);
        var data = new byte[65536];
        Array.Fill(data, (byte)0x5a);

        await api.PutAsync(AuthFixture.Disk, 1 << 20, data);

        Assert.Equal(data, await api.GetRangeAsync(AuthFixture.Disk, 1 << 20, data.Length));
        var viaQemu = ProcessRunner.Run(Qemu.QemuIo, ["-r", "-f", "raw", "-c", $"read -P 0x5a {1 << 20} 65536",
            RealClientTests.HttpDisk(server.BaseUrl + ticket.Url)]);
        Assert.True(viaQemu.ExitCode == 0 && !viaQemu.Output.Contains("fail", StringComparison.OrdinalIgnoreCase), viaQemu.ToString());
        using (var noToken = await bare.GetAsync($"images/{AuthFixture.Disk}/data"))
            Assert.Equal(HttpStatusCode.Unauthorized, noToken.StatusCode);
        using (var deleted = await server.Client.DeleteAsync($"images/{AuthFixture.Disk}/tickets/{ticket.Id}"))
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        using var gone = await bare.GetAsync(ticket.Url);
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    public void Dispose()
    {
        _client.Dispose();
        _scratch.Dispose();
    }
}
