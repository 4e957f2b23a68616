using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;
using YamlDotNet.RepresentationModel;

namespace QcowActors.Deploy.Tests;

/// <summary>
/// k8s/ is validated offline: kustomize renders it, yamllint and the Kubernetes schemas
/// (scripts/validate-k8s.sh) check each object, and <see cref="ManifestRules"/> checks how the
/// objects fit together and with the application. Deliberately broken copies must each be rejected.
/// </summary>
public sealed class ManifestValidationTests(ITestOutputHelper output)
{
    private static readonly string K8s = Path.Combine(RepositoryLayout.Root, "k8s");
    private static readonly string Script = Path.Combine(RepositoryLayout.Root, "scripts", "validate-k8s.sh");

    /// <summary>The paths the application serves, from the published contract.</summary>
    private static HashSet<string> AppPaths()
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(Path.Combine(RepositoryLayout.Root, "openapi.yaml"))));
        var paths = Manifests.Child(stream.Documents[0].RootNode, "paths") as YamlMappingNode
            ?? throw new InvalidOperationException("openapi.yaml has no paths");
        return paths.Children.Keys.Select(k => ((YamlScalarNode)k).Value!).ToHashSet();
    }

    private (bool Passed, string Report) Validate(string directory)
    {
        var script = ProcessRunner.Run("bash", [Script, directory], new ProcessRunOptions { Timeout = TimeSpan.FromMinutes(5) });
        var problems = ManifestRules.Check(Manifests.Render(directory), AppPaths());
        string report = $"validate-k8s.sh exit {script.ExitCode}\n{script.Output}\nreference checks:\n{string.Join('\n', problems)}";
        output.WriteLine(report);
        return (script.ExitCode == 0 && problems.Count == 0, report);
    }

    [Fact]
    public void The_manifests_pass_schema_lint_and_reference_checks()
    {
        var (passed, report) = Validate(K8s);
        Assert.True(passed, report);
    }

    public static TheoryData<string, string, string, string, string> Breakages => new()
    {
        // name, file, text, replacement, what the report must mention
        { "selector mismatch", "pdb.yaml", "app: qcowactors", "app: qcowactor", "selector app=qcowactor" },
        { "management port renamed", "statefulset.yaml", "- name: management", "- name: mgmt", "'management'" },
        { "misspelt field", "statefulset.yaml", "terminationGracePeriodSeconds: 35", "terminationGracePeriodSecond: 35", "terminationGracePeriodSecond" },
        { "Role without list", "role.yaml", "verbs: [\"get\", \"watch\", \"list\"]", "verbs: [\"get\", \"watch\"]", "get, watch and list" },
        { "replicas as a string", "statefulset.yaml", "replicas: 3", "replicas: \"3\"", "replicas" },
        { "misspelt setting", "statefulset.yaml", "name: Cluster__StableAfter", "name: Cluster__StableAftr", "Cluster__StableAftr names no setting" },
        { "remoting port not the one advertised", "statefulset.yaml", "value: \"4053\"", "value: \"4054\"", "container port 'akka-remote' is 4053" },
        { "remoting without TLS", "statefulset.yaml", "- name: Cluster__Tls__CertificatePath\n              value: /etc/qcowactors/cluster-tls/tls.crt\n            - ", "- ", "Cluster__AllowPlainRemoting=true" },
        { "misspelt TLS setting", "statefulset.yaml", "name: Cluster__Tls__KeyPath", "name: Cluster__Tls__Key", "Cluster__Tls__Key names no setting of Cluster:Tls" },
        { "TLS file outside its mount", "statefulset.yaml", "value: /etc/qcowactors/cluster-tls/ca.crt", "value: /etc/qcowactors/ca.crt", "'/etc/qcowactors/ca.crt' is on no volume mount" },
        { "TLS key mounted writable", "statefulset.yaml", "mountPath: /etc/qcowactors/cluster-tls\n              readOnly: true", "mountPath: /etc/qcowactors/cluster-tls\n              readOnly: false", "it must be readOnly" },
        { "TLS key readable by all", "statefulset.yaml", "defaultMode: 0400", "defaultMode: 0444", "use 0400" },
        { "TLS Secret without the key file", "secret-cluster-tls.yaml", "  tls.key: |", "  key.pem: |", "has no key 'tls.key'" },
        { "TLS Secret not in the manifests", "kustomization.yaml", "  - secret-cluster-tls.yaml\n", "", "Secret 'qcowactors-cluster-tls' is not in the manifests" },
        { "forwarding key from a Secret not in the manifests", "statefulset.yaml", "name: qcowactors-forwarding", "name: qcowactors-forwardin", "Secret 'qcowactors-forwardin' is not in the manifests" },
        { "forwarding key from a key the Secret lacks", "secret-forwarding.yaml", "  key: REPLACE", "  value: REPLACE", "Secret/qcowactors-forwarding has no key 'key'" },
        { "forwarding key in the manifest", "statefulset.yaml", "valueFrom:\n                secretKeyRef:\n                  name: qcowactors-forwarding\n                  key: key", "value: c2hvcnQ=", "must come from a Secret" },
        { "forwarding key missing", "statefulset.yaml", "- name: Cluster__ForwardingKey", "- name: Cluster__Unused", "Cluster__ForwardingKey is not set" },
        { "token hash key renamed in the Secret", "secret-auth.yaml", "reader-sha256:", "reader-sha-256:", "has no key 'reader-sha256'" },
        { "auth Secret left out", "kustomization.yaml", "  - secret-auth.yaml\n", "", "Secret 'qcowactors-auth' is not in the manifests" },
        { "tokens over plain HTTP not allowed", "statefulset.yaml", "name: Auth__AllowPlainHttp\n              value: \"true\"", "name: Auth__AllowPlainHttp\n              value: \"false\"", "Auth__AllowPlainHttp" },
        { "misspelt auth setting", "statefulset.yaml", "name: Auth__AllowPlainHttp", "name: Auth__AllowPlainHTTPS", "Auth__AllowPlainHTTPS names no setting" },
    };

    [Theory]
    [MemberData(nameof(Breakages))]
    public void A_broken_copy_is_rejected(string breakage, string file, string text, string replacement, string mention)
    {
        using var copy = new TempDirectory("qa-k8s");
        foreach (var source in Directory.GetFiles(K8s, "*.yaml"))
            File.Copy(source, Path.Combine(copy.Path, Path.GetFileName(source)));
        string target = Path.Combine(copy.Path, file);
        string original = File.ReadAllText(target);
        Assert.Contains(text, original); // the breakage must still apply to today's manifests
        File.WriteAllText(target, original.Replace(text, replacement));

        var (passed, report) = Validate(copy.Path);
        Assert.False(passed, $"{breakage}: the broken copy passed\n{report}");
        Assert.Contains(mention, report);
    }
}
