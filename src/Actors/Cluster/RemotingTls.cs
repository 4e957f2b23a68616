using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Event;
using Akka.Remote.Hosting;
using Akka.Remote.Transport.DotNetty;

namespace QcowActors.Actors.Cluster;

/// <summary>
/// Akka remoting's transport as <see cref="ClusterTlsSettings"/> asks: plain akka.tcp, or akka.ssl.tcp
/// with mutual authentication, where each end of a connection checks the other's certificate with
/// one of the two trust rules below (the connecting node the listener's, the listener the
/// connecting node's). A connection that fails the check never carries an Akka message, so a
/// process without a trusted certificate cannot join the cluster or be handed an image.
/// </summary>
internal static class RemotingTls
{
    /// <summary>How every refusal starts in the log (tests and operators look for it).</summary>
    public const string Refused = "Cluster TLS refused a remoting peer";

    public static RemoteOptions Options(ClusterSettings cluster)
    {
        var options = new RemoteOptions { HostName = cluster.Hostname, Port = cluster.Port };
        var tls = cluster.Tls;
        if (!tls.Enabled) return options;
        options.EnableSsl = true;
        // Passed as a DotNettySslSetup (what Akka.Remote.Hosting makes of an X509Certificate), which
        // takes precedence over HOCON's ssl section; suppress-validation stays off.
        options.Ssl = new SslOptions
        {
            X509Certificate = tls.LoadCertificate(),
            SuppressValidation = false,
            RequireMutualAuthentication = true,
            // A node is known by its certificate, not by its address: pod IPs change with every
            // restart, and one certificate may serve every pod.
            ValidateCertificateHostname = false,
            CustomValidator = tls.UsesCa ? PrivateCa(tls.LoadCaCertificates()) : Pinned(tls.NormalizedThumbprints()),
        };
        return options;
    }

    /// <summary>
    /// The peer's chain must end at one of <paramref name="cas"/>, built with only them as roots
    /// (never the machine's store, which would admit any certificate a public CA signed). The
    /// result SslStream computed against the machine's store is ignored for that reason. No
    /// revocation check: a private CA for one cluster publishes no CRL (rotate the CA to drop a node).
    /// </summary>
    public static CertificateValidationCallback PrivateCa(X509Certificate2Collection cas) => (certificate, presented, peer, _, log) =>
    {
        if (certificate is null) return Refuse(log, peer, "it sent no certificate");
        using var chain = new X509Chain();
        var policy = chain.ChainPolicy;
        policy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        policy.CustomTrustStore.AddRange(cas);
        policy.RevocationMode = X509RevocationMode.NoCheck;
        policy.DisableCertificateDownloads = true;
        // The intermediates the peer sent, if any (SslStream puts them here).
        if (presented is not null) policy.ExtraStore.AddRange(presented.ChainPolicy.ExtraStore);
        try
        {
            if (!chain.Build(certificate))
            {
                string status = string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
                return Refuse(log, peer, $"'{certificate.Subject}' (issuer '{certificate.Issuer}') does not chain to Cluster:Tls:CaCertificatePath: {status}");
            }
            var root = chain.ChainElements[^1].Certificate;
            if (!cas.Any(ca => ca.RawDataMemory.Span.SequenceEqual(root.RawDataMemory.Span)))
                return Refuse(log, peer, $"'{certificate.Subject}' chains to '{root.Subject}', not to Cluster:Tls:CaCertificatePath");
            return true;
        }
        finally
        {
            foreach (var element in chain.ChainElements) element.Certificate.Dispose();
        }
    };

    /// <summary>
    /// The peer's certificate must be one of the pinned ones, by SHA-256 or SHA-1 thumbprint (Akka's
    /// own CertificateValidation.PinnedCertificate compares only X509Certificate2.Thumbprint, SHA-1),
    /// and within its validity period. Its chain is not checked: pinned certificates are usually self-signed.
    /// </summary>
    public static CertificateValidationCallback Pinned(IReadOnlyList<string> thumbprints)
    {
        var pins = thumbprints.ToHashSet(StringComparer.Ordinal);
        return (certificate, _, peer, _, log) =>
        {
            if (certificate is null) return Refuse(log, peer, "it sent no certificate");
            string sha256 = certificate.GetCertHashString(HashAlgorithmName.SHA256);
            if (!pins.Contains(sha256) && !pins.Contains(certificate.Thumbprint.ToUpperInvariant()))
                return Refuse(log, peer, $"'{certificate.Subject}' (SHA-256 {sha256}) is not in Cluster:Tls:TrustedThumbprints");
            var now = DateTime.Now;
            if (now < certificate.NotBefore || now > certificate.NotAfter)
                return Refuse(log, peer, $"'{certificate.Subject}' is pinned but valid only from {certificate.NotBefore:u} to {certificate.NotAfter:u}");
            return true;
        };
    }

    private static bool Refuse(ILoggingAdapter log, string peer, string reason)
    {
        log.Warning("{0} {1}: {2}", Refused, peer, reason);
        return false;
    }
}
