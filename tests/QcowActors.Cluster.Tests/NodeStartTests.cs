using System.Net;
using System.Text.RegularExpressions;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.Cluster.Tests;

/// <summary>Single server processes: what a node says about itself, and what it refuses to start with (issue 14).</summary>
public sealed partial class NodeStartTests
{
    [GeneratedRegex(@"exited with code (-?\d+) before it was live")]
    private static partial Regex ExitCode();

    private static ServerOptions Options(Dictionary<string, string> environment) => new()
    {
        Environment = environment,
        StartTimeout = TimeSpan.FromSeconds(60),
        ClientTimeout = TimeSpan.FromSeconds(30),
    };

    [Fact]
    public async Task A_loopback_node_names_itself_on_responses_unless_Cluster_ExposeNodeHeader_is_false()
    {
        await using (var named = await ServerProcess.StartAsync(Options(new() { ["Cluster__Hostname"] = "127.0.0.1" })))
        {
            foreach (string path in new[] { "healthz/live", "images", "images/nothing-here" })
            {
                using var response = await named.Client.GetAsync(path);
                Assert.Matches(@"^akka\.tcp://QcowActors@127\.0\.0\.1:[1-9][0-9]*$", Assert.Single(response.Headers.GetValues(LoadClient.NodeHeader)));
            }
        }
        await using (var unnamed = await ServerProcess.StartAsync(Options(new() { ["Cluster__Hostname"] = "127.0.0.1", ["Cluster__ExposeNodeHeader"] = "false" })))
        {
            foreach (string path in new[] { "healthz/live", "images", "images/nothing-here" })
            {
                using var response = await unnamed.Client.GetAsync(path);
                Assert.False(response.Headers.Contains(LoadClient.NodeHeader), $"{path} named the node");
            }
        }
    }

    public static TheoryData<string, Dictionary<string, string>, string> MultiNodeWithoutKey => new()
    {
        {
            "seed nodes, no key",
            new() { ["Cluster__SeedNodes__0"] = "akka.tcp://QcowActors@127.0.0.1:4051" },
            "Cluster:ForwardingKey is required"
        },
        {
            "config discovery, no key",
            new() { ["Cluster__Discovery"] = "config", ["Cluster__DiscoveryEndpoints__0"] = "127.0.0.1:28558", ["Cluster__ManagementPort"] = "28558" },
            "Cluster:ForwardingKey is required"
        },
        {
            "seed nodes, a key of 5 bytes",
            new() { ["Cluster__SeedNodes__0"] = "akka.tcp://QcowActors@127.0.0.1:4051", ["Cluster__ForwardingKey"] = "c2hvcnQ=" },
            "Cluster:ForwardingKey must be base64 of at least 32"
        },
    };

    [Theory]
    [MemberData(nameof(MultiNodeWithoutKey))]
    public async Task A_multi_node_node_without_a_usable_forwarding_key_refuses_to_start_and_says_why(string setup, Dictionary<string, string> environment, string message)
    {
        var e = await Assert.ThrowsAsync<ServerStartException>(() => ServerProcess.StartAsync(Options(environment)));
        var exit = ExitCode().Match(e.Message);
        Assert.True(exit.Success, $"{setup}: the process did not exit by itself: {e.Message}");
        Assert.NotEqual("0", exit.Groups[1].Value);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        // A key is a secret: the refusal does not print it.
        if (environment.TryGetValue("Cluster__ForwardingKey", out string? key))
        {
            Assert.DoesNotContain(key, e.Message, StringComparison.Ordinal);
        }
    }
}
