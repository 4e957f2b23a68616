using System.Net;
using System.Net.Sockets;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Two nodes over one store: a gigabyte PUT and a whole-disk GET sent to the node that does not
/// own the image are forwarded to the owner as streams; neither node's memory grows with them.
/// </summary>
public sealed class ForwardingMemoryTests(ITestOutputHelper output)
{
    private const long GiB = 1024L * 1024 * 1024;
    private const long RssLimit = 300L * 1024 * 1024;
    private const ulong Seed = 0xF0D;
    private const string NodeHeader = "X-QcowActors-Node";

    [Fact]
    public async Task A_gigabyte_through_a_node_that_does_not_own_the_image_streams_both_ways_under_300_MiB_per_node()
    {
        using var store = new TempDirectory("qcowactors-fwd");
        int seedPort = FreePort();
        string seed = $"akka.tcp://QcowActors@127.0.0.1:{seedPort}";
        string key = ClusterKeys.NewForwardingKey();
        ServerOptions Node(int port) => new()
        {
            StoreDirectory = store.Path,
            Environment = new Dictionary<string, string>(ClusterKeys.NodeEnvironment(key))
            {
                ["Cluster__Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Cluster__SeedNodes__0"] = seed,
            },
        };
        await using var first = await ServerProcess.StartAsync(Node(seedPort));
        await using var second = await ServerProcess.StartAsync(Node(FreePort()));
        string firstAddress = await ReadyAddressAsync(first);
        string secondAddress = await ReadyAddressAsync(second);
        Assert.NotEqual(firstAddress, secondAddress);

        await first.Api.CreateAsync("fwd", GiB);
        string owner;
        using (var probe = new HttpRequestMessage(HttpMethod.Get, "images/fwd/data"))
        {
            probe.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(0, 0);
            using var response = await first.Client.SendAsync(probe);
            Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
            owner = Assert.Single(response.Headers.GetValues(NodeHeader));
        }
        var (ownerNode, relay) = owner == firstAddress ? (first, second) : (second, first);
        Assert.Contains(owner, new[] { firstAddress, secondAddress });
        output.WriteLine($"owner {owner}; requests go through {(relay == first ? firstAddress : secondAddress)}");

        using (var content = new PatternContent(Seed, 0, GiB, knownLength: true))
        using (var put = new HttpRequestMessage(HttpMethod.Put, "images/fwd/data") { Content = content })
        {
            put.Content.Headers.Add("Content-Range", $"bytes 0-{GiB - 1}/*");
            using var response = await relay.Client.SendAsync(put);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            Assert.Equal(owner, Assert.Single(response.Headers.GetValues(NodeHeader)));
        }
        output.WriteLine($"peak RSS after the PUT: relay {relay.PeakRssBytes() >> 20} MiB, owner {ownerNode.PeakRssBytes() >> 20} MiB");

        using (var get = new HttpRequestMessage(HttpMethod.Get, "images/fwd/data"))
        using (var response = await relay.Client.SendAsync(get, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(owner, Assert.Single(response.Headers.GetValues(NodeHeader)));
            Assert.Equal(GiB, response.Content.Headers.ContentLength);
            await using var body = await response.Content.ReadAsStreamAsync();
            var actual = new byte[1024 * 1024];
            var expected = new byte[actual.Length];
            for (long position = 0; position < GiB; position += actual.Length)
            {
                await body.ReadExactlyAsync(actual);
                Pattern.Fill(Seed, position, expected);
                long diff = DiskModel.FirstDifference(expected, actual);
                Assert.True(diff < 0, $"disk offset {position + diff} differs after the forwarded round trip");
            }
            Assert.Equal(0, await body.ReadAsync(new byte[1]));
        }
        long relayPeak = relay.PeakRssBytes(), ownerPeak = ownerNode.PeakRssBytes();
        output.WriteLine($"peak RSS after the GET: relay {relayPeak >> 20} MiB, owner {ownerPeak >> 20} MiB");
        Assert.True(relayPeak < RssLimit, $"the forwarding node peaked at {relayPeak >> 20} MiB (limit {RssLimit >> 20} MiB)");
        Assert.True(ownerPeak < RssLimit, $"the owner peaked at {ownerPeak >> 20} MiB (limit {RssLimit >> 20} MiB)");
    }

    /// <summary>The node's own cluster address, once it is an Up member (ready).</summary>
    private static async Task<string> ReadyAddressAsync(ServerProcess node)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            using var response = await node.Client.GetAsync("healthz/ready");
            if (response.StatusCode == HttpStatusCode.OK) return Assert.Single(response.Headers.GetValues(NodeHeader));
            Assert.True(DateTime.UtcNow < deadline, $"node not ready in 60 s: {node.Output}");
            await Task.Delay(200);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
