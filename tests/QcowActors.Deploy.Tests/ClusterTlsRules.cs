using System.Globalization;
using YamlDotNet.RepresentationModel;
using static QcowActors.Deploy.Tests.Manifests;

namespace QcowActors.Deploy.Tests;

/// <summary>
/// Remoting TLS in the pod: the node advertises its pod IP, so it must run Cluster:Tls (else any
/// pod that reaches the remoting port joins), and every Cluster__Tls__*Path must be a file of a
/// Secret in the manifests, mounted read-only and readable by its owner only.
/// </summary>
internal static class ClusterTlsRules
{
    private const string Prefix = "Cluster__Tls__";

    public static IEnumerable<string> Check(Manifests m, YamlNode? pod, YamlNode? container, IReadOnlyDictionary<string, string?> env)
    {
        bool tls = env.ContainsKey(Prefix + "CertificatePath");
        if (!tls && !(env.TryGetValue("Cluster__AllowPlainRemoting", out var plain) && plain == "true"))
            yield return "the pods advertise their pod IP for remoting but set no Cluster__Tls__CertificatePath: any pod that reaches " +
                         "port akka-remote could join the cluster (set Cluster__Tls__*, or Cluster__AllowPlainRemoting=true on an otherwise isolated network)";
        if (tls && !env.ContainsKey(Prefix + "CaCertificatePath") && !env.Keys.Any(k => k.StartsWith(Prefix + "TrustedThumbprints__", StringComparison.Ordinal)))
            yield return "Cluster__Tls__CertificatePath is set without Cluster__Tls__CaCertificatePath or Cluster__Tls__TrustedThumbprints__N: the node refuses to start";

        var mounts = Items(Child(container, "volumeMounts")).ToList();
        var volumes = Items(Child(pod, "volumes")).ToDictionary(v => Scalar(v, "name") ?? "");
        foreach (var (name, path) in env.Where(e => e.Key.StartsWith(Prefix, StringComparison.Ordinal) && e.Key.EndsWith("Path", StringComparison.Ordinal)))
        {
            var mount = mounts.FirstOrDefault(v => Scalar(v, "mountPath") is { } dir && path is not null && path.StartsWith(dir.TrimEnd('/') + "/", StringComparison.Ordinal));
            if (mount is null)
            {
                yield return $"env {name}: '{path}' is on no volume mount of the container";
                continue;
            }
            string volumeName = Scalar(mount, "name") ?? "";
            if (Scalar(mount, "readOnly") != "true")
                yield return $"volumeMount '{volumeName}' holds {name} (keys): it must be readOnly";
            if (!volumes.TryGetValue(volumeName, out var volume) || Child(volume, "secret") is not { } secret)
            {
                yield return $"env {name}: volume '{volumeName}' must be a Secret volume";
                continue;
            }
            if (Scalar(secret, "defaultMode") is not { } mode || !int.TryParse(mode, CultureInfo.InvariantCulture, out var bits) || (bits & 0b111_111) != 0)
                yield return $"volume '{volumeName}': defaultMode {Scalar(secret, "defaultMode") ?? "(0644)"} lets other users read the key: use 0400";
            string? secretName = Scalar(secret, "secretName");
            var source = m.OfKind("Secret").FirstOrDefault(s => Name(s) == secretName);
            if (source is null)
            {
                yield return $"volume '{volumeName}': Secret '{secretName}' is not in the manifests";
                continue;
            }
            string file = path![(Scalar(mount, "mountPath")!.TrimEnd('/').Length + 1)..];
            var keys = Map(Child(source, "data")).Keys.Concat(Map(Child(source, "stringData")).Keys);
            if (!keys.Contains(file))
                yield return $"env {name}: Secret/{secretName} has no key '{file}'";
        }
    }
}
