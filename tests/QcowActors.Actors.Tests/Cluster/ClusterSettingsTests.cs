using QcowActors.Actors.Cluster;
using Xunit;

namespace QcowActors.Actors.Tests.Cluster;

public sealed class ClusterSettingsTests
{
    [Theory]
    [InlineData("5s", 5000)]
    [InlineData("500ms", 500)]
    [InlineData("2m", 120000)]
    [InlineData("1h", 3600000)]
    [InlineData("1.5s", 1500)]
    [InlineData("00:00:20", 20000)]
    public void Durations_read_as_operators_write_them(string text, double ms)
    {
        Assert.True(Duration.TryParse(text, out var value));
        Assert.Equal(TimeSpan.FromMilliseconds(ms), value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("fast")]
    [InlineData("5x")]
    public void Nonsense_durations_are_refused(string text) => Assert.False(Duration.TryParse(text, out _));

    [Fact]
    public void Defaults_are_a_valid_single_node()
    {
        var settings = new ClusterSettings();
        Assert.Empty(settings.Validate());
        Assert.False(settings.IsMultiNode);
        Assert.Equal(TimeSpan.FromSeconds(20), settings.StableAfterTime);
    }

    [Fact]
    public void Seeds_and_discovery_together_are_refused()
    {
        var settings = new ClusterSettings
        {
            SeedNodes = ["akka.tcp://QcowActors@127.0.0.1:4051"],
            Discovery = "kubernetes",
        };
        Assert.Contains(settings.Validate(), p => p.Contains("not both"));
    }

    [Theory]
    [InlineData("akka.tcp://Other@127.0.0.1:4051")]
    [InlineData("127.0.0.1:4051")]
    public void Seed_nodes_must_name_the_QcowActors_system(string seed)
        => Assert.Contains(new ClusterSettings { SeedNodes = [seed] }.Validate(), p => p.Contains("akka.tcp://QcowActors@HOST:PORT"));

    [Fact]
    public void Config_discovery_needs_endpoints_and_unknown_methods_are_refused()
    {
        Assert.Contains(new ClusterSettings { Discovery = "config" }.Validate(), p => p.Contains("DiscoveryEndpoints"));
        Assert.Contains(new ClusterSettings { Discovery = "dns" }.Validate(), p => p.Contains("'kubernetes' or 'config'"));
        Assert.Empty(new ClusterSettings { Discovery = "config", DiscoveryEndpoints = ["127.0.0.1:8558"], ForwardingKey = Key32 }.Validate());
    }

    private static readonly string Key32 = Convert.ToBase64String(new byte[32]);

    [Fact]
    public void A_multi_node_node_needs_a_forwarding_key_and_a_single_node_does_not()
    {
        Assert.Empty(new ClusterSettings().Validate());
        var seeds = new ClusterSettings { SeedNodes = ["akka.tcp://QcowActors@127.0.0.1:4051"] };
        Assert.Contains(seeds.Validate(), p => p.Contains("Cluster:ForwardingKey is required"));
        seeds.ForwardingKey = Key32;
        Assert.Empty(seeds.Validate());
        var discovery = new ClusterSettings { Discovery = "kubernetes" };
        Assert.Contains(discovery.Validate(), p => p.Contains("Cluster:ForwardingKey is required"));
    }

    [Theory]
    [InlineData("c2hvcnQ=")] // "short": 5 bytes
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==")] // 31 bytes
    [InlineData("REPLACE-WITH-openssl-rand-base64-32")]
    [InlineData("not base64 at all!")]
    public void A_forwarding_key_that_is_not_base64_of_32_bytes_is_refused_without_echoing_it(string key)
    {
        var problems = new ClusterSettings { ForwardingKey = key }.Validate().ToList();
        string problem = Assert.Single(problems);
        Assert.Contains("Cluster:ForwardingKey must be base64 of at least 32", problem);
        Assert.DoesNotContain(key, problem);
    }

    [Fact]
    public void A_forwarding_key_decodes_to_its_bytes()
    {
        byte[] key = Enumerable.Range(0, 48).Select(i => (byte)i).ToArray();
        Assert.Equal(key, new ClusterSettings { ForwardingKey = Convert.ToBase64String(key) }.ForwardingKeyBytes());
        Assert.Null(new ClusterSettings().ForwardingKeyBytes());
    }

    [Theory]
    [InlineData("127.0.0.1", null, true)]
    [InlineData("127.0.0.2", null, true)]
    [InlineData("localhost", null, true)]
    [InlineData("::1", null, true)]
    [InlineData("[::1]", null, true)]
    [InlineData("10.0.0.5", null, false)]
    [InlineData("qcowactors-0.qcowactors-cluster", null, false)]
    [InlineData("10.0.0.5", true, true)]
    [InlineData("127.0.0.1", false, false)]
    public void The_node_header_is_exposed_by_default_only_on_a_loopback_node(string hostname, bool? setting, bool exposed)
        => Assert.Equal(exposed, new ClusterSettings { Hostname = hostname, ExposeNodeHeader = setting }.ExposesNodeHeader);

    [Fact]
    public void Bad_durations_and_ports_are_named()
    {
        var problems = new ClusterSettings { StableAfter = "soon", Port = 70000, ManagementPort = 0 }.Validate().ToList();
        Assert.Contains(problems, p => p.Contains("Cluster:StableAfter") && p.Contains("'soon'"));
        Assert.Contains(problems, p => p.Contains("Cluster:Port"));
        Assert.Contains(problems, p => p.Contains("Cluster:ManagementPort"));
    }

    [Fact]
    public void Shards_come_from_a_stable_hash_of_the_image_name()
    {
        // Every node must put an image in the same shard: .NET's string hash differs per process,
        // MurmurHash of the name does not.
        var names = Enumerable.Range(0, 1000).Select(i => $"image-{i}").ToArray();
        var first = names.Select(n => new ImageMessageExtractor().ShardId(n, new LocateImage(n))).ToArray();
        var murmur = names.Select(n => (Math.Abs(Akka.Util.MurmurHash.StringHash(n)) % ImageRegion.ShardCount).ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(murmur, first);
        Assert.All(first, s => Assert.InRange(int.Parse(s!, System.Globalization.CultureInfo.InvariantCulture), 0, ImageRegion.ShardCount - 1));
        Assert.True(first.Distinct().Count() > ImageRegion.ShardCount * 9 / 10, "1000 names should reach nearly every shard");
        Assert.Equal("a", new ImageMessageExtractor().EntityId(new LocateImage("a")));
        Assert.Null(new ImageMessageExtractor().EntityId("not an image message"));
    }
}
