using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Cluster.Tests;

/// <summary>
/// What a client cannot do to a cluster (issue 14): steer routing with X-QcowActors-* headers,
/// forge or replay a peer's signature, or reach the API through the management port. Two real
/// nodes on 127.0.0.1 (<see cref="EdgeClusterFixture"/>); requests go to the node that does not own
/// the image, with <see cref="ClientAuth.Current"/>.
/// </summary>
[Collection(EdgeCollection.Name)]
public sealed class EdgeSecurityTests(EdgeClusterFixture fixture, ITestOutputHelper output)
{
    private const string Image = EdgeClusterFixture.Image;
    private const string Untrusted = "Untrusted forwarded request";
    private const int BlockSize = 4096;

    public static TheoryData<int, string> Spoofs => new()
    {
        // Hops=3 is what made a node refuse to forward before: "forwarded 3 times without reaching its owner".
        { 1, "X-QcowActors-Hops: 3" },
        { 2, "X-QcowActors-Hops: -5" },
        { 3, "X-QcowActors-Hops: 999999" },
        { 4, "other X-QcowActors-* headers" },
        { 5, "a forged signature with Hops=2" },
        { 6, "a signature with the cluster's key, for another request, with Hops=3" },
    };

    /// <summary>The headers of spoof <paramref name="row"/>, for a request with <paramref name="method"/>.</summary>
    private List<(string Name, string Value)> SpoofHeaders(int row, HttpMethod method)
    {
        string now = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        return row switch
        {
            1 => [("X-QcowActors-Hops", "3")],
            2 => [("X-QcowActors-Hops", "-5")],
            3 => [("X-QcowActors-Hops", "999999")],
            4 => [("X-QcowActors-Node", "akka.tcp://QcowActors@127.0.0.1:1"), ("x-qcowactors-route-to", "node0"), ("X-QCOWACTORS-HOPS", "3")],
            5 => [("X-QcowActors-Hops", "2"), ("X-QcowActors-Forwarded-At", now),
                  ("X-QcowActors-Signature", Sign(RandomNumberGenerator.GetBytes(32), method.Method, $"/images/{Image}/data", 2, now))],
            // A captured signature replayed onto another request: it names another target.
            6 => [("X-QcowActors-Hops", "3"), ("X-QcowActors-Forwarded-At", now),
                  ("X-QcowActors-Signature", Sign(ClusterKey, method.Method, "/images/another/data", 3, now))],
            _ => throw new ArgumentOutOfRangeException(nameof(row)),
        };
    }

    private byte[] ClusterKey => Convert.FromBase64String(fixture.Cluster.ForwardingKey);

    /// <summary>The signature as README documents it, computed here independently of the server's code.</summary>
    private static string Sign(byte[] key, string method, string target, int hops, string forwardedAt)
        => Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"qcowactors-forward-v1\n{method}\n{target}\n{hops}\n{forwardedAt}")));

    private static HttpRequestMessage With(HttpRequestMessage request, IEnumerable<(string Name, string Value)> headers)
    {
        foreach (var (name, value) in headers)
        {
            Assert.True(request.Headers.TryAddWithoutValidation(name, value), name);
        }
        return request;
    }

    private static string? ExecutedBy(HttpResponseMessage response)
        => response.Headers.TryGetValues(LoadClient.NodeHeader, out var values) ? values.Single() : null;

    [Theory]
    [MemberData(nameof(Spoofs))]
    public async Task A_client_request_through_a_node_that_does_not_own_the_image_is_forwarded_whatever_routing_headers_it_sends(int row, string spoof)
    {
        output.WriteLine($"{spoof}; {fixture.Auth.Name}; owner {fixture.Owner}, sent to {fixture.Other}");
        using var client = fixture.Auth.ClientFor(fixture.Other.BaseUrl);
        long offset = row * BlockSize;
        byte[] block = RandomNumberGenerator.GetBytes(BlockSize);

        using (var put = With(new HttpRequestMessage(HttpMethod.Put, $"images/{Image}/data") { Content = new ByteArrayContent(block) }, SpoofHeaders(row, HttpMethod.Put)))
        {
            put.Content!.Headers.ContentRange = new ContentRangeHeaderValue(offset, offset + BlockSize - 1);
            using var response = await client.SendAsync(put);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"PUT with {spoof}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.Equal(fixture.Owner.Address, ExecutedBy(response));
        }
        using (var get = With(new HttpRequestMessage(HttpMethod.Get, $"images/{Image}/data"), SpoofHeaders(row, HttpMethod.Get)))
        {
            get.Headers.Range = new RangeHeaderValue(offset, offset + BlockSize - 1);
            using var response = await client.SendAsync(get);
            Assert.True(response.StatusCode == HttpStatusCode.PartialContent, $"GET with {spoof}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.Equal(fixture.Owner.Address, ExecutedBy(response));
            Assert.Equal(block, await response.Content.ReadAsByteArrayAsync());
        }
        using (var patch = With(new HttpRequestMessage(HttpMethod.Patch, $"images/{Image}/data")
               {
                   Content = new StringContent("""{"op":"flush"}""", Encoding.UTF8, "application/json"),
               }, SpoofHeaders(row, HttpMethod.Patch)))
        {
            using var response = await client.SendAsync(patch);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"PATCH with {spoof}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.Equal(fixture.Owner.Address, ExecutedBy(response));
        }
        // The node that forwarded signed each request, and the owner verified every signature.
        Assert.Empty(fixture.Owner.Log.Matching(Untrusted));
    }

    [Fact]
    public async Task Without_a_token_the_node_that_does_not_own_the_image_answers_401_itself()
    {
        Assert.NotNull(fixture.Auth.Token);
        using var bare = new HttpClient { BaseAddress = new Uri(fixture.Other.BaseUrl.TrimEnd('/') + "/") };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"images/{Image}/data");
        request.Headers.Range = new RangeHeaderValue(0, 0);

        using var response = await bare.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.False(response.Headers.Contains(LoadClient.NodeHeader) && ExecutedBy(response) == fixture.Owner.Address,
            "the request was forwarded to the owner before it was authenticated");
    }

    [Fact]
    public async Task A_hop_count_signed_with_the_cluster_key_is_trusted_and_the_same_one_signed_two_minutes_ago_is_not()
    {
        using var client = fixture.Auth.ClientFor(fixture.Other.BaseUrl);
        string target = $"/images/{Image}/data";
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        HttpRequestMessage Signed(long at)
        {
            string forwardedAt = at.ToString(CultureInfo.InvariantCulture);
            var request = With(new HttpRequestMessage(HttpMethod.Get, target), [
                ("X-QcowActors-Hops", "3"), ("X-QcowActors-Forwarded-At", forwardedAt), ("X-QcowActors-Signature", Sign(ClusterKey, "GET", target, 3, forwardedAt))]);
            request.Headers.Range = new RangeHeaderValue(0, 0);
            return request;
        }

        // What only a peer can send: the node believes the request went round three times and stops it.
        using (var trusted = Signed(now))
        using (var response = await client.SendAsync(trusted))
        {
            await AssertProblemAsync(response, HttpStatusCode.ServiceUnavailable, "forwarded 3 times");
        }
        // The same, outside the ±60 s window: a replay, served as a client's request.
        using (var stale = Signed(now - 120))
        using (var response = await client.SendAsync(stale))
        {
            Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
            Assert.Equal(fixture.Owner.Address, ExecutedBy(response));
        }
        // The node says so in its log (at most once every 10 s: an earlier one may stand for this one).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (fixture.Other.Log.Matching(Untrusted).Count == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }
        var warnings = fixture.Other.Log.Matching(Untrusted);
        Assert.NotEmpty(warnings);
        output.WriteLine(warnings[^1].Line);
    }

    [Fact]
    public async Task The_management_port_serves_only_bootstrap_and_bootstrap_is_served_only_there()
    {
        for (int i = 0; i < fixture.Cluster.Size; i++)
        {
            var node = fixture.Cluster.Nodes[i]!;
            int port = fixture.Cluster.ManagementPort(i);
            using var management = fixture.Auth.ClientFor($"http://127.0.0.1:{port}");
            using var api = fixture.Auth.ClientFor(node.BaseUrl);

            using (var seeds = await management.GetAsync("bootstrap/seed-nodes"))
            {
                string body = await seeds.Content.ReadAsStringAsync();
                Assert.True(seeds.StatusCode == HttpStatusCode.OK, body);
                // Akka.Management's JSON: {"SelfNode":{"Host":...,"Port":...},"Nodes":[...]}.
                var self = JsonDocument.Parse(body).RootElement.GetProperty("SelfNode");
                Assert.Equal(node.RemotingPort, self.GetProperty("Port").GetInt32());
            }
            foreach (string path in new[] { "images", $"images/{Image}", $"images/{Image}/data", "healthz/ready", "openapi/v1.json", "no/such/path" })
            {
                using var response = await management.GetAsync(path);
                await AssertProblemAsync(response, HttpStatusCode.NotFound, "management port");
            }
            using (var put = new HttpRequestMessage(HttpMethod.Put, $"images/{Image}/data") { Content = new ByteArrayContent(new byte[BlockSize]) })
            {
                put.Content.Headers.ContentRange = new ContentRangeHeaderValue(0, BlockSize - 1);
                using var response = await management.SendAsync(put);
                await AssertProblemAsync(response, HttpStatusCode.NotFound, "management port");
            }
            using (var response = await api.GetAsync("bootstrap/seed-nodes"))
            {
                await AssertProblemAsync(response, HttpStatusCode.NotFound, "no resource at /bootstrap/seed-nodes");
            }
            // The listener is what counts, not what the client says it is talking to.
            using (var spoofed = new HttpRequestMessage(HttpMethod.Get, "bootstrap/seed-nodes"))
            {
                spoofed.Headers.Host = $"127.0.0.1:{port}";
                using var response = await api.SendAsync(spoofed);
                await AssertProblemAsync(response, HttpStatusCode.NotFound, "no resource");
            }
        }
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string detailContains)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("type").GetString()), body);
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("title").GetString()), body);
        Assert.Contains(detailContains, problem.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
    }
}
