using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Cluster.Tests;

/// <summary>
/// Who may join (Cluster:Tls): small loopback clusters of real server processes whose remoting
/// runs over mutual TLS, with certificates made at test time. Nodes holding certificates the
/// cluster trusts form it and serve each other's images; a process holding any other certificate
/// never becomes a member, and the members keep serving.
/// </summary>
public sealed class RemotingTlsTests(ITestOutputHelper output)
{
    private const int Nodes = 2;
    private const long ImageSize = 4L * 1024 * 1024;
    private const string Refused = "Cluster TLS refused a remoting peer";

    /// <summary>How long a stranger keeps trying to join while the members are watched.</summary>
    private static readonly TimeSpan StrangerWindow = TimeSpan.FromSeconds(20);

    /// <summary>/debug/engine lists the members each node sees.</summary>
    private static readonly Dictionary<string, string> Diagnostics = new() { ["Diagnostics__EngineState"] = "true" };

    [Fact]
    public async Task Nodes_with_certificates_from_the_private_CA_form_a_cluster_and_a_stranger_never_joins()
    {
        using var tls = LoopbackTls.CertificatePerNode(Nodes);
        string logs = LogDirectory("tls-ca");
        await using var cluster = await StartAsync("tls-ca", tls, logs);
        var (a, b) = (cluster.Nodes[0]!, cluster.Nodes[1]!);
        await AssertWrittenThroughOneReadThroughTheOtherAsync(a, b, "ca-before");

        // A stranger that knows the CA certificate (no secret) and the seed addresses, but holds a
        // self-signed certificate with a node's subject. Akka stops a node whose outbound TLS
        // handshake fails (exit 79), so it is started again whenever it has stopped, as a pod would be.
        using var strangerCertificate = TestCertificates.CreateSelfSigned();
        var environment = new Dictionary<string, string>(tls.Stranger(strangerCertificate))
        {
            ["Cluster__Hostname"] = "127.0.0.1",
            ["Cluster__Port"] = LoopbackCluster.FreePorts(1)[0].ToString(CultureInfo.InvariantCulture),
            ["Cluster__StableAfter"] = "5s",
            // A key of its own: it proves nothing to the members; only its certificate decides.
            ["Cluster__ForwardingKey"] = ClusterKeys.NewForwardingKey(),
        };
        for (var i = 0; i < cluster.Addresses.Count; i++)
        {
            environment[$"Cluster__SeedNodes__{i.ToString(CultureInfo.InvariantCulture)}"] = cluster.Addresses[i];
        }
        var strangers = new List<ServerProcess>();
        var strangerLogs = new List<NodeLog>();
        try
        {
            using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            var watch = Stopwatch.StartNew();
            var (checks, starts, stoppedWhileStarting) = (0, 0, 0);
            while (watch.Elapsed < StrangerWindow)
            {
                if (strangers.Count == 0 || strangers[^1].HasExited)
                {
                    var log = new NodeLog(Path.Combine(logs, $"tls-ca-stranger-{++starts}.log"));
                    strangerLogs.Add(log);
                    try
                    {
                        strangers.Add(await ServerProcess.StartAsync(new ServerOptions { Environment = environment, OutputLine = log.Add }));
                    }
                    catch (ServerStartException)
                    {
                        stoppedWhileStarting++; // refused before its HTTP server answered (its log says why)
                    }
                }
                await AssertMembersAsync(cluster);
                if (strangers.Count > 0)
                {
                    Assert.False(await IsReadyAsync(probe, strangers[^1]), $"the stranger became ready (an Up member) after {watch.Elapsed.TotalSeconds:F1} s");
                }
                checks++;
                await Task.Delay(1000);
            }
            var refusals = a.Log.Matching(Refused).Concat(b.Log.Matching(Refused)).ToList();
            output.WriteLine($"members stayed the {Nodes} nodes for {StrangerWindow.TotalSeconds} s ({checks} checks); the stranger was started {starts} times " +
                             $"({stoppedWhileStarting} stopped before answering HTTP); the members refused it {refusals.Count} times, e.g. {refusals.FirstOrDefault().Line}");
            Assert.NotEmpty(refusals); // refused by the certificate check, not merely unheard

            // The members keep serving, and new images land on members only.
            await AssertWrittenThroughOneReadThroughTheOtherAsync(b, a, "ca-after");
            for (var i = 0; i < 4; i++)
            {
                string name = $"ca-new{i}";
                await a.Server.Api.CreateAsync(name, ImageSize);
                using var content = new ByteArrayContent(new byte[4096]);
                content.Headers.ContentRange = new ContentRangeHeaderValue(0, 4095);
                using var response = await b.Server.Client.PutAsync($"images/{name}/data", content);
                Assert.True(response.IsSuccessStatusCode, $"PUT {name}: {(int)response.StatusCode}");
                Assert.Contains(response.Headers.GetValues("X-QcowActors-Node").Single(), cluster.Addresses);
            }
        }
        finally
        {
            foreach (var server in strangers)
            {
                await server.DisposeAsync();
            }
            foreach (var log in strangerLogs)
            {
                log.Dispose();
            }
        }
    }

    [Fact]
    public async Task Nodes_pinning_each_others_thumbprints_form_a_cluster()
    {
        using var tls = LoopbackTls.Pinned(Nodes);
        await using var cluster = await StartAsync("tls-pinned", tls, LogDirectory("tls-pinned"));
        await AssertWrittenThroughOneReadThroughTheOtherAsync(cluster.Nodes[0]!, cluster.Nodes[1]!, "pinned");
    }

    private async Task<LoopbackCluster> StartAsync(string name, LoopbackTls tls, string logs)
    {
        var watch = Stopwatch.StartNew();
        var cluster = await LoopbackCluster.StartAsync(name, ClusterFormation.SeedNodes, Nodes, new WriterLedger(), logs, tls, Diagnostics);
        output.WriteLine($"{name}: {tls} formed a cluster of {Nodes} in {watch.Elapsed.TotalSeconds:F1} s ({string.Join(", ", cluster.Addresses)}); logs in {logs}");
        await AssertMembersAsync(cluster);
        return cluster;
    }

    /// <summary>Every node sees exactly the cluster's nodes as members, all Up, at akka.ssl.tcp addresses.</summary>
    private static async Task AssertMembersAsync(LoopbackCluster cluster)
    {
        foreach (var node in cluster.Nodes)
        {
            using var state = JsonDocument.Parse(await node!.Server.Client.GetStringAsync("debug/engine"));
            var members = state.RootElement.GetProperty("members").EnumerateArray()
                .Select(m => (Address: m.GetProperty("address").GetString()!, Status: m.GetProperty("status").GetString()!))
                .ToList();
            Assert.Equal(cluster.Addresses.Order(StringComparer.Ordinal), members.Select(m => m.Address).Order(StringComparer.Ordinal));
            Assert.All(members, m => Assert.Equal("Up", m.Status));
            Assert.All(members, m => Assert.StartsWith("akka.ssl.tcp://QcowActors@127.0.0.1:", m.Address, StringComparison.Ordinal));
        }
    }

    /// <summary>An image created and written through one node reads back the same through the other.</summary>
    private static async Task AssertWrittenThroughOneReadThroughTheOtherAsync(NodeProcess writer, NodeProcess reader, string name)
    {
        var data = new byte[256 * 1024];
        new Random(name.Length).NextBytes(data);
        await writer.Server.Api.CreateAsync(name, ImageSize);
        await writer.Server.Api.PutAsync(name, 65536, data);
        Assert.Equal(data, await reader.Server.Api.GetRangeAsync(name, 65536, data.Length));
    }

    private static async Task<bool> IsReadyAsync(HttpClient probe, ServerProcess server)
    {
        try
        {
            using var response = await probe.GetAsync($"{server.BaseUrl}/healthz/ready");
            return response.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false; // stopped or stopping
        }
    }

    private static string LogDirectory(string name)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "cluster-logs", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture) + "-" + name);
        Directory.CreateDirectory(path);
        return path;
    }
}
