using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace QcowActors.Actors.Cluster;

/// <summary>
/// Configuration section "Cluster:Tls": Akka remoting over TLS with mutual authentication, so only
/// a process holding a trusted certificate's private key can join the cluster (and be handed
/// images). Set <see cref="CertificatePath"/> to turn it on; trust is either a private CA
/// (<see cref="CaCertificatePath"/>) or pinned certificates (<see cref="TrustedThumbprints"/>).
/// These key names are a contract with operators: keep them.
/// </summary>
public sealed class ClusterTlsSettings
{
    /// <summary>This node's certificate: a PKCS#12/PFX file, or a PEM certificate (its key in <see cref="KeyPath"/> or in the same file).</summary>
    public string? CertificatePath { get; set; }

    /// <summary>The PEM private key of a PEM <see cref="CertificatePath"/>.</summary>
    public string? KeyPath { get; set; }

    /// <summary>The PFX's password, or the PEM key's (encrypted PKCS#8).</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>Pinned peer certificates: SHA-256 (64 hex digits) or SHA-1 (40) thumbprints; ':' and spaces are ignored.</summary>
    public string[] TrustedThumbprints { get; set; } = [];

    /// <summary>A private CA (PEM or DER; a PEM file may hold several during a rotation): a peer's chain must end at one of them.</summary>
    public string? CaCertificatePath { get; set; }

    public bool Enabled => !string.IsNullOrWhiteSpace(CertificatePath);

    public bool UsesCa => !string.IsNullOrWhiteSpace(CaCertificatePath);

    public bool UsesThumbprints => TrustedThumbprints.Length > 0;

    /// <summary>Problems that must stop the node at start; the files are read to find them.</summary>
    public IEnumerable<string> Validate()
    {
        if (!Enabled)
        {
            if (UsesCa || UsesThumbprints || !string.IsNullOrWhiteSpace(KeyPath) || !string.IsNullOrEmpty(CertificatePassword))
                yield return "Cluster:Tls is partly set: Cluster:Tls:CertificatePath (this node's certificate) is missing, so remoting would run without TLS";
            yield break;
        }
        if (!UsesCa && !UsesThumbprints)
            yield return "Cluster:Tls:CertificatePath is set but not which peers to trust: set Cluster:Tls:CaCertificatePath (a private CA) or Cluster:Tls:TrustedThumbprints (pinned certificates)";
        if (UsesCa && UsesThumbprints)
            yield return "set either Cluster:Tls:CaCertificatePath or Cluster:Tls:TrustedThumbprints, not both";
        foreach (var t in TrustedThumbprints.Where(t => NormalizeThumbprint(t) is null))
            yield return $"Cluster:Tls:TrustedThumbprints entry '{t}' must be a SHA-256 (64 hex digits) or SHA-1 (40 hex digits) thumbprint";
        if (CertificateProblem() is { } certificate) yield return certificate;
        if (UsesCa && CaProblem() is { } ca) yield return ca;
    }

    /// <summary>This node's certificate with its private key; throws with the setting's name when it cannot.</summary>
    public X509Certificate2 LoadCertificate()
    {
        string path = CertificatePath ?? throw new InvalidOperationException("Cluster:Tls:CertificatePath is not set");
        if (!string.IsNullOrWhiteSpace(KeyPath))
            return string.IsNullOrEmpty(CertificatePassword)
                ? X509Certificate2.CreateFromPemFile(path, KeyPath)
                : X509Certificate2.CreateFromEncryptedPemFile(path, CertificatePassword, KeyPath);
        if (LooksLikePem(path))
            return string.IsNullOrEmpty(CertificatePassword)
                ? X509Certificate2.CreateFromPemFile(path)
                : X509Certificate2.CreateFromEncryptedPemFile(path, CertificatePassword);
        return X509CertificateLoader.LoadPkcs12FromFile(path, CertificatePassword, X509KeyStorageFlags.EphemeralKeySet);
    }

    /// <summary>The CA certificates of <see cref="CaCertificatePath"/>.</summary>
    public X509Certificate2Collection LoadCaCertificates()
    {
        string path = CaCertificatePath ?? throw new InvalidOperationException("Cluster:Tls:CaCertificatePath is not set");
        var cas = new X509Certificate2Collection();
        if (LooksLikePem(path)) cas.ImportFromPemFile(path);
        else cas.Add(X509CertificateLoader.LoadCertificateFromFile(path));
        return cas;
    }

    /// <summary>The thumbprints as upper-case hex without separators.</summary>
    public IReadOnlyList<string> NormalizedThumbprints() => TrustedThumbprints.Select(NormalizeThumbprint).OfType<string>().ToList();

    /// <summary>Upper-case hex of a SHA-1 or SHA-256 thumbprint; null when it is neither.</summary>
    public static string? NormalizeThumbprint(string thumbprint)
    {
        string hex = thumbprint.Replace(":", "", StringComparison.Ordinal).Replace(" ", "", StringComparison.Ordinal).ToUpperInvariant();
        return hex.Length is 40 or 64 && hex.All(Uri.IsHexDigit) ? hex : null;
    }

    private string? CertificateProblem()
    {
        foreach (var (key, path) in new[] { ("CertificatePath", CertificatePath), ("KeyPath", KeyPath) })
            if (!string.IsNullOrWhiteSpace(path) && !File.Exists(path))
                return $"Cluster:Tls:{key} '{path}' does not exist";
        try
        {
            using var certificate = LoadCertificate();
            if (!certificate.HasPrivateKey)
                return $"Cluster:Tls:CertificatePath '{CertificatePath}' holds no private key (give a PFX with its key, or the PEM key in Cluster:Tls:KeyPath)";
            return ValidityProblem(certificate, "Cluster:Tls:CertificatePath");
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            return $"Cluster:Tls:CertificatePath '{CertificatePath}' could not be loaded{(string.IsNullOrWhiteSpace(KeyPath) ? "" : $" with the key '{KeyPath}'")}: {e.Message}";
        }
    }

    private string? CaProblem()
    {
        if (!File.Exists(CaCertificatePath)) return $"Cluster:Tls:CaCertificatePath '{CaCertificatePath}' does not exist";
        try
        {
            var cas = LoadCaCertificates();
            if (cas.Count == 0) return $"Cluster:Tls:CaCertificatePath '{CaCertificatePath}' holds no certificate";
            foreach (var ca in cas)
            {
                if (ca.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is not { CertificateAuthority: true })
                    return $"Cluster:Tls:CaCertificatePath '{CaCertificatePath}': '{ca.Subject}' is not a CA certificate (basicConstraints CA:TRUE)";
                if (ValidityProblem(ca, "Cluster:Tls:CaCertificatePath") is { } validity) return validity;
            }
            return null;
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            return $"Cluster:Tls:CaCertificatePath '{CaCertificatePath}' could not be loaded: {e.Message}";
        }
    }

    private static string? ValidityProblem(X509Certificate2 certificate, string key)
    {
        var now = DateTime.Now;
        if (now > certificate.NotAfter) return $"{key}: '{certificate.Subject}' expired on {certificate.NotAfter.ToUniversalTime().ToString("u", CultureInfo.InvariantCulture)}";
        if (now < certificate.NotBefore) return $"{key}: '{certificate.Subject}' is not valid before {certificate.NotBefore.ToUniversalTime().ToString("u", CultureInfo.InvariantCulture)}";
        return null;
    }

    /// <summary>DER and PKCS#12 start with an ASN.1 SEQUENCE (0x30); PEM is text (openssl may put attributes before its "-----BEGIN").</summary>
    private static bool LooksLikePem(string path)
    {
        using var file = File.OpenRead(path);
        return file.ReadByte() is not (0x30 or -1);
    }
}
