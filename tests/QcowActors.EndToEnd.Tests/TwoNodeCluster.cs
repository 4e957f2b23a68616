using System.Globalization;
using System.Net;
using System.Net.Sockets;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Two server processes over one store forming a loopback cluster (node 0 is the seed), as
/// <see cref="ForwardingMemoryTests"/> starts them: enough to send a request to the node that does
/// not own an image. Disposal kills both and deletes the store.
/// </summary>
internal sealed class TwoNodeCluster : IAsyncDisposable
{
    public const string NodeHeader = "X-QcowActors-Node";
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(90);

    private readonly TempDirectory _store;

    private TwoNodeCluster(TempDirectory store, ServerProcess[] nodes, string[] addresses)
    {
        _store = store;
        Nodes = nodes;
        Addresses = addresses;
    }

    public IReadOnlyList<ServerProcess> Nodes { get; }

    /// <summary>The cluster address of each node, as its responses carry it in X-QcowActors-Node.</summary>
    public IReadOnlyList<string> Addresses { get; }

    public string StoreDirectory => _store.Path;

    /// <summary>
    /// Starts both nodes with <paramref name="environment"/> added to each, and waits until both are
    /// Up members; their log lines about images go to <paramref name="events"/> (as node0, node1).
    /// </summary>
    public static async Task<TwoNodeCluster> StartAsync(string name, IReadOnlyDictionary<string, string> environment, ServerEvents? events = null)
    {
        var store = new TempDirectory($"qcowactors-{name}");
        var nodes = new List<ServerProcess>();
        try
        {
            int seedPort = FreePort();
            string seed = $"akka.tcp://QcowActors@127.0.0.1:{seedPort}";
            string key = ClusterKeys.NewForwardingKey();
            ServerOptions Node(int index, int port)
            {
                // The caller's settings may override the key and the node header, not the ports.
                var env = ClusterKeys.NodeEnvironment(key);
                foreach (var (name, value) in environment)
                    env[name] = value;
                env["Cluster__Port"] = port.ToString(CultureInfo.InvariantCulture);
                env["Cluster__SeedNodes__0"] = seed;
                // One line per forwarded request at Information: noise that costs CPU on a 2-core machine.
                env["Logging__LogLevel__Yarp"] = "Warning";
                return new ServerOptions { StoreDirectory = store.Path, Environment = env, OutputLine = events?.For($"node{index}") };
            }
            nodes.Add(await ServerProcess.StartAsync(Node(0, seedPort)));
            nodes.Add(await ServerProcess.StartAsync(Node(1, FreePort())));
            var addresses = await Task.WhenAll(nodes.Select(ReadyAddressAsync));
            Assert.NotEqual(addresses[0], addresses[1]);
            return new TwoNodeCluster(store, nodes.ToArray(), addresses);
        }
        catch
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
            store.Dispose();
            throw;
        }
    }

    /// <summary>The node that owns <paramref name="image"/>: the X-QcowActors-Node of a one-byte read sent to node 0.</summary>
    public async Task<(ServerProcess Owner, ServerProcess Other, string OwnerAddress)> OwnerOfAsync(string image)
    {
        using var probe = new HttpRequestMessage(HttpMethod.Get, $"images/{image}/data");
        probe.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(0, 0);
        using var response = await Nodes[0].Client.SendAsync(probe);
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        var owner = Assert.Single(response.Headers.GetValues(NodeHeader));
        Assert.Contains(owner, Addresses);
        return owner == Addresses[0] ? (Nodes[0], Nodes[1], owner) : (Nodes[1], Nodes[0], owner);
    }

    public string AddressOf(ServerProcess node) => Addresses[Nodes.ToList().IndexOf(node)];

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes)
        {
            await node.DisposeAsync();
        }
        _store.Dispose();
    }

    /// <summary>The node's own cluster address, once it is an Up member (ready).</summary>
    private static async Task<string> ReadyAddressAsync(ServerProcess node)
    {
        var deadline = DateTime.UtcNow + ReadyTimeout;
        while (true)
        {
            using var response = await node.Client.GetAsync("healthz/ready");
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return Assert.Single(response.Headers.GetValues(NodeHeader));
            }
            Assert.True(DateTime.UtcNow < deadline, $"node not ready in {ReadyTimeout.TotalSeconds} s: {node.Output}");
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
