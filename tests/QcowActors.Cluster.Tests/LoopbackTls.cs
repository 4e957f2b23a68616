using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using QcowActors.Testing;

namespace QcowActors.Cluster.Tests;

/// <summary>
/// The Cluster:Tls settings the nodes of a loopback cluster run with, over certificates made at
/// test time (<see cref="TestCertificates"/>) in a temp directory that lives as long as this.
/// </summary>
internal sealed class LoopbackTls : IDisposable
{
    private readonly TempDirectory _dir = new("qcowactors-cluster-tls");
    private readonly List<X509Certificate2> _owned = [];
    private readonly Func<int, Dictionary<string, string>> _settings;

    private LoopbackTls(string describe, Func<LoopbackTls, Func<int, Dictionary<string, string>>> make)
    {
        Describe = describe;
        _settings = make(this);
    }

    /// <summary>What the nodes trust and hold, for the log.</summary>
    public string Describe { get; }

    /// <summary>The private CA, or null when the nodes pin each other's certificates.</summary>
    public X509Certificate2? Ca { get; private set; }

    /// <summary>A private CA and one node certificate (PKCS#12) that every node holds: the layout of k8s/secret-cluster-tls.yaml.</summary>
    public static LoopbackTls SharedCertificate() => new("private CA, one node certificate (PFX) shared by every node", tls =>
    {
        var ca = tls.Own(TestCertificates.CreateCa());
        tls.Ca = ca;
        string caPath = TestCertificates.WriteCertificatePem(ca, tls._dir.File("ca.crt"));
        string pfx = TestCertificates.WritePfx(tls.Own(TestCertificates.CreateSigned(ca)), tls._dir.File("node.pfx"), "test");
        return _ => new()
        {
            ["Cluster__Tls__CertificatePath"] = pfx,
            ["Cluster__Tls__CertificatePassword"] = "test",
            ["Cluster__Tls__CaCertificatePath"] = caPath,
        };
    });

    /// <summary>A private CA and a PEM certificate and key of its own for each node.</summary>
    public static LoopbackTls CertificatePerNode(int nodes) => new($"private CA, a PEM certificate and key per node ({nodes})", tls =>
    {
        var ca = tls.Own(TestCertificates.CreateCa());
        tls.Ca = ca;
        string caPath = TestCertificates.WriteCertificatePem(ca, tls._dir.File("ca.crt"));
        var files = Enumerable.Range(0, nodes)
            .Select(i => TestCertificates.WritePem(tls.Own(TestCertificates.CreateSigned(ca, $"qcowactors node {i}")), tls._dir.File($"node{i}.crt"), tls._dir.File($"node{i}.key")))
            .ToList();
        return i => new()
        {
            ["Cluster__Tls__CertificatePath"] = files[i].Certificate,
            ["Cluster__Tls__KeyPath"] = files[i].Key,
            ["Cluster__Tls__CaCertificatePath"] = caPath,
        };
    });

    /// <summary>A self-signed certificate per node (PFX); every node pins all of them, the first by SHA-1, the others by SHA-256.</summary>
    public static LoopbackTls Pinned(int nodes) => new($"self-signed certificates pinned by thumbprint ({nodes})", tls =>
    {
        var certificates = Enumerable.Range(0, nodes).Select(i => tls.Own(TestCertificates.CreateSelfSigned($"qcowactors node {i}"))).ToList();
        var files = certificates.Select((c, i) => TestCertificates.WritePfx(c, tls._dir.File($"node{i}.pfx"))).ToList();
        var pins = certificates.Select((c, i) => i == 0 ? c.Thumbprint : TestCertificates.Sha256(c)).ToList();
        return i =>
        {
            var settings = new Dictionary<string, string> { ["Cluster__Tls__CertificatePath"] = files[i] };
            for (var p = 0; p < pins.Count; p++)
            {
                settings[$"Cluster__Tls__TrustedThumbprints__{p.ToString(CultureInfo.InvariantCulture)}"] = pins[p];
            }
            return settings;
        };
    });

    /// <summary>Node <paramref name="index"/>'s Cluster__Tls__* environment.</summary>
    public IReadOnlyDictionary<string, string> Settings(int index) => _settings(index);

    /// <summary>
    /// The settings of a stranger: a node that trusts what the members trust (it knows their CA
    /// certificate, which is no secret) but holds <paramref name="certificate"/>, which no member trusts.
    /// </summary>
    public IReadOnlyDictionary<string, string> Stranger(X509Certificate2 certificate)
    {
        var settings = new Dictionary<string, string>(_settings(0).Where(kv => !kv.Key.StartsWith("Cluster__Tls__Certificate", StringComparison.Ordinal) && kv.Key != "Cluster__Tls__KeyPath"));
        var (cert, key) = TestCertificates.WritePem(certificate, _dir.File("stranger.crt"), _dir.File("stranger.key"));
        settings["Cluster__Tls__CertificatePath"] = cert;
        settings["Cluster__Tls__KeyPath"] = key;
        return settings;
    }

    public override string ToString() => Describe;

    public void Dispose()
    {
        foreach (var certificate in _owned)
        {
            certificate.Dispose();
        }
        _dir.Dispose();
    }

    private X509Certificate2 Own(X509Certificate2 certificate)
    {
        _owned.Add(certificate);
        return certificate;
    }
}
