using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using QcowActors.Actors.Cluster;
using QcowActors.Actors.Io;
using QcowActors.Api.Tests.Support;
using Xunit;

namespace QcowActors.Api.Tests.Cluster;

/// <summary>A single node as `dotnet run` starts it: a cluster of one on 127.0.0.1, answering with its address (Cluster:ExposeNodeHeader's default there).</summary>
public sealed partial class NodeHttpTests : IAsyncLifetime
{
    private ApiServer _server = null!;

    public async Task InitializeAsync() => _server = await ApiServer.StartWithEngineAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static StringContent Json(string body) => new(body, System.Text.Encoding.UTF8, "application/json");

    [GeneratedRegex(@"^akka\.tcp://QcowActors@127\.0\.0\.1:[1-9][0-9]*$")]
    private static partial Regex NodeAddress();

    [Theory]
    [InlineData("/healthz/ready")]
    [InlineData("/images")]
    [InlineData("/images/nothing-here")]
    [InlineData("/no/such/path")]
    public async Task Every_response_names_the_node_that_executed_it(string path)
    {
        using var response = await _server.Client.GetAsync(path);
        string node = Assert.Single(response.Headers.GetValues(Api.Cluster.NodeLifecycle.HeaderName));
        Assert.Matches(NodeAddress(), node);
        Assert.Equal(_server.Services.GetRequiredService<ClusterNode>().Address, node);
    }

    [Fact]
    public async Task With_Cluster_ExposeNodeHeader_false_no_response_names_the_node()
    {
        await using var server = await ApiServer.StartWithEngineAsync("Cluster:ExposeNodeHeader=false");
        foreach (string path in new[] { "/healthz/ready", "/images", "/images/nothing-here", "/no/such/path" })
        {
            using var response = await server.Client.GetAsync(path);
            Assert.False(response.Headers.Contains(Api.Cluster.NodeLifecycle.HeaderName), path);
        }
    }

    [Fact]
    public async Task A_single_node_is_ready_and_serves_images_it_owns()
    {
        Assert.Equal("ok", await _server.Client.GetStringAsync("/healthz/ready"));
        using var created = await _server.Client.PostAsync("/images", Json("""{"name":"n1","size":1048576}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using var put = new HttpRequestMessage(HttpMethod.Put, "/images/n1/data") { Content = new ByteArrayContent([1, 2, 3, 4]) };
        put.Content.Headers.Add("Content-Range", "bytes 0-3/*");
        using var written = await _server.Client.SendAsync(put);
        Assert.True(written.IsSuccessStatusCode, await written.Content.ReadAsStringAsync());
        Assert.True(_server.Services.GetRequiredService<ImageOwnership>().Owns("n1"));
    }

    [Fact]
    public async Task An_image_held_by_another_process_is_503_with_retry_after_and_nothing_is_written()
    {
        using (var created = await _server.Client.PostAsync("/images", Json("""{"name":"held","size":1048576}""")))
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        string path = _server.ImagePath("held");
        byte[] before = await File.ReadAllBytesAsync(path);
        // Another node's writer: the same exclusive lock, taken first.
        await using (var holder = new RandomAccessImageFile(path, writable: true))
        {
            using var put = new HttpRequestMessage(HttpMethod.Put, "/images/held/data") { Content = new ByteArrayContent(new byte[4096]) };
            put.Content.Headers.Add("Content-Range", "bytes 0-4095/*");
            using var response = await _server.Client.SendAsync(put);
            await Problem.AssertAsync(response, HttpStatusCode.ServiceUnavailable, "held open by another process");
            Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
        }
        Assert.Equal(before, await File.ReadAllBytesAsync(path));
    }

    [Theory]
    [InlineData("/images/a", "a")]
    [InlineData("/images/a/data", "a")]
    [InlineData("/images/disk-1.x/data/extents", "disk-1.x")]
    [InlineData("/images", null)]
    [InlineData("/images/", null)]
    [InlineData("/images/..", null)]
    [InlineData("/healthz/ready", null)]
    [InlineData("/imagesx/a", null)]
    public void Requests_about_one_image_are_routed_by_its_name(string path, string? image)
        => Assert.Equal(image, Api.Cluster.ImageRouting.ImageOf(path));

    [Theory]
    [InlineData("http://127.0.0.1:8081", "10.0.0.5", "http://127.0.0.1:8081")]
    [InlineData("http://0.0.0.0:8080", "10.0.0.5", "http://10.0.0.5:8080")]
    [InlineData("http://[::]:8080", "10.0.0.5", "http://10.0.0.5:8080")]
    [InlineData("http://+:8080", "10.0.0.5", "http://10.0.0.5:8080")]
    [InlineData("https://0.0.0.0:8443", "10.0.0.5", null)]
    public void Other_nodes_forward_to_the_listening_port_at_the_cluster_hostname(string address, string hostname, string? expected)
        => Assert.Equal(expected, Api.Cluster.NodeLifecycle.PublicUrl([address], hostname));
}
