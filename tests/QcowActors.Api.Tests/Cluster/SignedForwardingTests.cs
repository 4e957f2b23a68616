using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using QcowActors.Actors.Cluster;
using QcowActors.Api.Cluster;
using Xunit;

namespace QcowActors.Api.Tests.Cluster;

/// <summary>
/// A forwarding node (OwnerForwarder) and a receiving node (EdgeGuard, then an echo of what the
/// request looks like after it), each a real Kestrel on 127.0.0.1: what a peer's forwarded request
/// carries, what the receiver trusts and what it removes.
/// </summary>
public sealed class SignedForwardingTests : IAsyncLifetime
{
    private static readonly string Key = Convert.ToBase64String(Enumerable.Range(100, 32).Select(i => (byte)i).ToArray());
    private WebApplication _owner = null!;
    private string _ownerUrl = null!;

    public async Task InitializeAsync()
    {
        _owner = Host(Key, exposeNode: true, app => app.Run(EchoAsync));
        await _owner.StartAsync();
        _ownerUrl = _owner.Urls.First();
    }

    public async Task DisposeAsync() => await _owner.DisposeAsync();

    /// <summary>A host with the node's edge and forwarding services, and <paramref name="configure"/> after EdgeGuard.</summary>
    private static WebApplication Host(string? key, bool exposeNode, Action<WebApplication> configure)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(Options.Create(new ClusterSettings { ForwardingKey = key, ExposeNodeHeader = exposeNode }));
        builder.Services.AddSingleton<ForwardingSignature>();
        builder.Services.AddHttpForwarder();
        builder.Services.AddSingleton<OwnerForwarder>();
        builder.Services.AddProblemDetails();
        var app = builder.Build();
        app.UseMiddleware<EdgeGuard>();
        configure(app);
        return app;
    }

    /// <summary>What reached the handler after EdgeGuard: the trusted hop count, the routing headers left, Authorization, the raw target.</summary>
    private static async Task EchoAsync(HttpContext context)
    {
        context.Response.Headers[NodeLifecycle.HeaderName] = "akka.tcp://QcowActors@10.1.2.3:4053";
        var routing = context.Request.Headers.Keys.Where(RoutingHeaders.IsRoutingHeader).ToArray();
        await context.Response.WriteAsJsonAsync(new
        {
            hops = context.Features.Get<ForwardedByPeer>()?.Hops,
            routing,
            authorization = context.Request.Headers.Authorization.ToString(),
            target = context.Features.Get<IHttpRequestFeature>()!.RawTarget,
        });
    }

    private static async Task<(HttpResponseMessage Response, JsonElement Echo)> SendAsync(HttpClient client, HttpRequestMessage request)
    {
        var response = await client.SendAsync(request);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        return (response, JsonDocument.Parse(body).RootElement);
    }

    /// <summary>A node that forwards every request to the owner, as hop <paramref name="hops"/>.</summary>
    private async Task<WebApplication> StartRelayAsync(string? key, bool exposeNode, int hops)
    {
        var relay = Host(key, exposeNode, app => app.Run(async context =>
            Assert.True(await context.RequestServices.GetRequiredService<OwnerForwarder>().TryForwardAsync(context, _ownerUrl, hops))));
        await relay.StartAsync();
        return relay;
    }

    [Theory]
    [InlineData("/images/vm1/data")]
    [InlineData("/images/vm1/data?flush=n")]
    [InlineData("/images/vm-1.x/data/extents?context=zero&x=%20y%2Fz")]
    [InlineData("/images/vm1/data/some%20where?a=%C3%A9")]
    public async Task A_forwarded_request_is_signed_and_the_owner_trusts_its_hop_count_and_nothing_else(string target)
    {
        await using var relay = await StartRelayAsync(Key, exposeNode: true, hops: 2);
        using var client = new HttpClient { BaseAddress = new Uri(relay.Urls.First()) };
        using var request = new HttpRequestMessage(HttpMethod.Put, target) { Content = new ByteArrayContent([1, 2, 3]) };
        // A client's attempt to steer routing, and its credentials.
        request.Headers.TryAddWithoutValidation("X-QcowActors-Hops", "-5");
        request.Headers.TryAddWithoutValidation("x-qcowactors-forwarded-at", "1");
        request.Headers.TryAddWithoutValidation("X-QcowActors-Signature", Convert.ToBase64String(new byte[32]));
        request.Headers.TryAddWithoutValidation("X-QcowActors-Anything", "x");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer client-token.with/odd+chars==");

        var (response, echo) = await SendAsync(client, request);
        Assert.Equal(2, echo.GetProperty("hops").GetInt32());
        // The owner verified the target exactly as it arrived, and kept no routing header.
        Assert.Equal(target, echo.GetProperty("target").GetString());
        Assert.Empty(echo.GetProperty("routing").EnumerateArray());
        // Authorization passes through unchanged: the owner checks the token again.
        Assert.Equal("Bearer client-token.with/odd+chars==", echo.GetProperty("authorization").GetString());
        Assert.Equal("akka.tcp://QcowActors@10.1.2.3:4053", Assert.Single(response.Headers.GetValues(NodeLifecycle.HeaderName)));
    }

    [Fact]
    public async Task A_node_with_another_key_is_not_trusted_and_its_routing_headers_are_removed()
    {
        string other = Convert.ToBase64String(new byte[32]);
        await using var relay = await StartRelayAsync(other, exposeNode: true, hops: 3);
        using var client = new HttpClient { BaseAddress = new Uri(relay.Urls.First()) };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/images/vm1/data");
        var (_, echo) = await SendAsync(client, request);
        Assert.Equal(JsonValueKind.Null, echo.GetProperty("hops").ValueKind);
        Assert.Empty(echo.GetProperty("routing").EnumerateArray());
    }

    [Fact]
    public async Task A_relay_that_does_not_expose_its_node_does_not_relay_the_owners_either()
    {
        await using var relay = await StartRelayAsync(Key, exposeNode: false, hops: 1);
        using var client = new HttpClient { BaseAddress = new Uri(relay.Urls.First()) };
        var (response, echo) = await SendAsync(client, new HttpRequestMessage(HttpMethod.Get, "/images/vm1/data"));
        Assert.Equal(1, echo.GetProperty("hops").GetInt32());
        Assert.False(response.Headers.Contains(NodeLifecycle.HeaderName));
    }

    [Fact]
    public async Task A_client_request_loses_every_routing_header_whatever_its_case_and_keeps_the_others()
    {
        using var client = new HttpClient { BaseAddress = new Uri(_ownerUrl) };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/images/vm1/data");
        request.Headers.TryAddWithoutValidation("X-QcowActors-Hops", "3");
        request.Headers.TryAddWithoutValidation("x-qcowactors-hops", "999999");
        request.Headers.TryAddWithoutValidation("X-QCOWACTORS-NODE", "akka.tcp://QcowActors@127.0.0.1:1");
        request.Headers.TryAddWithoutValidation("X-QcowActors-Forwarded-At", DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString());
        request.Headers.TryAddWithoutValidation("X-QcowActors-Signature", "forged");
        request.Headers.TryAddWithoutValidation("X-QcowActorsX", "not ours: no dash after the name");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer t");
        var (_, echo) = await SendAsync(client, request);
        Assert.Equal(JsonValueKind.Null, echo.GetProperty("hops").ValueKind);
        Assert.Empty(echo.GetProperty("routing").EnumerateArray());
        Assert.Equal("Bearer t", echo.GetProperty("authorization").GetString());
    }

    [Fact]
    public async Task Looking_for_routing_headers_allocates_nothing()
    {
        // Kestrel's own request headers, the type every ordinary request has.
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var app = builder.Build();
        app.Run(async context =>
        {
            var headers = context.Request.Headers;
            bool found = RoutingHeaders.AnyIn(headers); // compiles the scan for this type once
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100; i++) found &= RoutingHeaders.AnyIn(headers);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            await context.Response.WriteAsync($"{found} {allocated} {headers.GetType().Name}");
        });
        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        using var plain = new HttpRequestMessage(HttpMethod.Get, "/");
        plain.Headers.TryAddWithoutValidation("Authorization", "Bearer t");
        plain.Headers.TryAddWithoutValidation("X-Other", "1");
        Assert.Equal("False 0 HttpRequestHeaders", await (await client.SendAsync(plain)).Content.ReadAsStringAsync());
        using var marked = new HttpRequestMessage(HttpMethod.Get, "/");
        marked.Headers.TryAddWithoutValidation("x-qcowactors-whatever", "1");
        Assert.Equal("True 0 HttpRequestHeaders", await (await client.SendAsync(marked)).Content.ReadAsStringAsync());
    }
}
