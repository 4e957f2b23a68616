using System.Diagnostics;
using Xunit;

namespace QcowActors.Cluster.Tests;

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "loopback cluster";
}

/// <summary>
/// The 3-node seed-node cluster the scenarios share (one store, 6 images), started once; the
/// ledger of every server process's qcow-writer lines; and the figures the scenarios measured.
/// Every cluster it starts runs remoting over mutual TLS, with certificates made once per fixture.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public const int NodeCount = 3;
    public const int ImageCount = 6;
    public const long ImageSize = 64L * 1024 * 1024;
    public const int RegionBytes = 16 * 1024 * 1024;

    private readonly List<LoopbackCluster> _clusters = [];
    private readonly List<string> _figures = [];
    private LoopbackCluster? _main;
    private IReadOnlyList<ImageModel>? _mainImages;

    internal WriterLedger Ledger { get; } = new();

    /// <summary>The certificates every node holds and trusts (a private CA, one node certificate, as in k8s/).</summary>
    internal LoopbackTls Tls { get; } = LoopbackTls.SharedCertificate();

    /// <summary>Every node's whole log goes here (bin/.../cluster-logs/RUN).</summary>
    internal string LogDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "cluster-logs", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture));

    internal LoopbackCluster Main => _main ?? throw new InvalidOperationException("The fixture is not initialized.");

    internal IReadOnlyList<ImageModel> MainImages => _mainImages ?? throw new InvalidOperationException("The fixture is not initialized.");

    internal TimeSpan MainFormedIn { get; private set; }

    internal IReadOnlyList<string> Figures
    {
        get
        {
            lock (_figures)
            {
                return _figures.ToList();
            }
        }
    }

    internal void AddFigure(string figure)
    {
        lock (_figures)
        {
            _figures.Add(figure);
        }
    }

    /// <summary>Runs whose logs are kept in cluster-logs (the oldest go, so the folder does not grow without end).</summary>
    private const int KeptRuns = 5;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(LogDirectory);
        foreach (var old in new DirectoryInfo(Path.GetDirectoryName(LogDirectory)!).GetDirectories().OrderByDescending(d => d.Name, StringComparer.Ordinal).Skip(KeptRuns))
        {
            old.Delete(recursive: true);
        }
        var watch = Stopwatch.StartNew();
        _main = await StartClusterAsync("seeds", ClusterFormation.SeedNodes);
        MainFormedIn = watch.Elapsed;
        _mainImages = await CreateImagesAsync(_main, "vm", seed: 1000);
    }

    /// <summary>Starts a cluster whose processes the ledger follows and the fixture disposes.</summary>
    internal async Task<LoopbackCluster> StartClusterAsync(string name, ClusterFormation formation)
    {
        var cluster = await LoopbackCluster.StartAsync(name, formation, NodeCount, Ledger, LogDirectory, Tls);
        lock (_clusters)
        {
            _clusters.Add(cluster);
        }
        return cluster;
    }

    /// <summary>Creates the images through node 0 and returns their (all-zero) models.</summary>
    internal static async Task<IReadOnlyList<ImageModel>> CreateImagesAsync(LoopbackCluster cluster, string prefix, int seed)
    {
        var images = new List<ImageModel>();
        var node = cluster.Nodes[0] ?? throw new InvalidOperationException("node 0 is not started");
        for (var i = 0; i < ImageCount; i++)
        {
            var name = $"{prefix}{i}";
            await node.Server.Api.CreateAsync(name, ImageSize);
            images.Add(new ImageModel(name, i, ImageSize, RegionBytes, seed + i));
        }
        return images;
    }

    public async Task DisposeAsync()
    {
        List<LoopbackCluster> clusters;
        lock (_clusters)
        {
            clusters = _clusters.ToList();
        }
        foreach (var cluster in clusters)
        {
            await cluster.DisposeAsync();
        }
        Tls.Dispose();
    }
}
