using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Akka.Event;
using QcowActors.Actors.Cluster;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.Actors.Tests.Cluster;

/// <summary>Cluster:Tls and Cluster:AllowPlainRemoting: who may join, checked at start with the files read.</summary>
public sealed class ClusterTlsSettingsTests : IDisposable
{
    private const string Seed = "akka.tcp://QcowActors@127.0.0.1:4051";
    private const string TlsSeed = "akka.ssl.tcp://QcowActors@127.0.0.1:4051";
    /// <summary>A usable Cluster:ForwardingKey: a multi-node node needs one besides its TLS settings.</summary>
    private static readonly string Key = Convert.ToBase64String(new byte[32]);

    private readonly TempDirectory _dir = new("qa-tls-settings");
    private readonly X509Certificate2 _ca = TestCertificates.CreateCa();
    private readonly X509Certificate2 _node;
    private readonly string _pfx;
    private readonly string _caPem;

    public ClusterTlsSettingsTests()
    {
        _node = TestCertificates.CreateSigned(_ca);
        _pfx = TestCertificates.WritePfx(_node, _dir.File("node.pfx"));
        _caPem = TestCertificates.WriteCertificatePem(_ca, _dir.File("ca.crt"));
    }

    public void Dispose()
    {
        _node.Dispose();
        _ca.Dispose();
        _dir.Dispose();
    }

    [Theory]
    [InlineData("10.1.2.3", true)]
    [InlineData("10.1.2.3", false)]
    [InlineData("node-1.example", true)]
    [InlineData("0.0.0.0", false)]
    public void A_node_reachable_beyond_loopback_needs_tls_or_plain_remoting_allowed(string hostname, bool multiNode)
    {
        // Any member admits a Join: a lone node listening on the network lets strangers in as well.
        var settings = new ClusterSettings { Hostname = hostname, Discovery = multiNode ? "kubernetes" : null, ForwardingKey = Key };
        var problem = Assert.Single(settings.Validate());
        Assert.Contains($"Cluster:Hostname '{hostname}' is not a loopback address", problem);
        Assert.Contains("Cluster:Tls", problem);
        Assert.Contains("Cluster:AllowPlainRemoting=true", problem);

        settings.AllowPlainRemoting = true;
        Assert.Empty(settings.Validate());
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.2")]
    [InlineData("::1")]
    [InlineData("localhost")]
    public void Loopback_nodes_may_run_plain(string hostname)
        => Assert.Empty(new ClusterSettings { Hostname = hostname, SeedNodes = [Seed], ForwardingKey = Key }.Validate());

    [Fact]
    public void A_private_ca_or_pinned_thumbprints_are_valid_and_make_addresses_akka_ssl_tcp()
    {
        var withCa = new ClusterSettings { Hostname = "10.1.2.3", SeedNodes = [TlsSeed], ForwardingKey = Key, Tls = new() { CertificatePath = _pfx, CaCertificatePath = _caPem } };
        Assert.Empty(withCa.Validate());
        Assert.Equal("akka.ssl.tcp", withCa.RemotingProtocol);

        var pinned = new ClusterSettings
        {
            Hostname = "10.1.2.3",
            Discovery = "kubernetes",
            ForwardingKey = Key,
            Tls = new() { CertificatePath = _pfx, TrustedThumbprints = [TestCertificates.Sha256(_node), _ca.Thumbprint.ToLowerInvariant(), "AB:CD:" + new string('0', 36)] },
        };
        Assert.Empty(pinned.Validate());
        Assert.Equal("akka.tcp", new ClusterSettings().RemotingProtocol);
    }

    [Fact]
    public void With_tls_seed_nodes_must_be_akka_ssl_tcp()
    {
        var settings = new ClusterSettings { SeedNodes = [Seed], ForwardingKey = Key, Tls = new() { CertificatePath = _pfx, CaCertificatePath = _caPem } };
        var problem = Assert.Single(settings.Validate());
        Assert.Contains("must look like akka.ssl.tcp://QcowActors@HOST:PORT (Cluster:Tls is set)", problem);
    }

    [Fact]
    public void A_certificate_without_trust_and_both_kinds_of_trust_are_refused()
    {
        var none = new ClusterSettings { Tls = new() { CertificatePath = _pfx } }.Validate().ToList();
        Assert.Contains(none, p => p.Contains("not which peers to trust") && p.Contains("Cluster:Tls:CaCertificatePath") && p.Contains("Cluster:Tls:TrustedThumbprints"));

        var both = new ClusterSettings { Tls = new() { CertificatePath = _pfx, CaCertificatePath = _caPem, TrustedThumbprints = [TestCertificates.Sha256(_node)] } }.Validate();
        Assert.Contains(both, p => p.Contains("either Cluster:Tls:CaCertificatePath or Cluster:Tls:TrustedThumbprints, not both"));
    }

    [Fact]
    public void Trust_without_a_certificate_is_refused_rather_than_running_plain()
    {
        var problems = new ClusterSettings { Tls = new() { CaCertificatePath = _caPem } }.Validate();
        Assert.Contains(problems, p => p.Contains("Cluster:Tls is partly set") && p.Contains("Cluster:Tls:CertificatePath"));
    }

    [Fact]
    public void Missing_files_are_named_with_their_key()
    {
        string missing = _dir.File("absent.pem");
        Assert.Contains(new ClusterSettings { Tls = new() { CertificatePath = missing, CaCertificatePath = _caPem } }.Validate(),
            p => p == $"Cluster:Tls:CertificatePath '{missing}' does not exist");
        var (cert, _) = TestCertificates.WritePem(_node, _dir.File("node.crt"), _dir.File("node.key"));
        Assert.Contains(new ClusterSettings { Tls = new() { CertificatePath = cert, KeyPath = missing, CaCertificatePath = _caPem } }.Validate(),
            p => p == $"Cluster:Tls:KeyPath '{missing}' does not exist");
        Assert.Contains(new ClusterSettings { Tls = new() { CertificatePath = _pfx, CaCertificatePath = missing } }.Validate(),
            p => p == $"Cluster:Tls:CaCertificatePath '{missing}' does not exist");
    }

    [Fact]
    public void Unusable_files_are_refused_with_the_reason()
    {
        string locked = TestCertificates.WritePfx(_node, _dir.File("locked.pfx"), "right");
        Assert.Contains(new ClusterSettings { Tls = new() { CertificatePath = locked, CertificatePassword = "wrong", CaCertificatePath = _caPem } }.Validate(),
            p => p.StartsWith($"Cluster:Tls:CertificatePath '{locked}' could not be loaded", StringComparison.Ordinal));
        Assert.Empty(new ClusterSettings { Tls = new() { CertificatePath = locked, CertificatePassword = "right", CaCertificatePath = _caPem } }.Validate());

        // A PEM certificate whose key is not given.
        string certOnly = TestCertificates.WriteCertificatePem(_node, _dir.File("cert-only.crt"));
        Assert.Contains(new ClusterSettings { Tls = new() { CertificatePath = certOnly, CaCertificatePath = _caPem } }.Validate(),
            p => p.StartsWith($"Cluster:Tls:CertificatePath '{certOnly}'", StringComparison.Ordinal));

        // A node certificate given as the CA.
        string leafAsCa = TestCertificates.WriteCertificatePem(_node, _dir.File("leaf-as-ca.crt"));
        Assert.Contains(new ClusterSettings { Tls = new() { CertificatePath = _pfx, CaCertificatePath = leafAsCa } }.Validate(),
            p => p.Contains("is not a CA certificate"));

        using var expired = TestCertificates.CreateSelfSigned(notAfter: DateTimeOffset.UtcNow.AddDays(-1));
        string expiredPfx = TestCertificates.WritePfx(expired, _dir.File("expired.pfx"));
        Assert.Contains(new ClusterSettings { Tls = new() { CertificatePath = expiredPfx, TrustedThumbprints = [TestCertificates.Sha256(expired)] } }.Validate(),
            p => p.StartsWith("Cluster:Tls:CertificatePath: 'CN=qcowactors node' expired on", StringComparison.Ordinal));

        Assert.Contains(new ClusterSettings { Tls = new() { CertificatePath = _pfx, TrustedThumbprints = ["not-hex"] } }.Validate(),
            p => p.Contains("entry 'not-hex' must be a SHA-256 (64 hex digits) or SHA-1 (40 hex digits) thumbprint"));
    }

    [Fact]
    public void Pem_certificate_and_key_load_with_the_private_key()
    {
        var (cert, key) = TestCertificates.WritePem(_node, _dir.File("node.crt"), _dir.File("node.key"));
        var tls = new ClusterTlsSettings { CertificatePath = cert, KeyPath = key, CaCertificatePath = _caPem };
        Assert.Empty(tls.Validate());
        using var loaded = tls.LoadCertificate();
        Assert.True(loaded.HasPrivateKey);
        Assert.Equal(_node.Thumbprint, loaded.Thumbprint);
    }

    [Fact]
    public void The_private_ca_rule_admits_only_certificates_it_signed()
    {
        var rule = RemotingTls.PrivateCa(new ClusterTlsSettings { CaCertificatePath = _caPem }.LoadCaCertificates());
        using var otherCa = TestCertificates.CreateCa("QcowActors test CA");
        using var fromOtherCa = TestCertificates.CreateSigned(otherCa);
        using var stranger = TestCertificates.CreateSelfSigned();

        // SslStream's own verdict (against the machine's store) says chain errors for all of them; the rule ignores it.
        Assert.True(rule(_node, null, "peer", SslPolicyErrors.RemoteCertificateChainErrors, NoLogger.Instance));
        Assert.False(rule(fromOtherCa, null, "peer", SslPolicyErrors.RemoteCertificateChainErrors, NoLogger.Instance));
        Assert.False(rule(stranger, null, "peer", SslPolicyErrors.RemoteCertificateChainErrors, NoLogger.Instance));
        Assert.False(rule(null, null, "peer", SslPolicyErrors.RemoteCertificateNotAvailable, NoLogger.Instance));
    }

    [Fact]
    public void The_pinned_rule_admits_only_pinned_certificates_by_sha256_or_sha1()
    {
        using var bySha1 = TestCertificates.CreateSelfSigned();
        using var stranger = TestCertificates.CreateSelfSigned();
        var rule = RemotingTls.Pinned(new ClusterTlsSettings { TrustedThumbprints = [TestCertificates.Sha256(_node).ToLowerInvariant(), bySha1.Thumbprint] }.NormalizedThumbprints());

        Assert.True(rule(_node, null, "peer", SslPolicyErrors.RemoteCertificateChainErrors, NoLogger.Instance));
        Assert.True(rule(bySha1, null, "peer", SslPolicyErrors.RemoteCertificateChainErrors, NoLogger.Instance));
        Assert.False(rule(stranger, null, "peer", SslPolicyErrors.None, NoLogger.Instance));
        Assert.False(rule(null, null, "peer", SslPolicyErrors.RemoteCertificateNotAvailable, NoLogger.Instance));
    }
}
