using System.Net;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.Cluster.Tests;

[CollectionDefinition(Name)]
public sealed class EdgeCollection : ICollectionFixture<EdgeClusterFixture>
{
    public const string Name = "edge cluster";
}

/// <summary>
/// Two loopback nodes formed by config discovery (so both listen on a management port too), one
/// image, and which node owns it: enough to send requests to the node that does not.
/// </summary>
public sealed class EdgeClusterFixture : IAsyncLifetime
{
    public const string Image = "edge0";
    public const long ImageSize = 16L * 1024 * 1024;

    private LoopbackCluster? _cluster;

    /// <summary>Beside the scenarios' runs (the scenario fixture keeps the newest few).</summary>
    internal string LogDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "cluster-logs",
        DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture) + "-edge");

    internal ClientAuth Auth { get; } = ClientAuth.Current;

    internal LoopbackCluster Cluster => _cluster ?? throw new InvalidOperationException("The fixture is not initialized.");

    internal NodeProcess Owner { get; private set; } = null!;

    /// <summary>The node that does not own <see cref="Image"/>: it forwards.</summary>
    internal NodeProcess Other { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(LogDirectory);
        _cluster = await LoopbackCluster.StartAsync("edge", ClusterFormation.ConfigDiscovery, 2, new WriterLedger(), LogDirectory, settings: Auth.NodeEnvironment);
        var first = Cluster.Nodes[0]!;
        using var client = Auth.ClientFor(first.BaseUrl);
        await new ImageApi(client).CreateAsync(Image, ImageSize);
        using var probe = new HttpRequestMessage(HttpMethod.Get, $"images/{Image}/data");
        probe.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(0, 0);
        using var response = await client.SendAsync(probe);
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        string owner = Assert.Single(response.Headers.GetValues(LoadClient.NodeHeader));
        Owner = Cluster.ByAddress(owner) ?? throw new InvalidOperationException($"{owner} is not a node of the cluster");
        Other = Cluster.Nodes.Single(n => n != Owner)!;
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }
}
