using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace QcowActors.Testing;

/// <summary>
/// Certificates made at test time with .NET's CertificateRequest (ECDSA P-256, quick to make and
/// to handshake with): a private CA, node certificates it signs, self-signed strangers; and the
/// files a node's Cluster:Tls settings point at (PFX, PEM certificate + key, PEM CA).
/// </summary>
public static class TestCertificates
{
    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    /// <summary>A CA certificate with its private key.</summary>
    public static X509Certificate2 CreateCa(string name = "QcowActors test CA")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
    }

    /// <summary>A node certificate (server and client authentication) signed by <paramref name="ca"/>, with its private key.</summary>
    public static X509Certificate2 CreateSigned(X509Certificate2 ca, string name = "qcowactors node")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = NodeRequest(name, key);
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var signed = request.Create(ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30), RandomNumberGenerator.GetBytes(16));
        return signed.CopyWithPrivateKey(key);
    }

    /// <summary>A self-signed node certificate with its private key: the same subject as a real node's, trusted by nobody.</summary>
    public static X509Certificate2 CreateSelfSigned(string name = "qcowactors node", DateTimeOffset? notAfter = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var notBefore = notAfter is { } end && end < DateTimeOffset.UtcNow ? end.AddDays(-30) : DateTimeOffset.UtcNow.AddDays(-1);
        return NodeRequest(name, key).CreateSelfSigned(notBefore, notAfter ?? DateTimeOffset.UtcNow.AddDays(30));
    }

    /// <summary>Writes the certificate and its key as PKCS#12; returns the path.</summary>
    public static string WritePfx(X509Certificate2 certificate, string path, string? password = null)
    {
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pkcs12, password));
        return path;
    }

    /// <summary>Writes the certificate (PEM) and its PKCS#8 key (PEM) to two files; returns their paths.</summary>
    public static (string Certificate, string Key) WritePem(X509Certificate2 certificate, string certificatePath, string keyPath)
    {
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        using var key = certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("the certificate has no ECDSA private key");
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }

    /// <summary>Writes the certificate alone (PEM, no key), as a CA file is given to nodes; returns the path.</summary>
    public static string WriteCertificatePem(X509Certificate2 certificate, string path)
    {
        File.WriteAllText(path, certificate.ExportCertificatePem());
        return path;
    }

    /// <summary>The SHA-256 thumbprint, upper-case hex (what Cluster:Tls:TrustedThumbprints takes, besides SHA-1).</summary>
    public static string Sha256(X509Certificate2 certificate) => certificate.GetCertHashString(HashAlgorithmName.SHA256);

    private static CertificateRequest NodeRequest(string name, ECDsa key)
    {
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ServerAuth, ClientAuth], false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        return request;
    }
}
