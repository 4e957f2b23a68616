using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.DependencyInjection;
using QcowActors.Api.Tests.Support;
using Xunit;

namespace QcowActors.Api.Tests.Auth;

/// <summary>The token scheme in the real pipeline (in process, real Kestrel on loopback); tests/QcowActors.EndToEnd.Tests/AuthTests goes row by row over the README table.</summary>
public sealed class TokenAuthenticationTests : IAsyncLifetime
{
    private ApiServer _server = null!;

    public async Task InitializeAsync() => _server = await ApiServer.StartWithEngineAsync(AuthTestTokens.Settings);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string? token = null, string? scheme = "Bearer", HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = content };
        if (token is not null)
        {
            request.Headers.Authorization = scheme == "Basic"
                ? new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("any:" + token)))
                : new AuthenticationHeaderValue(scheme!, token);
        }
        return await _server.Client.SendAsync(request);
    }

    [Fact]
    public async Task Without_a_token_the_answer_is_401_with_both_challenges()
    {
        using HttpResponseMessage response = await SendAsync(HttpMethod.Get, "/images");
        await Problem.AssertAsync(response, HttpStatusCode.Unauthorized, "GET /images needs a token with scope read");
        Assert.Equal(["Bearer realm=\"qcowactors\"", "Basic realm=\"qcowactors\""], response.Headers.WwwAuthenticate.Select(h => h.ToString()));
    }

    [Fact]
    public async Task Wrong_and_short_tokens_are_401_saying_why()
    {
        using (HttpResponseMessage wrong = await SendAsync(HttpMethod.Get, "/images", "wrong-token-0123456789abcdefghijklmnopqrstu"))
            await Problem.AssertAsync(wrong, HttpStatusCode.Unauthorized, "not one this server accepts");
        foreach (string scheme in new[] { "Bearer", "Basic" })
        {
            using HttpResponseMessage shortToken = await SendAsync(HttpMethod.Get, "/images", AuthTestTokens.Short, scheme);
            await Problem.AssertAsync(shortToken, HttpStatusCode.Unauthorized, "tokens are at least 32 characters");
            Assert.Equal(2, shortToken.Headers.WwwAuthenticate.Count);
        }
    }

    [Fact]
    public async Task A_narrow_scope_is_403_naming_both_scopes_and_a_wide_one_passes()
    {
        var body = new StringContent("""{"name":"auth-inproc","size":"1M"}""");
        using (HttpResponseMessage forbidden = await SendAsync(HttpMethod.Post, "/images", AuthTestTokens.Write, content: body))
        {
            var problem = await Problem.AssertAsync(forbidden, HttpStatusCode.Forbidden, "POST /images needs a token with scope admin");
            Assert.Contains("token 'writer' has scope write", problem.GetProperty("detail").GetString());
        }
        using (HttpResponseMessage created = await SendAsync(HttpMethod.Post, "/images", AuthTestTokens.Admin, "Basic", new StringContent("""{"name":"auth-inproc","size":"1M"}""")))
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using (HttpResponseMessage read = await SendAsync(HttpMethod.Get, "/images/auth-inproc/data", AuthTestTokens.Read, "Basic"))
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        using (HttpResponseMessage readOnly = await SendAsync(HttpMethod.Put, "/images/auth-inproc/data", AuthTestTokens.Read, content: new ByteArrayContent(new byte[512])))
            await Problem.AssertAsync(readOnly, HttpStatusCode.Forbidden, "needs a token with scope write (or admin); token 'reader' has scope read");
    }

    [Fact]
    public async Task Health_probes_need_no_token_but_unknown_paths_do()
    {
        foreach (string probe in new[] { "/healthz/live", "/healthz/ready" })
        {
            using HttpResponseMessage response = await SendAsync(HttpMethod.Get, probe);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using HttpResponseMessage withBadToken = await SendAsync(HttpMethod.Head, probe, "not-a-token");
            Assert.Equal(HttpStatusCode.OK, withBadToken.StatusCode);
        }
        // No path, image or method is revealed without a token.
        using (HttpResponseMessage unknown = await SendAsync(HttpMethod.Get, "/images/nope/unknown"))
            await Problem.AssertAsync(unknown, HttpStatusCode.Unauthorized, "GET /images/nope/unknown needs a token");
        using (HttpResponseMessage wrongMethod = await SendAsync(HttpMethod.Delete, "/healthz/nothing"))
            await Problem.AssertAsync(wrongMethod, HttpStatusCode.Unauthorized);
        using (HttpResponseMessage known = await SendAsync(HttpMethod.Get, "/images/nope/unknown", AuthTestTokens.Read))
            await Problem.AssertAsync(known, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Swagger_ui_and_the_document_need_a_read_token()
    {
        using (HttpResponseMessage ui = await SendAsync(HttpMethod.Get, "/swagger/index.html"))
            Assert.Equal(HttpStatusCode.Unauthorized, ui.StatusCode);
        using (HttpResponseMessage ui = await SendAsync(HttpMethod.Get, "/swagger/index.html", AuthTestTokens.Read, "Basic"))
        {
            Assert.Equal(HttpStatusCode.OK, ui.StatusCode);
            Assert.Equal("text/html", ui.Content.Headers.ContentType?.MediaType);
        }
        using (HttpResponseMessage css = await SendAsync(HttpMethod.Get, "/swagger/swagger-ui.css", AuthTestTokens.Read))
            Assert.Equal(HttpStatusCode.OK, css.StatusCode);
        using (HttpResponseMessage missing = await SendAsync(HttpMethod.Get, "/swagger/no-such-file.js", AuthTestTokens.Read))
            await Problem.AssertAsync(missing, HttpStatusCode.NotFound);
        using (HttpResponseMessage document = await SendAsync(HttpMethod.Get, "/openapi/v1.json"))
            Assert.Equal(HttpStatusCode.Unauthorized, document.StatusCode);
        using (HttpResponseMessage document = await SendAsync(HttpMethod.Get, "/openapi/v1.json", AuthTestTokens.Read))
            Assert.Equal(HttpStatusCode.OK, document.StatusCode);
    }

    [Fact]
    public async Task Without_tokens_no_authentication_service_exists_so_requests_cost_what_they_did()
    {
        await using ApiServer open = await ApiServer.StartWithEngineAsync();
        Assert.Null(open.Services.GetService<IAuthenticationSchemeProvider>());
        Assert.Null(open.Services.GetService<Microsoft.AspNetCore.Authorization.IAuthorizationHandlerProvider>());
        using HttpResponseMessage response = await open.Client.GetAsync("/images");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.NotNull(_server.Services.GetService<IAuthenticationSchemeProvider>());
    }
}
